"""What the download service tells its listeners: the states of a file and its snapshots.

Small on purpose: no httpx, no textual. The TUI's rows, the App's bridge and the CLI read
these types without pulling the fetcher in (``python -c "import
distill_tui.downloads.events"`` imports no HTTP client).

- :class:`DownloadState` and :class:`DownloadEvent`: one progress/status snapshot of one file
  of this process's :class:`~distill_tui.downloads.service.DownloadManager`.
- :class:`Elsewhere`: a download this process does not run, shaped like a DownloadEvent for
  the Model Manager's rows (another distill process's, or a partial on disk nobody works on).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from distill_tui.downloads.rate import Retry, eta_for

if TYPE_CHECKING:
    from distill_tui.downloads.activity import Activity

COMPONENTS_ORDER = ("diffusion", "textEncoder", "vae")

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
    speed: float  #: bytes/s received over the last seconds (rate.py); 0 while unknown
    eta: float | None  #: seconds; None while unknown (no rate yet, stalled, beyond 99 h)
    error: str | None = None  #: actionable, redacted, one or two lines
    error_kind: str | None = (
        None  #: gated|auth|not_found|disk|checksum|network|upstream_changed|locked|...
    )
    resumable: bool = False  #: a .part (with its sidecar) is kept on disk
    note: str | None = None  #: transient information, e.g. "waiting for another distill process"
    #: where the bytes come from (repo or host), for a file the catalog lists several sources of
    source: str | None = None
    #: the same bytes found on this machine (localreuse): "linked from the HF cache (hard
    #: link, no copy)", or why a candidate was not used ("not reused: … other bytes …")
    reuse: str | None = None

    #: a failed attempt that will be retried while no byte moves (HTTP 503, a dropped
    #: connection...): ``retry.text()`` is "retrying (HTTP 503, attempt 3 of 7, next in 4 s)"
    retry: Retry | None = None
    #: seconds without a byte while downloading (no retry pending): "stalled"
    stalled: float | None = None
    #: why the numbers do not move, in words, as of this snapshot (None when they do):
    #: ``retry.text()`` or "stalled (no data for 12 s)". The rows and the CLI show it instead
    #: of a speed and an ETA.
    activity: str | None = None

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 1.0 if self.state == DownloadState.DONE else 0.0
        return max(0.0, min(1.0, self.bytes_done / self.total))

    @property
    def finished(self) -> bool:
        """A final state: done, failed, cancelled or paused."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Elsewhere:
    """A download this process does not run, shaped like a DownloadEvent for the rows: another
    process's (``pid``) or a partial on disk nobody works on (``partial_only``)."""

    key: str
    model_id: str
    component: str | None
    quant_id: str | None
    state: DownloadState  #: DOWNLOADING (another process) or PAUSED (an idle partial)
    bytes_done: int
    total: int
    speed: float
    eta: float | None
    pid: int | None = None
    partial_only: bool = False
    resumable: bool = True
    error: str | None = None
    error_kind: str | None = None
    note: str | None = None
    source: str | None = None
    finished: bool = False
    #: "stalled — not progressing for 17 s (pid 4242, stopped)": its holder stopped beating
    activity: str | None = None
    retry: None = None  #: (another process's retries are its own)

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.total if self.total else 0.0

    @classmethod
    def of(cls, a: Activity) -> Elsewhere:
        assert a.model_id is not None  # the Model Manager shows catalog files only
        speed = round(a.speed or 0.0, -3)  # rounded: equal looks compare equal (no repaint)
        eta = eta_for(a.size - a.done, speed) if a.size > a.done else None
        return cls(
            key=a.key,
            model_id=a.model_id,
            component=a.component,
            quant_id=a.quant_id,
            state=DownloadState.DOWNLOADING if a.running else DownloadState.PAUSED,
            bytes_done=a.done,
            total=a.size,
            speed=speed,
            eta=eta,
            pid=a.pid if a.running else None,
            partial_only=not a.running,
            activity=a.holder.stalled_text() if a.stalled and a.holder else None,
        )


#: what a Model Manager row shows for a file: this process's snapshot or another's download
ShownDownload = DownloadEvent | Elsewhere

__all__ = [
    "COMPONENTS_ORDER",
    "FINAL_STATES",
    "DownloadEvent",
    "DownloadState",
    "Elsewhere",
    "PlanItem",
    "ShownDownload",
]
