"""SVG snapshots of the Model Manager (F3) at 80x24 and 120x40.

UI-only: the bundled catalog, a stub download registry that replays fixed events (no
network, no clock), sparse files recorded in the inventory for "downloaded", the models dir
under ``~`` and a fixed free-space figure, so nothing host- or time-dependent is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.downloads import DownloadEvent, DownloadState, PlanItem
from distill_tui.listeners import Listeners
from distill_tui.paths import AppPaths

SIZES = [(80, 24), (120, 40)]
MODEL = "flux2-klein-4b"


class StubDownloads:
    """A download registry that replays fixed events and downloads nothing: it satisfies
    :class:`distill_tui.protocols.DownloadService` like the real DownloadManager (checked by
    tests/test_service_protocols.py). ``emit`` publishes one more event, as the service
    would."""

    connections = 8

    def __init__(self, events: list[DownloadEvent]):
        self._events = {e.key: e for e in events}
        self.listeners: Listeners[DownloadEvent] = Listeners("stub downloads")

    def subscribe(self, callback: Callable[[DownloadEvent], None]) -> Callable[[], None]:
        return self.listeners.subscribe(callback)

    def emit(self, event: DownloadEvent) -> None:
        self._events[event.key] = event
        self.listeners.publish(event)

    def events(self) -> list[DownloadEvent]:
        return list(self._events.values())

    def status(self, key: str) -> DownloadEvent | None:
        return self._events.get(key)

    def key_for(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        for e in self._events.values():
            if (e.model_id, e.component, e.quant_id) == (model_id, component, quant_id):
                return e.key
        raise KeyError((model_id, component, quant_id))

    def enqueue(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        raise AssertionError("snapshot tests do not download")

    async def queue_plan(self, items: Iterable[PlanItem]) -> tuple[list[DownloadEvent], list[str]]:
        raise AssertionError("snapshot tests do not download")

    def cancel(self, key: str) -> bool:
        return False

    def unfinished(self) -> list[PlanItem]:
        return []  # replayed events are pictures: nothing runs

    async def aclose(self) -> None:
        return None


def build_app(
    *,
    downloaded: tuple[tuple[str, str | None], ...] = (),
    selections: dict[str, Any] | None = None,
    events: Callable[[Any], list[DownloadEvent]] = lambda m: [],
) -> DistillApp:
    paths = AppPaths.from_env()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "model_base_path": "~/models",
                "model_quant_selections": selections or {},
            }
        )
    )
    core = CoreContext.build(paths)
    core.inventory.free_bytes = lambda: 512_000_000_000  # type: ignore[method-assign]
    model = core.catalog.require(MODEL)
    for component, qid in downloaded:
        f = model.vae if component == "vae" else model.section(component).get(qid)
        assert f is not None
        path = core.inventory.abs_path(f.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.truncate(f.size)  # sparse: the real size, no disk used
        core.inventory.record(f.file, f.size, None)
    stub = StubDownloads(events(model))
    return DistillApp(core, downloads_factory=lambda app: stub, display_settings=STILL)


def mid_download(model: Any) -> list[DownloadEvent]:
    q = model.diffusion.get("Q4_K_S")
    return [
        DownloadEvent(
            q.file,
            model.id,
            "diffusion",
            "Q4_K_S",
            DownloadState.DOWNLOADING,
            int(q.size * 0.42),
            q.size,
            25e6,
            80.0,
        ),
        DownloadEvent(
            model.vae.file,
            model.id,
            "vae",
            None,
            DownloadState.QUEUED,
            0,
            model.vae.size,
            0.0,
            None,
        ),
    ]


def failed_vae(model: Any) -> list[DownloadEvent]:
    return [
        DownloadEvent(
            model.vae.file,
            model.id,
            "vae",
            None,
            DownloadState.FAILED,
            0,
            model.vae.size,
            0.0,
            None,
            error=(
                "black-forest-labs/FLUX.2-dev is gated: accept the license at "
                "https://huggingface.co/black-forest-labs/FLUX.2-dev and set HF_TOKEN "
                "(or `hf auth login`)"
            ),
            error_kind="gated",
        )
    ]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_fresh(snap_compare, size) -> None:
    assert snap_compare(build_app(), press=["f3"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_mid_download(snap_compare, size) -> None:
    app = build_app(
        downloaded=(("diffusion", "Q3_K_S"),),
        selections={MODEL: {"diffusionQuant": "Q3_K_S"}},
        events=mid_download,
    )
    # cursor on the downloading row (Q4_K_S): header -> Q3_K_S -> Q4_K_S
    assert snap_compare(app, press=["f3", "down", "down"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_ready(snap_compare, size) -> None:
    app = build_app(
        downloaded=(("diffusion", "Q4_K_S"), ("textEncoder", "Q4_K_M"), ("vae", None)),
        selections={MODEL: {"diffusionQuant": "Q4_K_S", "textEncoderQuant": "Q4_K_M"}},
    )
    assert snap_compare(app, press=["f3"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_failed_row(snap_compare, size) -> None:
    app = build_app(events=failed_vae)
    # tab: header -> diffusion set -> text encoder set -> VAE row (scrolled into view)
    assert snap_compare(app, press=["f3", "tab", "tab", "tab"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_help(snap_compare, size) -> None:
    assert snap_compare(build_app(), press=["f3", "f1"], terminal_size=size)
