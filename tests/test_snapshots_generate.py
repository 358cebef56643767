"""SVG snapshots of the Generate screen and the Gallery at 120x40 and 80x24.

Deterministic: half-cell renderer, a committed PNG (tests/data), a fixed clock for elapsed
time, file names instead of absolute paths (``display.STILL``), UTC for record times,
engine state and job set directly on the App's GenerationService (no engine process).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.engine.protocol import ImageEvent, Timings
from distill_tui.generation import GenParams, Job
from distill_tui.outputs import History, HistoryRecord
from tests.gen_helpers import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT

DATA = Path(__file__).parent / "data"
SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fake_ready_core() -> CoreContext:
    """The 4B model looks downloaded and selected (placeholder bytes; never loaded)."""
    core = CoreContext.build()
    model = core.catalog.require(MODEL_ID)
    for entry in (
        model.diffusion.get(DIFFUSION_QUANT),
        model.text_encoder.get(TEXT_ENCODER_QUANT),
        model.vae,
    ):
        dest = core.inventory.abs_path(entry.file)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"x" * 16)
        core.inventory.record(entry.file, 16, None)
    core.settings.set_quant(MODEL_ID, "diffusion", DIFFUSION_QUANT)
    core.settings.set_quant(MODEL_ID, "textEncoder", TEXT_ENCODER_QUANT)
    return core


def make_app() -> DistillApp:
    app = DistillApp(fake_ready_core(), image_renderer="halfcell", display_settings=STILL)
    app.generation.clock = lambda: 100.0
    return app


PARAMS = GenParams(
    prompt="a lighthouse on a cliff at dusk, oil painting",
    width=1024,
    height=1024,
    steps=4,
    seed=-1,
)


def ready_engine(app: DistillApp) -> None:
    svc = app.generation
    svc.engine_state, svc.backend = "ready", "CPU"
    svc.loaded_label = f"{MODEL_ID} · {DIFFUSION_QUANT} + {TEXT_ENCODER_QUANT}"


async def type_prompt(pilot) -> None:
    await pilot.press(*PARAMS.prompt)


@pytest.mark.parametrize("size", SIZES)
def test_generate_empty(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_generate_with_image(snap_compare, size):
    app = make_app()
    out = app.core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    png = out / "20260102-030405-000_1234_0.png"
    shutil.copy(DATA / "scene96x64.png", png)

    async def run_before(pilot) -> None:
        await type_prompt(pilot)
        svc = app.generation
        ready_engine(app)
        job = Job(
            number=1,
            params=PARAMS,
            model_id=MODEL_ID,
            diffusion_quant=DIFFUSION_QUANT,
            text_encoder_quant=TEXT_ENCODER_QUANT,
            started=96.0,
        )
        svc.job = job
        job.images = [ImageEvent(path=str(png), seed=1234, width=96, height=64, index=0)]
        job.timings = Timings(load=1.2, encode=0.4, sample=2.0, decode=0.3, total=2.8)
        job.seed, job.phase, job.finished = 1234, "done", 100.0
        svc._changed("finished")
        view = app.screen.query_one("#image-view")
        for _ in range(100):
            if view.shown_frame is not None and view.shown is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_generate_mid_generation(snap_compare, size):
    app = make_app()
    preview = (DATA / "gradient64.png").read_bytes()

    async def run_before(pilot) -> None:
        await type_prompt(pilot)
        svc = app.generation
        ready_engine(app)
        svc.engine_state = "busy"
        job = Job(
            number=1,
            params=PARAMS,
            model_id=MODEL_ID,
            diffusion_quant=DIFFUSION_QUANT,
            text_encoder_quant=TEXT_ENCODER_QUANT,
            started=97.5,
        )
        svc.job = job
        svc._changed("job")
        job.phase, job.step, job.steps, job.seconds_per_step = "sampling", 2, 4, 0.61
        job.preview_png, job.preview_step = preview, 2
        svc._changed("progress")
        svc._changed("preview")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_generate_model_selector_open(snap_compare, size):
    async def run_before(pilot) -> None:
        pilot.app.screen.query_one("#model-select").focus()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_gallery(snap_compare, size):
    app = make_app()
    out = app.core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    h = History(app.core.paths.history_file)
    rows = [
        (
            "2026-01-02T03:04:05+00:00",
            "a lighthouse on a cliff at dusk, oil painting",
            11,
            "scene96x64.png",
        ),
        ("2026-01-02T03:10:00+00:00", "gradient study", 22, "gradient64.png"),
        ("2026-01-02T03:20:00+00:00", "a deleted picture of a cat", 33, None),
    ]
    for created, prompt, seed, src in rows:
        name = f"{seed}.png"
        if src:
            shutil.copy(DATA / src, out / name)
        h.add(
            HistoryRecord(
                created=created,
                model_id=MODEL_ID,
                diffusion_quant=DIFFUSION_QUANT,
                text_encoder_quant=TEXT_ENCODER_QUANT,
                params={"prompt": prompt, "width": 1024, "height": 1024, "steps": 4},
                seed=seed,
                images=[str(out / name)],
                timings={"sample": 2.0, "total": 2.8},
            )
        )

    async def run_before(pilot) -> None:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("down")  # the newest is missing; select the one below it
        view = pilot.app.screen.query_one("#gallery-image")
        for _ in range(100):
            if view.shown is not None and view.shown_frame is view.current:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_generate_advanced_open(snap_compare):
    """80x24: ctrl+n opens the advanced section (engine knobs, img2img, LoRA); the form
    scrolls to it and every row is one line."""

    async def run_before(pilot) -> None:
        await type_prompt(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
