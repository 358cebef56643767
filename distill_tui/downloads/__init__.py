"""Downloads: resumable, verified, parallel-segment fetching of catalog files from the Hub.

No textual import anywhere in this package: the CLI and the TUI both use it.
"""

from distill_tui.downloads.errors import DownloadError
from distill_tui.downloads.service import (
    COMPONENTS_ORDER,
    DownloadEvent,
    DownloadManager,
    DownloadState,
    PlanItem,
)

__all__ = [
    "COMPONENTS_ORDER",
    "DownloadError",
    "DownloadEvent",
    "DownloadManager",
    "DownloadState",
    "PlanItem",
]
