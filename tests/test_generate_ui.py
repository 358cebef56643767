"""Generate screen behaviour with a fake engine (UI only; the real engine runs in
test_generate_screen.py): batch strip, seed keys, notification, renderer palette command."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, TextArea

from distill_tui.app import DistillApp
from distill_tui.commands import app_commands
from distill_tui.display import STILL
from distill_tui.engine.client import GenerationResult
from distill_tui.engine.protocol import ImageEvent, PhaseEvent, ProgressEvent, Timings
from distill_tui.widgets.image_view import ImageView
from tests.gen_helpers import wait_for
from tests.test_snapshots_generate import fake_ready_core

DATA = Path(__file__).parent / "data"


class FakeEngine:
    """Emits canned events through the service, like EngineClient, and returns a result."""

    def __init__(self, app: DistillApp, images: list[Path], hold: float = 0.0) -> None:
        self.app = app
        self.images = images
        self.hold = hold
        self.requests = []
        self.loaded_model = None
        self.pid = None

    async def generate(self, load, gen):
        svc = self.app.generation
        self.requests.append(gen)
        svc.handle_state("busy")
        svc.handle_event(PhaseEvent(phase="encoding"))
        await asyncio.sleep(self.hold)
        events = []
        for i, p in enumerate(self.images):
            svc.handle_event(ProgressEvent(step=gen.steps, steps=gen.steps, image_index=i))
            ev = ImageEvent(path=str(p), seed=77 + i, width=64, height=64, index=i)
            svc.handle_event(ev)
            events.append(ev)
        svc.handle_state("ready")
        return GenerationResult(
            id="g1",
            seed=77,
            images=events,
            timings=Timings(total=0.1),
            paths=[str(p) for p in self.images],
        )

    async def cancel(self):
        return False

    async def unload(self):
        return None

    async def shutdown(self):
        return None


def batch_files(core, n: int) -> list[Path]:
    out = core.settings.outputs_dir
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        dest = out / f"img{i}.png"
        shutil.copy(DATA / ("scene96x64.png" if i % 2 else "gradient64.png"), dest)
        files.append(dest)
    return files


async def test_batch_strip_seed_keys_and_notification(isolated_dirs):
    core = fake_ready_core()
    core.settings.update(notify_after_seconds=0.0)
    files = batch_files(core, 3)
    engines: list[FakeEngine] = []

    def factory(app):
        engines.append(FakeEngine(app, files, hold=0.3))
        return engines[-1]

    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=factory
    )
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"three cats")
        app.screen.query_one("#batch", Input).value = "3"
        await pilot.press("ctrl+r")
        seed = app.screen.query_one("#seed", Input).value
        assert seed.isdigit()
        await pilot.press("ctrl+g")
        await pilot.press("f4")  # leave while it runs: it continues, and we get notified
        await wait_for(pilot, lambda: not app.generation.running, 10)
        assert app.generation.job.phase == "done"
        assert engines[0].requests[0].batch_count == 3
        assert engines[0].requests[0].seed == int(seed)
        assert bells == [1]
        await pilot.press("f2")
        await pilot.pause()
        view = app.screen.query_one("#image-view", ImageView)
        assert [f.path for f in view.frames] == [str(p) for p in files]
        assert view.index == 2  # the newest image of the batch stays on screen
        app.screen.query_one(ImageView).focus()
        await pilot.press("]")
        assert view.index == 0
        await pilot.press("]", "]")
        assert view.index == 2
        await pilot.press("[")
        assert view.index == 1
        await pilot.press("]")
        assert "3/3" in str(app.screen.query_one("#image-caption").render())
        # reuse the last seed
        app.screen.query_one("#seed", Input).value = ""
        await pilot.press("ctrl+l")
        assert app.screen.query_one("#seed", Input).value == "77"


async def test_no_notification_when_watching(isolated_dirs):
    core = fake_ready_core()
    core.settings.update(notify_after_seconds=0.0)
    files = batch_files(core, 1)
    app = DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        engine_factory=lambda a: FakeEngine(a, files),
    )
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.running, 5)
        await pilot.pause()
        assert bells == []


async def test_renderer_palette_command_switches_and_persists(isolated_dirs):
    from textual_image.widget import HalfcellImage, UnicodeImage

    core = fake_ready_core()
    files = batch_files(core, 1)
    app = DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        engine_factory=lambda a: FakeEngine(a, files),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        view = app.screen.query_one("#image-view", ImageView)
        await wait_for(
            pilot, lambda: view.shown is not None and view.shown_frame is view.current, 5
        )
        assert isinstance(view.query_one("#image-widget"), HalfcellImage)
        titles = {c.title: c for c in app_commands(app)}
        assert "Image renderer: halfcell (current)" in titles
        assert "Unload model (free memory)" in titles
        titles["Image renderer: unicode"].callback()
        await wait_for(
            pilot,
            lambda: (
                isinstance(view.query("#image-widget").first(None), UnicodeImage)
                and view.shown_frame is view.current
            ),
            5,
        )
        assert app.image_renderer == "unicode"
        assert core.settings.settings.image_renderer == "unicode"


# ---- the model selector follows readiness changes made elsewhere ---------------------------


def make_ready(core) -> None:
    """What F3 does: the files land in the inventory and the quants get selected."""
    from tests.test_snapshots_generate import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT

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


def shown_model_label(app: DistillApp) -> str:
    from textual.widgets._select import SelectCurrent

    from distill_tui.widgets.model_select import ModelSelect

    select = app.screen.query_one(ModelSelect)
    return str(select.query_one(SelectCurrent).query_one("#label").render())


async def test_model_selector_refreshes_after_model_manager(isolated_dirs):
    from distill_tui.context import CoreContext
    from distill_tui.widgets.model_select import SETUP_REQUIRED

    core = CoreContext.build()
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        assert shown_model_label(app) == "FLUX.2 Klein 4B" + SETUP_REQUIRED
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.current_mode == "models", 5)
        make_ready(core)  # downloads + selections in the Model Manager
        await pilot.press("f2")
        await pilot.pause()
        assert shown_model_label(app) == "FLUX.2 Klein 4B"


async def test_model_selector_refreshes_on_download_done_and_settings(isolated_dirs):
    from distill_tui.context import CoreContext
    from distill_tui.downloads.events import DownloadEvent, DownloadState
    from distill_tui.widgets.model_select import SETUP_REQUIRED
    from tests.test_snapshots_generate import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT
    from tests.test_snapshots_models import StubDownloads

    core = CoreContext.build()
    downloads = StubDownloads([])
    app = DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        downloads_factory=lambda a: downloads,
    )
    model = core.catalog.require(MODEL_ID)
    entries = (
        model.diffusion.get(DIFFUSION_QUANT),
        model.text_encoder.get(TEXT_ENCODER_QUANT),
        model.vae,
    )

    def emit(state: DownloadState) -> None:
        key = model.vae.file
        downloads.emit(DownloadEvent(key, MODEL_ID, "vae", None, state, 16, 16, 0.0, None))

    core_listeners = len(core.settings._listeners)  # the core's own (context.py)
    async with app.run_test(size=(120, 40)) as pilot:
        assert shown_model_label(app) == "FLUX.2 Klein 4B" + SETUP_REQUIRED
        assert len(core.settings._listeners) == core_listeners + 1  # the App's, none of screens
        # the registry is made on first use; the App is its one listener (the screens follow
        # the App's download_signal)
        assert app.downloads is downloads and len(downloads.listeners) == 1
        core.settings.set_quant(MODEL_ID, "diffusion", DIFFUSION_QUANT)
        core.settings.set_quant(MODEL_ID, "textEncoder", TEXT_ENCODER_QUANT)
        await pilot.pause()
        assert shown_model_label(app) == "FLUX.2 Klein 4B" + SETUP_REQUIRED
        # the files arrive (no settings change): only the download's "done" tells us
        for entry in entries:
            dest = core.inventory.abs_path(entry.file)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(b"x" * 16)
            core.inventory.record(entry.file, 16, None)
        emit(DownloadState.VERIFYING)
        await pilot.pause()
        assert shown_model_label(app) == "FLUX.2 Klein 4B" + SETUP_REQUIRED
        emit(DownloadState.DONE)
        await pilot.pause()
        assert shown_model_label(app) == "FLUX.2 Klein 4B"
        # a settings change (another quant, not downloaded) makes it not ready again
        other = next(q.id for q in model.diffusion.quants if q.id != DIFFUSION_QUANT)
        core.settings.set_quant(MODEL_ID, "diffusion", other)
        await pilot.pause()
        assert shown_model_label(app) == "FLUX.2 Klein 4B" + SETUP_REQUIRED
        assert len(downloads.listeners) == 1  # visiting screens added no listener
    # the settings store (the core's, it outlives the App) keeps no listener of the App's
    assert len(core.settings._listeners) == core_listeners


def test_notification_sequence_osc9_or_osc777():
    from distill_tui.formatting import notification_sequence

    assert notification_sequence("done", {"TERM": "xterm-kitty"}) == "\x1b]9;done\x07"
    vte = notification_sequence("done", {"TERM": "xterm-256color", "VTE_VERSION": "7600"})
    assert vte == "\x1b]777;notify;distill;done\x07"
    assert notification_sequence("a;b\x07", {"TERM": "rxvt-unicode"}).endswith(";a,b\x07")


async def test_notification_when_terminal_lost_focus(isolated_dirs):
    core = fake_ready_core()
    core.settings.update(notify_after_seconds=0.0)
    files = batch_files(core, 1)
    app = DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        engine_factory=lambda a: FakeEngine(a, files, hold=0.5),
    )
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.running, 5)
        await pilot.pause()  # the key event is fully handled (a key sets app_focus again)
        app.app_focus = False  # the person switched to another window
        await wait_for(pilot, lambda: app.generation.job and not app.generation.running, 5)
        await pilot.pause()
        assert bells == [1]


@pytest.mark.parametrize("web", [True, False])
async def test_auto_renderer_under_the_web_driver_is_colour_halfcells(
    isolated_dirs, monkeypatch, web
):
    """textual-serve (issue 23.8): no terminal was probed, so textual-image's automatic choice
    is its monochrome unicode shades; in a browser the picture is drawn in colour half-cells.
    (The web driver is what `App.is_web` reports; a real browser is not started here.)"""
    from textual.app import App
    from textual_image.widget import HalfcellImage, UnicodeImage

    monkeypatch.setattr(App, "is_web", property(lambda self: web))
    core = fake_ready_core()
    files = batch_files(core, 1)
    app = DistillApp(
        core,
        image_renderer="auto",
        display_settings=STILL,
        engine_factory=lambda a: FakeEngine(a, files),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        view = app.screen.query_one("#image-view", ImageView)
        await wait_for(
            pilot, lambda: view.shown is not None and view.shown_frame is view.current, 5
        )
        widget = view.query_one("#image-widget")
        # off the web, auto stays textual-image's own choice (under pytest, no tty: unicode)
        assert isinstance(widget, HalfcellImage) is web, type(widget)
        assert not isinstance(widget, UnicodeImage)
