"""What the terminal can draw, asked while the rest of distill starts; textual-image itself
loaded only when the first image is drawn.

Before Textual takes the terminal over, someone has to ask it: Sixel (the Primary Device
Attributes list holds 4)? the Kitty graphics protocol (a query image answered "OK")? the cell
size in pixels? Each question waits up to 0.1 s for an answer, so on a silent terminal (or a
slow SSH link) asking costs ~0.3 s. It runs on a thread beside distill's own imports (the
thread mostly waits in select(), which releases the GIL), and :func:`finish` joins it right
before the app starts.

textual-image asks the same questions when its ``renderable`` package is imported - and that
import brings numpy and Pillow, ~0.15 s of CPU that, on the thread, competed with the first
paint for the GIL. So the thread asks with textual-image's own terminal helper (its
``_terminal`` module: the standard library only) and remembers the answer;
:func:`widget_module` imports the rest later (after the first paint, or when the first image
is drawn) with the questions suppressed, and sets the renderer the answers chose - the one
textual-image would have chosen: Sixel first, then Kitty, then half cells on a terminal,
Unicode without one.
"""

from __future__ import annotations

import logging
import sys
import threading
from random import randint
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_thread: threading.Thread | None = None
_lock = threading.Lock()
#: what the terminal answered: "sixel", "kitty", "halfcell" (a terminal that draws neither)
#: or "unicode" (no terminal); None until the probe ran (or when it failed)
detected: str | None = None
_widgets: ModuleType | None = None


def _ask(start: str, end: str, query: str) -> str | None:
    """Write ``query`` and return the answer between ``start`` and ``end`` (None: none came
    within 0.1 s, or it could not be read)."""
    from textual_image._terminal import TerminalError, capture_terminal_response

    out = sys.__stdout__
    if out is None:
        return None
    try:
        with capture_terminal_response(start_marker=start, end_marker=end, timeout=0.1) as r:
            out.write(query)
            out.flush()
        return str(r.sequence)[len(start) : -len(end)]
    except (TerminalError, TimeoutError):
        return None


def _pixel_size_known() -> bool:
    """The terminal's window size includes pixels (``TIOCGWINSZ``; OpenSSH forwards them):
    textual-image derives the cell size from it without asking the terminal."""
    try:
        from textual_image._terminal import get_tiocgwinsz

        rows, columns, width, height = get_tiocgwinsz()
    except Exception:
        return False
    return bool(rows and columns and width and height)


def _probe() -> None:
    global detected
    try:
        from textual_image._terminal import get_cell_size

        out = sys.__stdout__
        if not (out and out.isatty()):
            detected = "unicode"
            return
        da1 = _ask("\x1b[?", "c", "\x1b[c")
        if da1 is None:
            # Every terminal that draws images answers this first question; one that stays
            # silent answers nothing else either: no more 0.1 s waits for the Kitty query and
            # the cell size (textual-image's defaults are used, as after its own timeouts)
            detected = "halfcell"
            if _pixel_size_known():
                get_cell_size()  # from the window size in pixels: nothing is asked
            else:
                _without_terminal(get_cell_size)
            return
        if "4" in da1.split(";"):
            detected = "sixel"
        else:
            query = f"\x1b_Gi={randint(1, 2**32)},s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
            answer = _ask("\x1b_G", "\x1b\\", query)
            ok = answer is not None and answer.rsplit(";", 1)[-1] == "OK"
            detected = "kitty" if ok else "halfcell"
        get_cell_size()  # cached by textual-image for its widgets
    except Exception:  # never fatal: the half-cell fallback needs nothing special
        log.warning("could not probe the terminal", exc_info=True)


def start() -> None:
    """Start the probe (once) on a daemon thread."""
    global _thread
    with _lock:
        if _thread is None:
            quiet = logging.getLogger("textual_image")
            quiet.addHandler(logging.NullHandler())
            quiet.propagate = False
            _thread = threading.Thread(target=_probe, name="image-probe", daemon=True)
            _thread.start()


def finish(timeout: float = 5.0) -> None:
    """Wait for the probe (starting it if nobody did)."""
    start()
    assert _thread is not None
    _thread.join(timeout)
    if _thread.is_alive():
        log.warning(
            "the terminal probe did not finish in %.0f s; images may draw as blocks", timeout
        )


class _NoTerminal:
    """``sys.__stdout__`` as textual-image's import sees it: not a terminal, so it asks
    nothing (the terminal belongs to Textual now; its answers would arrive as keys)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _without_terminal(fn: Any) -> Any:
    """Call ``fn`` with ``sys.__stdout__`` looking like no terminal (see :class:`_NoTerminal`)."""
    real = sys.__stdout__
    sys.__stdout__ = _NoTerminal(real)  # type: ignore[misc, assignment]
    try:
        return fn()
    finally:
        sys.__stdout__ = real  # type: ignore[misc]


def widget_module() -> ModuleType:
    """textual-image's widget module, its automatic renderer set from the probe's answers.
    Imported once (thread-safe); the first call costs ~0.15 s (numpy, Pillow)."""
    global _widgets
    with _lock:
        if _widgets is not None:
            return _widgets
        _widgets = _without_terminal(_import_widgets)
        return _widgets


def _import_widgets() -> ModuleType:
    import textual_image.renderable as renderables

    real = sys.__stdout__
    tty = bool(real and getattr(real, "_stream", real).isatty())
    choice = detected or ("halfcell" if tty else "unicode")
    renderables.Image = {  # type: ignore[misc]
        "sixel": renderables.SixelImage,
        "kitty": renderables.TGPImage,
        "halfcell": renderables.HalfcellImage,
        "unicode": renderables.UnicodeImage,
    }[choice]
    import textual_image.widget as widgets

    return widgets
