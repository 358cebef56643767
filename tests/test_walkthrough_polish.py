"""A user walk-through's findings (issues 20/21 polish): each through the surface a person
meets - the CLI (a subprocess, or the in-process main) and the TUI (Pilot, the real App).

* a model without a family feature (Z-Image: no edit references) refuses ``--ref-image`` in
  one line before the engine loads - from the flags and from a reused record - and the form
  says it does not send a pinned recipe's references;
* a model change made by another process (``distill models use``) brings the new model's
  defaults into the open form, as choosing it in the form does;
* ctrl+g's refusal shows the first bad field even when it is below the fold;
* the engine knobs' fields explain themselves (their PARAMS row's help as a tooltip);
* ``distill generate --json`` holds every recorded row;
* ``distill generate --help`` lists only image-generation models;
* removal and upscaler wording.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from distill_tui.recipe import PARAMS

ROOT = Path(__file__).resolve().parent.parent
ZI = "z-image-turbo"


def distill(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


# ---- 1. a feature the model does not have -------------------------------------------------


def test_ref_image_on_zimage_is_refused_for_the_model(isolated_dirs, tmp_path):
    ref = tmp_path / "ref.png"
    ref.write_bytes(b"\x89PNG not read")
    p = distill("generate", "x", "--model", ZI, "--ref-image", str(ref))
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Z-Image-Turbo takes no reference images" in lines[0]
    assert "FLUX.2 Klein" in lines[0] and "VAE" not in lines[0]


def test_reused_record_with_refs_on_zimage_is_refused(isolated_dirs, tmp_path):
    from distill_tui.context import CoreContext
    from distill_tui.outputs import History, HistoryRecord
    from tests.test_families_form import ready

    core = CoreContext.build()
    ready(core, ZI)
    sel = core.resolver.selection(ZI)
    ref = tmp_path / "ref.png"
    ref.write_bytes(b"\x89PNG not read")
    History(core.paths.history_file).add(
        HistoryRecord(
            id="abcdef0123456789",
            model_id=ZI,
            diffusion_quant=sel.diffusion_quant,
            text_encoder_quant=sel.text_encoder_quant,
            params={"prompt": "p", "width": 64, "height": 64, "ref_images": [str(ref)]},
            seed=1,
            images=[],
        )
    )
    p = distill("generate", "--reuse", "abcdef012345")
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Z-Image-Turbo takes no reference images" in lines[0]
    assert "abcdef012345" in lines[0]  # where the references came from


def _notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_pinned_recipe_refs_on_zimage_are_said_not_sent(isolated_dirs, tmp_path):
    """A Gallery recipe pinned onto Z-Image with edit references (the field is hidden):
    ctrl+g generates without them and says so (the rule distill generate refuses by)."""
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.generation import GenParams
    from tests.gen_helpers import wait_for
    from tests.test_families_form import core_with
    from tests.test_generate_ui import FakeEngine, batch_files

    core = core_with(ZI)
    files = batch_files(core, 1)
    engines: list[FakeEngine] = []

    def factory(app):
        engines.append(FakeEngine(app, files))
        return engines[-1]

    ref = tmp_path / "ref.png"
    ref.write_bytes(b"not read")
    app = DistillApp(core, display_settings=STILL, engine_factory=factory)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = app.screen
        screen.apply_params(  # type: ignore[attr-defined]
            GenParams(prompt="a cat", ref_images=(str(ref),)), ZI, core.resolver.selection(ZI)
        )
        await pilot.pause()
        # said when it is pinned, before ctrl+g
        assert any("takes no reference images" in n for n in _notes(app)), _notes(app)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: bool(engines) and bool(engines[0].requests), 10)
        said = [n for n in _notes(app) if "takes no reference images" in n]
        assert said and "Z-Image-Turbo" in said[-1] and "not sent" in said[-1], _notes(app)
    assert engines[0].requests[0].ref_images == []


# ---- 2. the active model changed by another process --------------------------------------


async def test_models_use_elsewhere_brings_the_models_defaults(isolated_dirs):
    """``distill models use z-image-turbo`` in another process (a second settings store
    writing settings.json): the open form takes Z-Image's 8 steps as choosing it in the form's
    Model list does; a typed value stays."""
    import time

    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.paths import AppPaths
    from distill_tui.settings import SettingsStore
    from distill_tui.widgets.generate_form import GenerateForm
    from tests.test_families_form import core_with

    core = core_with("flux2-klein-4b", ZI)
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        assert form.value("steps") == "4"
        form.set_value("width", "512")  # typed
        other = SettingsStore(AppPaths.from_env())  # another process
        other.load()
        other.update(active_model_id=ZI)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3 and core.settings.settings.active_model_id != ZI:
            await pilot.pause(0.1)
        assert core.settings.settings.active_model_id == ZI
        await pilot.pause()
        await pilot.pause()
        assert form.value("steps") == "8", "the form kept the old model's default"
        assert form.value("width") == "512"


# ---- 3. ctrl+g's refusal is seen ---------------------------------------------------------


async def test_refusal_below_the_fold_is_shown(isolated_dirs):
    """The advanced section open, Flow shift 'abc', VRAM -3, no prompt: ctrl+g focuses the
    first bad field, on screen, and one notification names every field to fix."""
    from textual.widgets import TextArea

    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.widgets.generate_form import GenerateForm
    from tests.test_families_form import core_with

    app = DistillApp(core_with(ZI), display_settings=STILL)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        form = app.screen.query_one(GenerateForm)
        form.open_advanced()
        await pilot.pause()
        await pilot.pause()
        form.set_value("flow-shift", "abc")
        form.set_value("max-vram", "-3")
        form.query_one("#max-vram").focus()
        await pilot.pause()
        form.scroll_end(animate=False)
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        await pilot.pause()
        focused = app.focused
        assert isinstance(focused, TextArea) and focused.id == "prompt", focused
        assert focused.region.overlaps(form.region) and focused.region.height > 0
        said = [n for n in _notes(app) if "need a fix" in n]
        assert said, _notes(app)
        assert "Prompt" in said[0] and "Flow shift" in said[0] and "VRAM GiB" in said[0]


# ---- 4. the knobs explain themselves ------------------------------------------------------


async def test_engine_knob_fields_have_their_rows_help_as_tooltip(isolated_dirs):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.recipe import BY_NAME
    from distill_tui.widgets.generate_form import GenerateForm
    from tests.test_families_form import core_with

    app = DistillApp(core_with(ZI), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        form.open_advanced()
        await pilot.pause()
        await pilot.pause()
        for name in (
            "cache_mode", "cache_threshold", "flow_shift", "max_vram",
            "diffusion_conv_direct", "vae_conv_direct", "keep_clip_on_cpu",
        ):  # fmt: skip
            p = BY_NAME[name]
            tip = form.query_one(f"#{p.form_id}").tooltip
            assert tip, f"{p.short} has no tooltip"
            assert str(tip) == p.tooltip and "%(" not in str(tip)
        assert "easycache" in str(form.query_one("#cache-mode").tooltip)


# ---- 5. --json holds every recorded row ---------------------------------------------------


def test_generate_json_has_every_recorded_row(app_paths, tiny_models, tmp_path):
    """The real engine child: ``--flow-shift 2`` is in the PNG and the history; --json has it
    too, and every other PARAMS row (at the top or under ``knobs``)."""
    from tests.test_families_generate import VARIANT, _variant

    _variant(app_paths, tiny_models)
    p = distill(
        "generate", "a cat", "--model", VARIANT, "--flow-shift", "2", "--json",
        "-o", str(tmp_path / "j.png"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["knobs"]["flowShift"] == 2.0
    missing = [r.name for r in PARAMS if r.key not in doc and r.key not in doc["knobs"]]
    assert missing == [], missing


# ---- 6. generate --help lists what generates ----------------------------------------------


def test_generate_help_lists_image_models_and_upscale_help_the_upscalers(isolated_dirs, capsys):
    import pytest

    from distill_tui.cli import main

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    gen = capsys.readouterr().out
    assert "z-image-turbo" in gen and "flux2-klein-4b" in gen
    assert "realesrgan" not in gen.lower(), gen[gen.find("models") :]
    assert "distill upscale --help" in gen
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    up = capsys.readouterr().out
    assert "realesrgan-x4plus" in up and "z-image-turbo" not in up


# ---- 7. removal: the active upscaler, and the words for each surface ----------------------

UP = "realesrgan-x4plus"


def _upscaler_ready(core) -> Path:
    from tests.test_families_form import ready

    ready(core, UP)
    core.settings.update(active_upscaler_id=UP)
    comp = core.catalog.require(UP).components[0]
    assert comp.file is not None
    return core.inventory.abs_path(comp.file.file)


def test_removing_the_active_upscaler_needs_force_as_an_active_quant_does(isolated_dirs):
    from distill_tui.context import CoreContext
    from tests.test_families_form import core_with

    core = core_with("flux2-klein-4b")
    path = _upscaler_ready(core)
    p = distill("models", "remove", UP, "--all", "-y")
    assert p.returncode == 1, p.stdout + p.stderr
    assert path.is_file(), "the active upscaler was removed without --force"
    assert "the active upscaler" in p.stdout and "(or --force)" in p.stdout, p.stdout
    # the active model's quant: the same words
    sel = core.resolver.selection("flux2-klein-4b")
    p = distill("models", "remove", "flux2-klein-4b", "--diffusion", sel.diffusion_quant, "-y")
    assert p.returncode == 1 and "(or --force)" in p.stdout and "(or force)" not in p.stdout
    p = distill("models", "remove", UP, "--all", "-y", "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    assert not path.exists()
    assert CoreContext.build().settings.settings.active_upscaler_id in (None, "")


def test_removal_words_without_a_force_for_the_model_manager(isolated_dirs):
    """The Model Manager has no force: its refusal says what to do there (plan_removal as the
    del key calls it)."""
    from distill_tui.removal import plan_removal
    from tests.test_families_form import core_with

    core = core_with("flux2-klein-4b", ZI)
    _upscaler_ready(core)
    # Z-Image-Turbo's text encoder quant is the one the active Klein 4B loads
    te = core.resolver.selection(ZI).text_encoder_quant
    plan = plan_removal(core, ZI, [("textEncoder", te)])
    plan_up = plan_removal(core, UP, [("upscaler", None)])
    for line in plan.kept + plan_up.kept:
        assert "force" not in line, line
    assert plan.kept and "select another downloaded quant" in plan.kept[0]
    assert plan_up.kept and "make another upscaler active first" in plan_up.kept[0]


# ---- 8. wording ---------------------------------------------------------------------------


async def test_gallery_upscale_without_the_active_upscaler_reads_as_a_sentence(isolated_dirs):
    """u in the Gallery, the active upscaler not downloaded: 'upscale failed: the active
    upscaler Real-ESRGAN x4plus is not downloaded: ...' (its name, lower case after the
    colon)."""
    from PIL import Image

    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.outputs import History, HistoryRecord, save_png
    from tests.gen_helpers import wait_for
    from tests.test_families_form import core_with

    core = core_with("flux2-klein-4b")
    core.settings.update(active_upscaler_id=UP)
    src = save_png(Image.new("RGB", (8, 8)), core.settings.outputs_dir, {"seed": 1})
    sel = core.resolver.selection("flux2-klein-4b")
    History(core.paths.history_file).add(
        HistoryRecord(
            model_id="flux2-klein-4b",
            diffusion_quant=sel.diffusion_quant,
            text_encoder_quant=sel.text_encoder_quant,
            params={"prompt": "p", "width": 8, "height": 8},
            seed=1,
            images=[str(src)],
        )
    )
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("u")
        await wait_for(pilot, lambda: any("upscale failed" in n for n in _notes(app)), 10)
        [line] = [n for n in _notes(app) if "upscale failed" in n]
        assert line.startswith("upscale failed: the active upscaler Real-ESRGAN x4plus "), line


def test_upscale_with_an_image_model_says_what_it_is(isolated_dirs, tmp_path):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(src)
    p = distill("upscale", str(src), "--upscaler", ZI)
    assert p.returncode != 0
    [line] = p.stderr.strip().splitlines()
    assert "z-image-turbo is an image model, not an upscaler; upscalers: " in line, line
    assert "realesrgan-x4plus" in line and "unknown upscaler" not in line


def test_models_use_says_the_model_is_now_active(isolated_dirs):
    from tests.test_families_form import core_with

    core_with("flux2-klein-4b", ZI)
    p = distill("models", "use", ZI)
    assert p.returncode == 0, p.stderr
    assert "now the active model (Z-Image-Turbo)" in p.stdout, p.stdout


async def test_gallery_recipe_line_shows_both_quants_at_120_columns(isolated_dirs):
    """The recipe pinned from the Gallery: its line names the model and both quants whole
    (the text encoder's was cut: 'Q4_K_S × Q3_K')."""
    from textual.widgets import Static

    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.generation import GenParams
    from tests.test_families_form import core_with

    core = core_with("flux2-klein-4b")
    # the Gallery's record: a text encoder quant not downloaded here (the line says so)
    sel = core.resolver.selection("flux2-klein-4b").with_quant("textEncoder", "Q3_K_M")
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.apply_params(  # type: ignore[attr-defined]
            GenParams(prompt="a cat"), "flux2-klein-4b", sel
        )
        await pilot.pause()
        await pilot.pause()
        line = app.screen.query_one("#reuse-line", Static)
        seen = line.region.intersection(app.screen.query_one("#generate-form").region)
        strips = line.render_lines(line.region.reset_offset)  # what the form's width shows
        shown = " ".join(" ".join(s.crop(0, seen.width).text for s in strips).split())
        words = ("FLUX.2 Klein 4B", f"{sel.diffusion_quant} × Q3_K_M ", "not downloaded")
        for word in words:
            assert word in shown, (word, shown)
        assert shown.endswith(")"), shown  # the state whole
