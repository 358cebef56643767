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

Colours: ssh does not pass ``COLORTERM``, so over ssh Rich and Textual fell back to 256
colours (a half-cell picture of 96 colours where the terminal shows 1756). When
``COLORTERM`` is unset, the first question also asks XTGETTCAP for ``RGB`` and ``Tc`` (the
terminfo capabilities of a direct-colour terminal): a terminal that answers gets
``COLORTERM=truecolor`` before the app starts. Both questions go out in one write; the
answer to the first one (Primary Device Attributes, answered by every terminal) comes after,
so a terminal that does not know XTGETTCAP costs no wait. :func:`colour_depth` says what was
chosen and why (``distill doctor``, Settings).
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
#: why COLORTERM is what it is ("terminal answered XTGETTCAP RGB/Tc", ...), for doctor/Settings
colour_reason: str | None = None
#: XTGETTCAP (DCS + q) for "RGB" and "Tc", hex-encoded names
TRUECOLOR_QUERY = "\x1bP+q524742;5463\x1b\\"


def _ask_da1(with_truecolor: bool) -> tuple[str | None, bool]:
    """Primary Device Attributes (the list after ``ESC [ ?``), preceded by the XTGETTCAP
    truecolor question when ``with_truecolor``: (the DA1 list or None, the terminal said it
    has RGB/Tc). Terminals answer in order, so DA1's answer ends the wait."""
    import re

    from textual_image._terminal import capture_mode, read

    out, stdin = sys.__stdout__, sys.__stdin__
    if out is None or stdin is None:
        return None, False
    got = ""
    da1 = re.compile(r"\x1b\[\?([0-9;]*)c")
    try:
        with capture_mode():
            out.write((TRUECOLOR_QUERY if with_truecolor else "") + "\x1b[c")
            out.flush()
            while (m := da1.search(got)) is None and len(got) < 4096:
                got += read(stdin.buffer.fileno(), 1, 0.1)
    except Exception:  # no answer within 0.1 s, or no terminal to read
        return None, "\x1bP1+r" in got
    if m is None:  # 4 KB of something else: not an answer
        return None, False
    return m.group(1), "\x1bP1+r" in got[: m.start()]


def _note_colours(answered: bool) -> None:
    """Set COLORTERM=truecolor for Rich/Textual when the terminal said it has direct colour."""
    global colour_reason
    import os

    if answered and not os.environ.get("COLORTERM"):
        os.environ["COLORTERM"] = "truecolor"
        colour_reason = "terminal answered XTGETTCAP RGB/Tc"


def colour_depth(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(depth, why): the colours Rich/Textual use here, and what decided it."""
    import os

    env = os.environ if environ is None else environ
    colorterm = env.get("COLORTERM", "")
    term = env.get("TERM", "")
    if env.get("NO_COLOR"):
        return "none", "NO_COLOR is set"
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "")
    if forced and forced != "auto":
        return forced, f"TEXTUAL_COLOR_SYSTEM={forced}"
    if colorterm in ("truecolor", "24bit"):
        return "truecolor", colour_reason or f"COLORTERM={colorterm}"
    if "256color" in term:
        return "256 colours", (
            f"TERM={term}, COLORTERM unset (ssh does not pass it; the terminal did not answer "
            "the truecolor query; export COLORTERM=truecolor if it has 24-bit colour)"
        )
    return "standard (16)", f"TERM={term or 'unset'}"


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
        import os

        # (not the Linux console: it has no DCS and would print the question)
        ask = not os.environ.get("COLORTERM") and os.environ.get("TERM") not in ("linux", "dumb")
        da1, truecolor = _ask_da1(ask)
        _note_colours(truecolor)
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


_WHY = {
    "sixel": "the terminal lists Sixel in its device attributes",
    "kitty": "the terminal answered the Kitty graphics query",
    "halfcell": "the terminal draws neither Sixel nor Kitty graphics",
    "unicode": "not a terminal",
}


def renderer_choice(setting: str = "auto") -> tuple[str, str]:
    """(renderer, why): what draws images for the ``image_renderer`` setting (``auto``:
    what the terminal answered). A forced Sixel/Kitty inside tmux gets a warning: tmux
    without passthrough shows a blank area."""
    import os

    if setting and setting != "auto":
        why = "set in Settings / --image-renderer"
        if setting in ("sixel", "kitty") and os.environ.get("TMUX"):
            why += (
                "; warning: inside tmux the picture stays blank unless tmux passes it "
                "through (choose auto or halfcell)"
            )
        return setting, why
    if detected is None:  # not asked (yet): what the image pane will do without answers
        out = sys.__stdout__
        tty = bool(out and out.isatty())
        return (
            ("halfcell", "auto: the terminal was not asked")
            if tty
            else ("unicode", "auto: " + _WHY["unicode"])
        )
    return detected, "auto: " + _WHY.get(detected, "no answer")


def display_rows(setting: str = "auto") -> list[tuple[str, str]]:
    """The rows ``distill doctor`` and Settings show: colour depth and the image renderer,
    each with why."""
    depth, why = colour_depth()
    renderer, rwhy = renderer_choice(setting)
    return [("colours", f"{depth} ({why})"), ("image renderer", f"{renderer} ({rwhy})")]
