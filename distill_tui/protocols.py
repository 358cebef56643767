"""The App-owned services as the TUI sees them: what a screen, a widget or the App may call.

The real classes (:class:`~distill_tui.downloads.service.DownloadManager`,
:class:`~distill_tui.generation.GenerationService`, :class:`~distill_tui.settings.SettingsStore`)
satisfy these structurally, and so do the fakes the tests give the App
(``downloads_factory``): the screens need no branch for a manager that lacks something, and
mypy checks every call they make. Each service publishes through a
:class:`~distill_tui.listeners.Listeners` (``subscribe`` returns the function that
unsubscribes); in the TUI only the App subscribes and republishes as Textual Signals.

No textual import (a core module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from distill_tui.downloads.events import DownloadEvent, PlanItem
    from distill_tui.generation import ChangeKind, GenParams, Job
    from distill_tui.settings import QuantSelection, Settings


@runtime_checkable
class DownloadService(Protocol):
    """The queue of file downloads (one per process; the App owns the TUI's)."""

    #: Range connections per file for the next files (Settings changes it live)
    connections: int

    def subscribe(self, callback: Callable[[DownloadEvent], None]) -> Callable[[], None]:
        """``callback(event)`` on the loop thread for every snapshot; returns unsubscribe."""
        ...

    def events(self) -> list[DownloadEvent]:
        """The latest snapshot of every file seen."""
        ...

    def status(self, key: str) -> DownloadEvent | None: ...

    def key_for(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """The key (path relative to the models dir) of a catalog file."""
        ...

    def enqueue(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """Queue one file (from the loop); returns its key."""
        ...

    async def queue_plan(self, items: Iterable[PlanItem]) -> tuple[list[DownloadEvent], list[str]]:
        """Ask the Hub about every file first; queue them all, or none: (failed, keys)."""
        ...

    def cancel(self, key: str) -> bool: ...

    def unfinished(self) -> list[PlanItem]:
        """(model, component, quant) of every file queued or running."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class GenerationControl(Protocol):
    """The one running generation, its progress and the engine's state."""

    job: Job | None
    last_seed: int | None
    #: not_started, starting, loading, ready, busy, failed
    engine_state: str
    #: the engine's backend once it started ("" before)
    backend: str
    clock: Callable[[], float]

    @property
    def running(self) -> bool: ...

    def subscribe(self, listener: Callable[[ChangeKind], None]) -> Callable[[], None]:
        """``listener(kind)`` on every change; returns unsubscribe."""
        ...

    def engine_line(self) -> str:
        """One line for the status bar."""
        ...

    async def generate(
        self,
        params: GenParams,
        model_id: str | None = None,
        selection: QuantSelection | None = None,
    ) -> Job | None: ...

    async def cancel(self) -> bool: ...

    async def unload(self) -> bool: ...

    async def switch_model(self, model_id: str) -> None: ...


@runtime_checkable
class SettingsFeed(Protocol):
    """The settings value and its changes (this process's saves and other processes')."""

    @property
    def settings(self) -> Settings: ...

    def subscribe(self, callback: Callable[[Settings], None]) -> Callable[[], None]: ...
