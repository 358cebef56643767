"""Typed events and one way to listen (issue 12.3).

- The download events module imports no HTTP client (the rows and the App's bridge read it
  before any download runs).
- The App-owned services have Protocols (distill_tui/protocols.py) that the real classes and
  the tests' fakes both satisfy: checked by mypy, not only at run time.
- The App is the one listener of each service and republishes as Textual Signals; failures
  of its work are reported there, once, whatever screen is showing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.downloads.events import DownloadEvent, DownloadState
from distill_tui.protocols import DownloadService, GenerationControl, SettingsFeed
from distill_tui.screens.models import ModelManagerScreen
from tests.test_snapshots_models import StubDownloads

ROOT = Path(__file__).resolve().parent.parent
K4 = "flux2-klein-4b"


@pytest.mark.parametrize("module", ["distill_tui.downloads.events", "distill_tui.downloads"])
def test_download_events_import_no_http_client(module: str) -> None:
    code = f"import {module}, sys; assert 'httpx' not in sys.modules, 'httpx imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_old_import_paths_still_work() -> None:
    from distill_tui.downloads import DownloadManager
    from distill_tui.downloads import DownloadState as PackageState
    from distill_tui.downloads.service import DownloadEvent as ServiceEvent
    from distill_tui.downloads.service import DownloadManager as ServiceManager
    from distill_tui.screens.models import Elsewhere

    assert DownloadManager is ServiceManager
    assert ServiceEvent is DownloadEvent and PackageState is DownloadState
    from distill_tui.downloads.events import Elsewhere as EventsElsewhere

    assert Elsewhere is EventsElsewhere


def test_real_services_and_fakes_satisfy_the_protocols_at_run_time() -> None:
    from distill_tui.downloads.service import DownloadManager
    from distill_tui.generation import GenerationService
    from tests.test_settings_screen import BusyDownloads

    core = CoreContext.build()
    manager = DownloadManager(core.catalog, core.settings, core.inventory, io_thread=False)
    for downloads in (manager, StubDownloads([]), BusyDownloads([])):
        assert isinstance(downloads, DownloadService)
    assert isinstance(GenerationService(core, lambda: None), GenerationControl)  # type: ignore[arg-type, return-value]
    assert isinstance(core.settings, SettingsFeed)


def test_real_services_and_fakes_satisfy_the_protocols_for_mypy(tmp_path: Path) -> None:
    """Signatures too (a fake's ``key_for`` without the default fails here)."""
    check = tmp_path / "check_protocols.py"
    check.write_text(
        textwrap.dedent(
            """
            from distill_tui.downloads.service import DownloadManager
            from distill_tui.generation import GenerationService
            from distill_tui.protocols import DownloadService, GenerationControl, SettingsFeed
            from distill_tui.settings import SettingsStore
            from tests.test_settings_screen import BusyDownloads
            from tests.test_snapshots_models import StubDownloads


            def real(
                m: DownloadManager, g: GenerationService, s: SettingsStore
            ) -> tuple[DownloadService, GenerationControl, SettingsFeed]:
                return m, g, s


            def fakes() -> tuple[DownloadService, DownloadService]:
                return StubDownloads([]), BusyDownloads([])
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", str(check)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


# ---- the App's bridge ------------------------------------------------------------------------
def vae_event(core: CoreContext, state: DownloadState, error: str | None = None) -> DownloadEvent:
    key = core.catalog.require(K4).vae.file
    return DownloadEvent(key, K4, "vae", None, state, 0, 100, 0.0, None, error=error)


async def test_a_failed_download_is_reported_once_whatever_screen_shows(monkeypatch) -> None:
    core = CoreContext.build()
    stub = StubDownloads([])
    app = DistillApp(core, downloads_factory=lambda a: stub, display_settings=STILL)
    failures: list[tuple[str, str]] = []
    monkeypatch.setattr(app, "report_failure", lambda t, m: failures.append((t, m)))
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.downloads is stub
        assert len(stub.listeners) == 1  # the App's bridge, the one listener
        seen: list[DownloadEvent] = []
        app.download_signal.subscribe(app.screen, seen.append, immediate=True)
        # on the Generate screen (the Model Manager never shown): still reported
        stub.emit(vae_event(core, DownloadState.DOWNLOADING))
        stub.emit(vae_event(core, DownloadState.FAILED, "HTTP 404: gone; rerun later"))
        await pilot.pause()
        assert [s.state for s in seen] == ["downloading", "failed"]
        assert len(failures) == 1
        title, text = failures[0]
        assert title == "Download failed: FLUX.2 Klein 4B VAE"
        assert "HTTP 404" in text and "press r" in text  # the TUI's words (errors.for_surface)
        # the same failure again (a snapshot repeated) is not a new failure
        stub.emit(vae_event(core, DownloadState.FAILED, "HTTP 404: gone; rerun later"))
        # with the Model Manager showing (it follows the signal too): reported once, by the App
        await pilot.press("f3")
        await pilot.pause()
        assert len(stub.listeners) == 1
        stub.emit(vae_event(core, DownloadState.QUEUED))
        stub.emit(vae_event(core, DownloadState.FAILED, "HTTP 503"))
        await pilot.pause()
        assert len(failures) == 2 and "HTTP 503" in failures[1][1]
        models = app.screen
        assert isinstance(models, ModelManagerScreen)
        assert {row.state for row in models.rows_for(stub.events()[0].key)} == {"failed"}
        # the Generate screen, in the background, still follows (Textual keeps its subscription)
        assert [s.state for s in seen][-2:] == ["queued", "failed"]
        # a model of another shape (an upscaler: one file, no VAE) is named the same way
        up = core.catalog.require("realesrgan-x4plus")
        up_key = up.component("upscaler").file.file
        for state in (DownloadState.DOWNLOADING, DownloadState.FAILED):
            err = "HTTP 404: gone" if state == DownloadState.FAILED else None
            stub.emit(
                DownloadEvent(up_key, up.id, "upscaler", None, state, 0, 9, 0.0, None, error=err)
            )
        await pilot.pause()
        assert failures[-1][0] == "Download failed: Real-ESRGAN x4plus Upscaler", failures[-1]


async def test_a_failed_generation_is_reported_by_the_app_once(monkeypatch) -> None:
    from distill_tui.generation import GenParams, Job

    core = CoreContext.build()
    app = DistillApp(core, downloads_factory=lambda a: StubDownloads([]), display_settings=STILL)
    failures: list[tuple[str, str]] = []
    monkeypatch.setattr(app, "report_failure", lambda t, m: failures.append((t, m)))
    async with app.run_test(size=(120, 40)) as pilot:
        kinds: list[str] = []
        await pilot.press("f4")  # the Gallery: a failure is still reported
        await pilot.pause()
        app.generation_signal.subscribe(app.screen, kinds.append, immediate=True)
        service = app._generation_service()
        service.job = Job(1, GenParams(prompt="a cat"), K4, "Q4_K_S", "Q4_K_M", 0.0)
        service.job.phase, service.job.error = "failed", "out of memory"
        service._changed("finished")
        await pilot.pause()
        assert kinds == ["finished"]
        assert failures == [("Generation failed", "out of memory")]
