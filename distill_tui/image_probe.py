"""textual-image's terminal probe, run while the rest of distill starts.

Importing ``textual_image.renderable`` asks the terminal what it can draw (Sixel? the Kitty
graphics protocol?) and the cell size in pixels; each question waits up to ~0.1 s for an
answer, so on a terminal that stays silent (or over a slow SSH link) the probe costs ~0.4 s.
It has to happen before Textual takes the terminal over, but nothing says it has to happen
*before* distill imports Textual, pydantic and its catalog: the probe mostly waits (select()
releases the GIL), so it runs on a thread beside those imports and :func:`finish` joins it
right before the app starts. The thread never imports textual (the widget module, which
does, is imported afterwards and finds the probe's results cached).
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_thread: threading.Thread | None = None


def _probe() -> None:
    try:
        import textual_image.renderable  # noqa: F401  (Sixel / Kitty graphics probe)
        from textual_image._terminal import get_cell_size

        get_cell_size()  # cached by textual-image for its widgets
    except Exception:  # never fatal: the half-cell fallback needs nothing special
        log.warning("textual-image could not probe the terminal", exc_info=True)


def start() -> None:
    """Start the probe (once) on a daemon thread."""
    global _thread
    if _thread is None:
        quiet = logging.getLogger("textual_image")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        _thread = threading.Thread(target=_probe, name="image-probe", daemon=True)
        _thread.start()


def finish(timeout: float = 5.0) -> None:
    """Wait for the probe (starting it if nobody did), then import the widget module."""
    start()
    assert _thread is not None
    _thread.join(timeout)
    if _thread.is_alive():
        log.warning(
            "the terminal probe did not finish in %.0f s; images may draw as blocks", timeout
        )
        return
    try:
        import textual_image.widget  # noqa: F401
    except Exception:
        log.warning("textual-image widgets unavailable", exc_info=True)
