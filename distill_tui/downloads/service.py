"""The download service: an asyncio queue of files, progress events, cancel, verify, publish.

Threading model: everything here runs on ONE asyncio event loop (the TUI's App loop, or the
loop ``asyncio.run`` creates in the CLI). ``enqueue``/``cancel``/``subscribe`` must be called
from that loop's thread; subscriber callbacks are invoked on it too (so a Textual widget may
update itself directly, or ``post_message``). Blocking work (hashing, fsync) runs in worker
threads via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from distill_tui.downloads.errors import DownloadError
from distill_tui.hftoken import get_token

if TYPE_CHECKING:
    from distill_tui.catalog import Catalog, CatalogFile
    from distill_tui.inventory import Inventory
    from distill_tui.settings import SettingsStore

log = logging.getLogger(__name__)

COMPONENTS_ORDER = ("diffusion", "textEncoder", "vae")
_UNSET = object()

#: (model_id, component, quant_id or None for the VAE)
PlanItem = tuple[str, str, str | None]


class DownloadState(StrEnum):
    QUEUED = "queued"
    PREFLIGHT = "preflight"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


FINAL_STATES = frozenset(
    {DownloadState.DONE, DownloadState.FAILED, DownloadState.CANCELLED, DownloadState.PAUSED}
)


@dataclass(frozen=True)
class DownloadEvent:
    """One progress/status snapshot of one file."""

    key: str  #: the file's path relative to the models dir (the shared VAE has ONE key)
    model_id: str
    component: str  #: "diffusion" | "textEncoder" | "vae"
    quant_id: str | None
    state: DownloadState
    bytes_done: int
    total: int
    speed: float  #: bytes/s, smoothed
    eta: float | None  #: seconds
    error: str | None = None  #: actionable, redacted, one or two lines
    error_kind: str | None = None  #: gated|auth|not_found|disk|checksum|network|upstream_changed|locked|...
    resumable: bool = False  #: a .part (with its sidecar) is kept on disk

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 1.0 if self.state == DownloadState.DONE else 0.0
        return max(0.0, min(1.0, self.bytes_done / self.total))

    @property
    def finished(self) -> bool:
        """A final state: done, failed, cancelled or paused."""
        return self.state in FINAL_STATES


class DownloadManager:
    """Owns the queue of file downloads. One instance per process (the App owns the TUI's).

    - ``enqueue`` adds one catalog file; the same file (same key) twice is one download.
    - ``concurrency`` files run at once (default: settings.download_concurrency, 1);
      each file uses ``connections`` parallel Range segments (settings.connections_per_file, 8).
    - On success the file is published (size + sha256 verified, fsync, os.replace), recorded
      in the Inventory, and if the model had no selection for that component the downloaded
      quant becomes the selection.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: SettingsStore,
        inventory: Inventory,
        *,
        token: str | None | object = _UNSET,
        concurrency: int | None = None,
        connections: int | None = None,
        stall_timeout: float = 30.0,
        retries: int = 6,
        backoff: float = 1.0,
        disk_margin: int | None = None,
        wait_for_lock: bool = True,
    ):
        self.catalog = catalog
        self.settings = settings
        self.inventory = inventory
        self.token: str | None = get_token() if token is _UNSET else token  # type: ignore[assignment]
        s = settings.settings
        self.concurrency = max(1, concurrency or s.download_concurrency)
        self.connections = max(1, connections or s.connections_per_file)
        self.stall_timeout = stall_timeout
        self.retries = retries
        self.backoff = backoff
        self.disk_margin = disk_margin
        self.wait_for_lock = wait_for_lock
        self._subscribers: list[Callable[[DownloadEvent], None]] = []
        self._events: dict[str, DownloadEvent] = {}

    # ---- events ----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[DownloadEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on the loop thread for every snapshot; returns unsubscribe.

        Progress is throttled to ~10 events/s per file; state changes and final states are
        always delivered.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def status(self, key: str) -> DownloadEvent | None:
        return self._events.get(key)

    def events(self) -> list[DownloadEvent]:
        """Latest snapshot of every key this manager has seen."""
        return list(self._events.values())

    # ---- queue -----------------------------------------------------------------------
    def key_for(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """The key (relative path) of a catalog file; raises DownloadError(not_found)."""
        return self._file(model_id, component, quant_id).file

    def enqueue(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """Queue one file (must be called from the running loop). Returns its key."""
        raise NotImplementedError

    async def preflight(self, items: Iterable[PlanItem]) -> list[DownloadEvent]:
        """HEAD every file of the plan; return FAILED events (gated, missing, changed...)."""
        raise NotImplementedError

    async def download_plan(self, items: Iterable[PlanItem]) -> list[DownloadEvent]:
        """Preflight + disk check for the whole plan, then enqueue all and wait for them.

        If the preflight or the disk check fails nothing is downloaded and the failed events
        are returned. Otherwise returns the final event of every file.
        """
        raise NotImplementedError

    def cancel(self, key: str) -> bool:
        """Stop one file; its partial stays resumable; state CANCELLED. False if not active."""
        raise NotImplementedError

    async def wait(self, key: str) -> DownloadEvent:
        """Wait until ``key`` reaches a final state and return that event."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop every worker; running files end PAUSED with a resumable partial."""
        raise NotImplementedError

    # ---- helpers ---------------------------------------------------------------------
    def _file(self, model_id: str, component: str, quant_id: str | None) -> CatalogFile:
        model = self.catalog.get(model_id)
        if model is None:
            raise DownloadError("not_found", f"unknown model {model_id!r}")
        if component == "vae":
            return model.vae
        try:
            section = model.section(component)
        except KeyError:
            raise DownloadError("not_found", f"unknown component {component!r}") from None
        qid = quant_id or model.default_quant(component)
        q = section.get(qid)
        if q is None:
            raise DownloadError(
                "not_found",
                f"unknown {component} quant {qid!r} for {model_id}; valid: {', '.join(section.ids)}",
            )
        return q

    def _emit(self, event: DownloadEvent) -> None:
        self._events[event.key] = event
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                log.exception("download subscriber failed")


__all__ = [
    "COMPONENTS_ORDER",
    "DownloadEvent",
    "DownloadManager",
    "DownloadState",
    "PlanItem",
    "replace",
]
