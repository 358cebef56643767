"""Downloads: resumable, verified, parallel-segment fetching of catalog files from the Hub.

No textual import anywhere in this package: the CLI and the TUI both use it. Importing the
package (or its events, errors and rate modules) does not import httpx: ``DownloadManager``
is loaded from ``service`` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distill_tui.downloads.errors import DownloadError
from distill_tui.downloads.events import (
    COMPONENTS_ORDER,
    DownloadEvent,
    DownloadState,
    PlanItem,
)

if TYPE_CHECKING:
    from distill_tui.downloads.service import DownloadManager

__all__ = [
    "COMPONENTS_ORDER",
    "DownloadError",
    "DownloadEvent",
    "DownloadManager",
    "DownloadState",
    "PlanItem",
]


def __getattr__(name: str) -> Any:
    if name == "DownloadManager":
        from distill_tui.downloads.service import DownloadManager

        return DownloadManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
