"""Issue 21.3, the TUI side of the upscalers: the Gallery's ``u`` upscales the selected image and
the Generate form's option upscales each result - through the App's engine child (the real
one, the tiny Klein set of ``tests/engine_fixtures.py`` and the tiny Real-ESRGAN x4 of
``tests/tiny_esrgan.py``), the result a Gallery entry linked to its source."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from textual.widgets import Checkbox, DataTable, Static

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.outputs import History, HistoryRecord, save_png
from tests import tiny_esrgan
from tests.engine_fixtures import TINY_MODEL_ID, install_tiny_model
from tests.gen_helpers import wait_for

UPSCALER_ID = "tiny-esrgan"


@pytest.fixture(scope="session")
def tiny_esrgan_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_esrgan.write_pth(tmp_path_factory.mktemp("esrgan") / "tiny-x4.pth")


def add_tiny_upscaler(app_paths, pth: Path) -> None:
    """The tiny ESRGAN as a catalog upscaler (type "upscaler", family "esrgan") in the user
    catalog already there, its file installed as a finished download leaves it."""
    from distill_tui.context import CoreContext

    rel = "upscalers/tiny-x4.pth"
    data = pth.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    cat = json.loads(app_paths.user_catalog_file.read_text("utf-8"))
    cat["models"].append(
        {
            "id": UPSCALER_ID,
            "name": "Tiny ESRGAN x4",
            "type": "upscaler",
            "family": "esrgan",
            "components": [
                {
                    "role": "upscaler",
                    "name": "Tiny ESRGAN x4",
                    "file": {
                        "file": rel,
                        "size": len(data),
                        "sha256": sha,
                        "downloadUrl": "http://127.0.0.1:9/tiny-x4.pth",
                    },
                }
            ],
        }
    )
    app_paths.user_catalog_file.write_text(json.dumps(cat), "utf-8")
    ctx = CoreContext.build(app_paths)
    dest = ctx.inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pth, dest)
    ctx.inventory.record(rel, len(data), sha, "http://127.0.0.1:9/x")


def ready(app_paths, tiny_models, pth: Path | None):
    from distill_tui.context import CoreContext

    install_tiny_model(app_paths, tiny_models)
    if pth is not None:
        add_tiny_upscaler(app_paths, pth)
    core = CoreContext.build(app_paths)
    gen = core.settings.settings.generation
    core.settings.update(generation=gen.model_copy(update={"threads": 2}))
    return core


def gallery_caption(app: DistillApp) -> str:
    return str(app.screen.query_one("#image-caption", Static).render())


def notes(app: DistillApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.slow
async def test_gallery_u_upscales_a_generated_image_into_a_linked_4x_entry(
    app_paths, tiny_models, tiny_esrgan_pth
):
    core = ready(app_paths, tiny_models, tiny_esrgan_pth)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a lighthouse")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running, 120)
        job = app.generation.job
        assert job.phase == "done", job.error
        source = job.images[0].path
        await pilot.press("f4")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        # the key is the Gallery's, with its description (footer and F1)
        from distill_tui.screens.help import HelpModal

        _title, rows = HelpModal.rows_for(app.screen)
        assert any(r.key == "u" and r.description == "Upscale" and r.tooltip for r in rows)
        phases: list[str] = []
        from distill_tui.screens.upscaling import upscales

        upscales(app).subscribe(lambda st: phases.append(st.phase))
        await pilot.press("u")
        await wait_for(pilot, lambda: len(History(core.paths.history_file).records()) == 2, 120)
        await wait_for(pilot, lambda: not upscales(app).running, 30)
        assert "upscaling" in phases  # the tiles' progress reached the Gallery
        new, old = History(core.paths.history_file).records()
        up = new.params["upscale"]
        assert up["scale"] == 4 and up["upscaler_id"] == UPSCALER_ID
        assert up["source"] == source and up["source_record"] == old.id
        assert (up["width"], up["height"]) == (256, 256)
        assert new.params["prompt"] == "a lighthouse" and new.model_id == TINY_MODEL_ID
        with Image.open(new.images[0]) as im:
            assert im.size == (256, 256)
            assert json.loads(im.text["distill"])["upscale"]["source_record"] == old.id
        assert Path(source).is_file() and old.images == [source]  # the source entry stays
        await wait_for(pilot, lambda: table.row_count == 2, 10)
        assert app.screen.selected.id == new.id  # the new entry is selected
        # the caption follows the selection on the next refresh (a loaded CI box: not at once)
        await wait_for(pilot, lambda: "upscaled 4x from" in gallery_caption(app), 10)
        caption = gallery_caption(app)
        assert "upscaled 4x from" in caption and Path(source).name in caption
        assert "Tiny ESRGAN x4" in caption
        assert "256x256" in str(table.get_row_at(0))
        status = str(app.screen.query_one("#gallery-status", Static).render())
        assert "2 generations" in status
        # a second u on the source while nothing runs: another entry (the upscaler is cached)
        table.move_cursor(row=1)
        await pilot.pause()
        await pilot.press("u")
        await wait_for(pilot, lambda: len(History(core.paths.history_file).records()) == 3, 120)


async def test_gallery_u_without_an_upscaler_names_the_upscalers_tab(app_paths, tiny_models):
    core = ready(app_paths, tiny_models, None)
    src = save_png(Image.new("RGB", (16, 16), (9, 9, 9)), core.settings.outputs_dir, {"seed": 3})
    History(core.paths.history_file).add(
        HistoryRecord(
            model_id=TINY_MODEL_ID,
            diffusion_quant="F16",
            text_encoder_quant="F16",
            params={"prompt": "grey", "width": 16, "height": 16},
            seed=3,
            images=[str(src)],
        )
    )
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("u")
        await wait_for(pilot, lambda: any("Upscalers" in n for n in notes(app)), 10)
        line = next(n for n in notes(app) if "Upscalers" in n)
        assert "F3" in line and "Traceback" not in line
        assert app.engine_pid() is None  # nothing was started
        assert len(History(core.paths.history_file).records()) == 1
        assert app.is_running
        # the Generate form's option: said before anything is generated
        app._notifications.clear()
        await pilot.press("f2")
        await pilot.pause()
        await pilot.press(*"a cat")
        app.screen.form.open_advanced()
        await wait_for(pilot, lambda: app.screen.query("#upscale"), 10)
        app.screen.query_one("#upscale", Checkbox).value = True
        await pilot.pause()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: any("Upscalers" in n for n in notes(app)), 10)
        assert app.generation.job is None and app.engine_pid() is None


@pytest.mark.slow
async def test_generate_form_option_upscales_each_result_and_is_recorded(
    app_paths, tiny_models, tiny_esrgan_pth
):
    from distill_tui.recipe import Recipe

    core = ready(app_paths, tiny_models, tiny_esrgan_pth)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a red fox")
        form = app.screen.form
        form.open_advanced()
        await wait_for(pilot, lambda: app.screen.query("#upscale"), 10)
        box = app.screen.query_one("#upscale", Checkbox)
        assert not box.value  # off by default
        box.value = True
        await pilot.pause()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(History(core.paths.history_file).records()) == 2, 180)
        new, old = History(core.paths.history_file).records()
        # the generation's record has the option (the upscaler it named)
        assert old.params["upscaler"] == UPSCALER_ID
        assert Recipe.from_record(old.params)["upscaler"] == UPSCALER_ID
        with Image.open(old.images[0]) as im:
            assert im.size == (64, 64)
            assert json.loads(im.text["distill"])["upscaler"] == UPSCALER_ID
        up = new.params["upscale"]
        assert up["source"] == old.images[0] and up["source_record"] == old.id
        with Image.open(new.images[0]) as im:
            assert im.size == (256, 256)
        # the form's line says it, the image pane has the result after the generated one
        phase = app.screen.query_one("#gen-phase", Static)
        await wait_for(pilot, lambda: "upscaled 1 image" in str(phase.render()), 10)
        assert "Tiny ESRGAN x4 4x" in str(phase.render())
        frames = app.screen.query_one("#image-view").frames
        assert [f.path for f in frames] == [old.images[0], new.images[0]]
        # reuse restores the option: off in the form, then r on the record turns it on again
        box.value = False
        await pilot.press("f4")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=1)
        await pilot.pause()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "GenerateScreen", 10)
        await pilot.pause()
        params, errors = app.screen.form.to_request()
        assert params is not None, errors
        assert params.recipe()["upscaler"] == UPSCALER_ID
        assert app.screen.form.value("upscale") is True


@pytest.mark.slow
def test_cli_generate_upscale_reads_the_same_row(
    app_paths, tiny_models, tiny_esrgan_pth, capsys: pytest.CaptureFixture[str]
):
    """``distill generate --upscale`` (the recipe row the form's option is): the images, then
    each upscaled; the record names the upscaler and ``--reuse`` restores it. Without an
    upscaler: one line before the engine starts."""
    from distill_tui.cli import main

    ready(app_paths, tiny_models, None)
    code = main(["generate", "a cat", "--upscale", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "--upscale: no upscaler is downloaded" in err, err
    assert "Traceback" not in err
    core = ready(app_paths, tiny_models, tiny_esrgan_pth)
    assert main(["generate", "a cat", "--upscale", "-q", "--seed", "5"]) == 0
    out = capsys.readouterr().out.split()
    assert len(out) == 2
    with Image.open(out[0]) as a, Image.open(out[1]) as b:
        assert (a.size, b.size) == ((64, 64), (256, 256))
    new, old = History(core.paths.history_file).records()
    assert old.params["upscaler"] == UPSCALER_ID and old.images == [out[0]]
    assert new.params["upscale"]["source_record"] == old.id and new.images == [out[1]]
    assert main(["generate", "--reuse", old.id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [u["upscaler"]["id"] for u in doc["upscaled"]] == [UPSCALER_ID]
    assert History(core.paths.history_file).records()[1].params["upscaler"] == UPSCALER_ID


@pytest.mark.slow
async def test_gallery_upscale_shows_tiles_and_ctrl_x_stops_it(
    app_paths, tiny_models, tiny_esrgan_pth
):
    """A 512x512 source is many tiles: the status line counts them; ctrl+x ends the engine
    child (nothing written, no record); a missing image is said, not upscaled."""
    core = ready(app_paths, tiny_models, tiny_esrgan_pth)
    outputs = core.settings.outputs_dir
    big = save_png(Image.new("RGB", (512, 512), (40, 90, 200)), outputs, {"seed": 1})
    gone = save_png(Image.new("RGB", (8, 8)), outputs, {"seed": 2})
    history = History(core.paths.history_file)
    for seed, path in ((1, big), (2, gone)):
        history.add(
            HistoryRecord(
                model_id=TINY_MODEL_ID,
                diffusion_quant="F16",
                text_encoder_quant="F16",
                params={"prompt": f"p{seed}", "width": 8, "height": 8},
                seed=seed,
                images=[str(path)],
            )
        )
    gone.unlink()
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        from distill_tui.screens.upscaling import upscales

        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("u")  # the newest: its file is gone
        await wait_for(pilot, lambda: any("missing" in n for n in notes(app)), 10)
        assert not upscales(app).running and app.engine_pid() is None
        app.screen.query_one(DataTable).move_cursor(row=1)
        await pilot.pause()
        await pilot.press("u")
        status = app.screen.query_one("#gallery-status", Static)
        await wait_for(pilot, lambda: "tile" in str(status.render()), 120)
        assert "upscaling with Tiny ESRGAN x4 4x · tile" in str(status.render())
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: not upscales(app).running, 30)
        assert upscales(app).state.phase == "cancelled"
        await wait_for(pilot, lambda: any("stopped" in n for n in notes(app)), 10)
        assert "tile" not in str(status.render())
        assert len(History(core.paths.history_file).records()) == 2
        assert sorted(p.name for p in outputs.iterdir()) == [big.name]


# ---- how an upscaled entry looks ------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]
)
def test_gallery_upscaled_entry_snapshot(snap_compare, size):
    """An upscaled entry above its source: the Size column says the result's size and scale,
    the caption "upscaled 4x from <source> (the entry of <time>) · <upscaler>"."""
    from tests.test_snapshots_generate import DATA, make_app

    app = make_app()
    out = app.core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    h = History(app.core.paths.history_file)
    shutil.copy(DATA / "scene96x64.png", out / "11.png")
    params = {"prompt": "a lighthouse on a cliff at dusk", "width": 96, "height": 64}
    source = HistoryRecord(
        created="2026-01-02T03:04:05+00:00",
        model_id="flux2-klein-4b",
        diffusion_quant="Q4_K_S",
        text_encoder_quant="Q4_K_M",
        params=params,
        seed=11,
        images=[str(out / "11.png")],
        timings={"sample": 2.0, "total": 2.8},
    )
    h.add(source)
    Image.open(DATA / "scene96x64.png").resize((384, 256)).save(out / "11-x4.png")
    up = {
        "upscaler": "Real-ESRGAN x4plus",
        "upscaler_id": "realesrgan-x4plus",
        "scale": 4,
        "width": 384,
        "height": 256,
        "source": str(out / "11.png"),
        "source_record": source.id,
    }
    h.add(
        HistoryRecord(
            created="2026-01-02T03:05:00+00:00",
            model_id="flux2-klein-4b",
            diffusion_quant="Q4_K_S",
            text_encoder_quant="Q4_K_M",
            params={**params, "upscale": up},
            seed=11,
            images=[str(out / "11-x4.png")],
            timings={"upscale": 1.5, "total": 1.6},
        )
    )

    async def run_before(pilot) -> None:
        await pilot.press("f4")
        await pilot.pause()
        view = pilot.app.screen.query_one("#gallery-image")
        for _ in range(100):
            if view.shown is not None and view.shown_frame is view.current:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
