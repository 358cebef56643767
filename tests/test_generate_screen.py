"""Generate screen + Gallery driven by keys, with the REAL engine child on the tiny model set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static, TextArea

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.outputs import History, HistoryRecord
from distill_tui.widgets.engine_status import EngineStatus
from distill_tui.widgets.image_view import ImageView
from distill_tui.widgets.model_select import MANAGE, SETUP_REQUIRED, ModelSelect
from tests.gen_helpers import MODEL_ID, install_tiny, ready_core, wait_for

DATA = Path(__file__).parent / "data"


def status_text(app: DistillApp) -> str:
    return str(app.screen.query_one(EngineStatus).render())


@pytest.mark.slow
async def test_generate_real_engine_end_to_end(tiny_models):
    core = ready_core(tiny_models)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    kinds: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.generation.subscribe(kinds.append)
        assert "not started" in status_text(app)
        await pilot.press(*"a red fox")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running)
        job = app.generation.job
        assert job.phase == "done", job.error
        assert len(job.images) == 1
        path = job.images[0].path
        assert Path(path).is_file()
        assert "preview" in kinds  # live previews arrived before the final image
        view = app.screen.query_one("#image-view", ImageView)
        await wait_for(
            pilot,
            lambda: (
                view.current is not None
                and view.current.path == path
                and view.shown_frame is view.current
            ),
            10,
        )
        assert view.shown.size == (64, 64)
        caption = str(app.screen.query_one("#image-caption", Static).render())
        assert Path(path).name in caption and f"seed {job.seed}" in caption
        recs = History(core.paths.history_file).records()
        assert recs and recs[0].images == [path]
        assert recs[0].params["prompt"] == "a red fox"
        assert recs[0].model_id == MODEL_ID
        await wait_for(pilot, lambda: "ready" in status_text(app), 10)
        assert "Q4_K_S" in status_text(app)
        assert app.generation.last_seed == job.seed

        # choosing another ready model reloads it in the running engine
        install_tiny(core, tiny_models, model_id="flux2-klein-9b")
        core.settings.update(active_model_id=MODEL_ID)
        select = app.screen.query_one(ModelSelect)
        select.reload()
        await pilot.pause()
        select.value = "flux2-klein-9b"
        await wait_for(pilot, lambda: app.engine.loaded_model == "flux2-klein-9b", 30)
        assert core.settings.settings.active_model_id == "flux2-klein-9b"
        await wait_for(pilot, lambda: "flux2-klein-9b" in status_text(app), 5)


@pytest.mark.slow
async def test_stop_during_slow_encoding_then_generate_again(tiny_models_slow):
    core = ready_core(tiny_models_slow)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"slow one")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and app.generation.job.phase == "encoding")
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: not app.generation.job.running, 15)
        assert app.generation.job.phase == "cancelled"
        assert "failed" not in status_text(app)
        assert History(core.paths.history_file).records() == []
        # the next generation restarts the engine and works
        await pilot.press("ctrl+g")
        await wait_for(
            pilot, lambda: app.generation.job.number == 2 and not app.generation.job.running, 90
        )
        assert app.generation.job.phase == "done", app.generation.job.error
        assert len(History(core.paths.history_file).records()) == 1


class NoEngine:
    """An engine factory that fails the test if the screen ever asks for the engine."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, app):
        self.calls += 1
        raise AssertionError("the engine must not be used")


async def test_invalid_width_is_refused_inline_without_engine_call(tiny_models):
    core = ready_core(tiny_models)
    factory = NoEngine()
    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=factory
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a fox")
        width = app.screen.query_one("#width", Input)
        width.value = "1000"
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert "Width: a multiple of 16 (try 992 or 1008)" in errors
        assert width.has_class("-invalid")
        assert app.focused is width
        assert app.generation.job is None and factory.calls == 0
        # other bad values: no crash, no clamp, each reason shown
        width.value = "64"
        app.screen.query_one("#steps", Input).value = "0"
        app.screen.query_one("#cfg", Input).value = "abc"
        app.screen.query_one("#seed", Input).value = "-5"
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert "Steps: between 1 and 200" in errors
        assert "CFG: a number" in errors
        assert "Seed:" in errors
        assert app.screen.query_one("#steps", Input).value == "0"
        assert factory.calls == 0


async def test_empty_prompt_and_unready_model_are_refused(isolated_dirs):
    factory = NoEngine()
    app = DistillApp(image_renderer="halfcell", display_settings=STILL, engine_factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        # the model is not set up: ctrl+g opens its card in the Model Manager (issue 13.5)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.current_mode == "models", 5)
        assert factory.calls == 0
        await pilot.press("escape")  # back to Generate
        await wait_for(pilot, lambda: app.current_mode == "generate", 5)
        # a ready-looking model with an empty prompt: the form says what is missing
        app.core.resolver.is_model_ready = lambda model_id=None: True  # type: ignore[method-assign]
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert "Prompt: required" in errors
        assert factory.calls == 0


async def test_model_selector_setup_required_opens_model_manager(tiny_models):
    core = ready_core(tiny_models)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        select = app.screen.query_one(ModelSelect)
        labels = {value: str(label) for label, value in select._options if value is not Select.NULL}
        assert labels[MODEL_ID] == "FLUX.2 Klein 4B"
        assert labels["flux2-klein-9b"] == "FLUX.2 Klein 9B" + SETUP_REQUIRED
        assert labels[MANAGE] == "Manage Models…"
        assert list(labels)[-1] == MANAGE
        assert select.value == MODEL_ID
        # choose the not-ready model with the keyboard
        select.focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.current_mode == "models", 5)
        assert core.settings.settings.active_model_id == MODEL_ID  # unchanged
        await pilot.press("f2")
        await pilot.pause()
        assert app.screen.query_one(ModelSelect).value == MODEL_ID


async def test_gallery_reuse_refills_the_form(tiny_models):
    core = ready_core(tiny_models)
    out = core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "scene96x64.png", out / "scene.png")
    History(core.paths.history_file).add(
        HistoryRecord(
            model_id=MODEL_ID,
            diffusion_quant="Q4_K_S",
            text_encoder_quant="Q4_K_M",
            params=dict(
                prompt="a lighthouse at dusk",
                negative_prompt="blurry",
                width=96,
                height=64,
                steps=3,
                cfg_scale=1.5,
                sampler="heun",
                scheduler="karras",
                seed=-1,
                batch_count=1,
            ),
            seed=1234,
            images=[str(out / "scene.png")],
        )
    )
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "generate", 5)
        await pilot.pause()
        s = app.screen
        assert s.query_one("#prompt", TextArea).text == "a lighthouse at dusk"
        assert s.query_one("#negative-prompt", Input).value == "blurry"
        assert s.query_one("#width", Input).value == "96"
        assert s.query_one("#height", Input).value == "64"
        assert s.query_one("#steps", Input).value == "3"
        assert s.query_one("#cfg", Input).value == "1.5"
        assert s.query_one("#seed", Input).value == "1234"
        assert s.query_one("#sampler", Select).value == "heun"
        assert s.query_one("#scheduler", Select).value == "karras"


async def test_gallery_missing_file_and_delete(tiny_models):
    core = ready_core(tiny_models)
    out = core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "gradient64.png", out / "kept.png")
    h = History(core.paths.history_file)
    kept = h.add(
        HistoryRecord(
            model_id=MODEL_ID,
            diffusion_quant="Q4_K_S",
            text_encoder_quant="Q4_K_M",
            params={"prompt": "kept"},
            seed=1,
            images=[str(out / "kept.png")],
        )
    )
    h.add(
        HistoryRecord(
            model_id=MODEL_ID,
            diffusion_quant="Q4_K_S",
            text_encoder_quant="Q4_K_M",
            params={"prompt": "gone"},
            seed=2,
            images=[str(out / "gone.png")],
        )
    )
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.pause(0.3)
        view = app.screen.query_one("#gallery-image", ImageView)
        assert view.missing  # newest first: "gone" is selected, shown as missing
        assert "missing" in str(app.screen.query_one("#image-placeholder", Static).render())
        await pilot.press("down")
        await wait_for(
            pilot, lambda: view.shown is not None and view.shown_frame is view.current, 5
        )
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: len(app.screen.records) == 1 if hasattr(app.screen, "records") else False,
            5,
        )
        assert not (out / "kept.png").exists()
        remaining = History(core.paths.history_file).records()
        assert [r.params["prompt"] for r in remaining] == ["gone"]
        assert kept.id not in [r.id for r in remaining]


@pytest.mark.slow
async def test_engine_killed_shows_failed_with_reason_then_recovers(tiny_models_slow):
    import os
    import signal

    core = ready_core(tiny_models_slow)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"doomed")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and app.generation.job.phase == "encoding")
        os.kill(app.engine.pid, signal.SIGKILL)
        await wait_for(pilot, lambda: not app.generation.job.running, 15)
        job = app.generation.job
        assert job.phase == "failed" and job.error_kind == "crash"
        assert "failed: the engine process was killed by SIGKILL" in status_text(app)
        phase = str(app.screen.query_one("#gen-phase", Static).render())
        assert phase.startswith("failed: the engine process was killed")
        # the TUI stays up; the unload palette command is harmless now
        assert app.is_running


@pytest.mark.slow
async def test_reference_image_edit_and_unload_command(tiny_models_edit):
    from distill_tui.commands import app_commands

    core = ready_core(tiny_models_edit)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"make it blue")
        app.screen.query_one("#ref-image", Input).value = str(DATA / "gradient64.png")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running)
        job = app.generation.job
        assert job.phase == "done", job.error
        rec = History(core.paths.history_file).records()[0]
        assert rec.params["ref_images"] == [str(DATA / "gradient64.png")]
        assert app.engine.loaded_model == MODEL_ID
        unload = next(c for c in app_commands(app) if c.title.startswith("Unload model"))
        unload.callback()
        await wait_for(pilot, lambda: app.engine.loaded_model is None, 10)
        await wait_for(pilot, lambda: "ready (no model loaded)" in status_text(app), 5)


async def test_missing_reference_image_is_refused_inline(tiny_models):
    core = ready_core(tiny_models)
    factory = NoEngine()
    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=factory
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"edit")
        app.screen.query_one("#ref-image", Input).value = "/no/such/image.png"
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert "Edit refs: no such file: /no/such/image.png" in errors
        assert factory.calls == 0
