"""GenerateForm (issue 12.4): one field table composes, checks, reads and fills the form; the
advanced section's widgets are mounted only when it first opens, its values kept until then."""

from __future__ import annotations

from textual.widgets import Checkbox, Collapsible, Input

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.generation import EngineKnobs, GenParams
from distill_tui.widgets.generate_form import ADVANCED, FIELDS, GenerateForm
from tests.test_snapshots_generate import fake_ready_core

RECIPE = GenParams(
    prompt="a lighthouse at dusk",
    negative_prompt="blurry",
    width=512,
    height=768,
    steps=6,
    cfg_scale=1.5,
    seed=42,
    sampler="euler_a",
    scheduler="karras",
    batch_count=2,
    strength=0.4,
    knobs=EngineKnobs(flash_attn=False, vae_tiling=True, n_threads=3),
)


async def test_load_then_to_request_round_trips_without_opening_the_advanced_section(
    isolated_dirs,
):
    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        section = form.query_one("#advanced", Collapsible)
        # at start the advanced widgets are not mounted (the first paint does not pay them)
        assert section.collapsed and not any(form.query(f"#{i}") for i in ADVANCED)
        form.load(RECIPE)
        await pilot.pause()
        params, errors = form.to_request()
        assert errors == [] and params is not None
        assert params == RECIPE
        assert not any(form.query(f"#{i}") for i in ADVANCED)  # still not mounted
        # opening it shows the kept values in its widgets
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not section.collapsed
        assert form.query_one("#threads", Input).value == "3"
        assert form.query_one("#vae-tiling", Checkbox).value is True
        assert form.query_one("#flash-attn", Checkbox).value is False
        assert form.query_one("#strength", Input).value == "0.4"
        again, _ = form.to_request()
        assert again == params


async def test_a_bad_advanced_value_opens_the_section_and_is_named(isolated_dirs):
    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        form.load(RECIPE)
        form.set_value("strength", "7")  # not mounted yet: kept, and checked like the rest
        params, errors = form.to_request()
        await pilot.pause()
        assert params is None
        assert [e.split(":")[0] for e in errors] == ["Strength"], errors
        assert not form.query_one("#advanced", Collapsible).collapsed
        assert form.query_one("#strength", Input).has_focus


def test_every_field_in_the_table_has_a_place_in_a_row():
    from distill_tui.widgets.generate_form import ADVANCED_ROWS, ROWS

    placed = [i for _, items in (*ROWS, *ADVANCED_ROWS) for i in items if isinstance(i, str)]
    assert sorted(placed) == sorted(FIELDS) and len(placed) == len(set(placed))


async def test_the_advanced_section_is_readable_while_it_mounts(isolated_dirs):
    """ctrl+n then ctrl+g in one read of the terminal: the form is read in the frame where
    the advanced rows exist but their fields are not mounted yet (it crashed: NoMatches)."""
    from textual import events

    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        form.load(RECIPE)
        form.open_advanced()
        params, errors = form.to_request()  # fields not in the DOM yet
        assert errors == [] and params == RECIPE
        form.set_value("threads", "5")
        await pilot.pause()
        assert form.query_one("#threads", Input).value == "5"
        form.advanced.collapsed = True
        await pilot.pause()
        form.query_one("#prompt").text = "x"
        for key in ("ctrl+n", "ctrl+g"):
            app.post_message(events.Key(key, None))
        await pilot.pause()
        await pilot.pause()
        assert app._exception is None and app.is_running


async def test_ctrl_n_twice_leaves_no_focus_in_the_closed_section(isolated_dirs):
    """Open then close (one key at a time, and both in one read while the fields still
    mount): no hidden advanced field keeps the focus (space would flip a knob unseen)."""
    from textual import events

    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        for _ in range(2):
            app.post_message(events.Key("ctrl+n", None))
        for _ in range(5):
            await pilot.pause()
        assert form.advanced.collapsed
        assert app.focused is None or app.focused.id not in ADVANCED, app.focused
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "flash-attn"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert form.advanced.collapsed
        assert app.focused is None or app.focused.id not in ADVANCED, app.focused


# ---- the engine's own knobs (issue 20.4) are fields of the advanced section -----------------

OWN = (
    ("cache_mode", "easycache"),
    ("cache_threshold", 0.3),
    ("flow_shift", 2.5),
    ("max_vram", 4.0),
    ("diffusion_conv_direct", True),
    ("vae_conv_direct", True),
)


async def test_the_engines_own_knobs_are_shown_read_and_restored(isolated_dirs):
    """Step cache, its threshold, flow shift, max VRAM and the conv-direct switches are
    advanced fields built from their recipe rows: a loaded recipe (the Gallery's r) shows
    them, to_request reads them back, empty flow shift is auto (the engine's)."""
    from textual.widgets import Select

    from distill_tui.recipe import BY_NAME

    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        for name, _ in OWN:
            assert BY_NAME[name].form == "advanced" and BY_NAME[name].form_id in ADVANCED
        reused = RECIPE.recipe().replace(**dict(OWN))
        form.load(GenParams.from_recipe(reused))
        params, errors = form.to_request()  # before the section is mounted
        assert errors == [] and params is not None
        assert all(params.recipe()[n] == v for n, v in OWN), params.extra
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.pause()
        assert form.query_one("#cache-mode", Select).value == "easycache"
        assert form.query_one("#cache-threshold", Input).value == "0.3"
        assert form.query_one("#flow-shift", Input).value == "2.5"
        assert form.query_one("#max-vram", Input).value == "4"
        assert form.query_one("#diffusion-conv-direct", Checkbox).value is True
        assert form.query_one("#vae-conv-direct", Checkbox).value is True
        again, errors = form.to_request()
        assert errors == [] and again == params
        # a plain recipe: flow shift empty = auto (placeholder), max VRAM off, no cache
        form.load(RECIPE)
        await pilot.pause()
        flow = form.query_one("#flow-shift", Input)
        assert flow.value == "" and flow.placeholder == "auto"
        assert form.query_one("#cache-mode", Select).value == "disabled"
        plain, errors = form.to_request()
        assert errors == [] and plain == RECIPE
        flow.value = "auto"  # typed: the same as empty
        await pilot.pause()
        plain, errors = form.to_request()
        assert errors == [] and plain is not None and plain.recipe()["flow_shift"] is None


async def test_a_bad_engine_knob_is_refused_in_the_recipes_words(isolated_dirs):
    app = DistillApp(fake_ready_core(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        form.load(RECIPE)
        form.set_value("flow-shift", "500")
        params, errors = form.to_request()
        await pilot.pause()
        assert params is None and errors == ["Flow shift: between 0.1 and 100"], errors
        form.set_value("flow-shift", "")
        form.set_value("cache-threshold", "0.3")  # no step cache chosen: no mode reads it
        params, errors = form.to_request()
        await pilot.pause()
        assert params is None and len(errors) == 1, errors
        assert errors[0].startswith("Threshold: needs Cache easycache or ucache"), errors
        form.set_value("cache-mode", "ucache")
        params, errors = form.to_request()
        assert errors == [] and params is not None
        got = params.recipe()
        assert (got["cache_mode"], got["cache_threshold"]) == ("ucache", 0.3)


async def test_a_restart_brings_back_the_engines_own_knobs(isolated_dirs):
    """The form a generation ran with comes back at the next start with its advanced fields,
    the engine's own knobs included (they were dropped: not in the saved form)."""
    from textual.widgets import Select, TextArea

    from tests.gen_helpers import wait_for
    from tests.test_generate_ui import batch_files
    from tests.test_session_ux import make_app

    core = fake_ready_core()
    app = make_app(core, batch_files(core, 1))
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        app.screen.query_one("#prompt", TextArea).text = "a lighthouse at dusk"
        for field_id, value in (("cache-mode", "easycache"), ("cache-threshold", "0.3")):
            form.set_value(field_id, value)
        form.set_value("flow-shift", "2.5")
        form.set_value("vae-conv-direct", True)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.running, 10)
        assert app.generation.job.params.recipe()["cache_mode"] == "easycache"

    again = make_app(fake_ready_core(), [])
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        form = again.screen.query_one(GenerateForm)
        form.open_advanced()
        await pilot.pause()
        await pilot.pause()
        assert form.query_one("#cache-mode", Select).value == "easycache"
        assert form.query_one("#cache-threshold", Input).value == "0.3"
        assert form.query_one("#flow-shift", Input).value == "2.5"
        assert form.query_one("#vae-conv-direct", Checkbox).value is True
