"""Outside text made safe for a terminal. No textual or rich import: the CLI and core use it.

Every string that did not come from distill itself — catalog names, labels, descriptions,
license notes and quant ids, prompts read back from ``history.jsonl``, file names, text a
server sent — passes through :func:`visible` before it is printed or rendered. A control
character is then *shown*, never *sent*: ESC, CSI (0x9b), OSC sequences and BEL could
otherwise retitle the window, write the clipboard (OSC 52), move the cursor to fake output,
or hide text.

One style everywhere: Python's backslash escapes (``\\x1b``, ``\\x9b``, ``\\r``,
``\\u202e``), as ``repr()`` writes them, so a person can read and search for them.

* C0 (0x00-0x1f), DEL (0x7f) and C1 (0x80-0x9f) control characters;
* Unicode bidi embedding/override/isolate controls (U+202A-U+202E, U+2066-U+2069) and the
  line/paragraph separators (U+2028, U+2029): they reorder or break what the terminal shows;
* lone surrogates (undecodable bytes of a file name read with ``surrogateescape``) become the
  original byte as ``\\xNN``, so printing never raises ``UnicodeEncodeError``.

``multiline=True`` keeps ``\\n`` and ``\\t`` (a prompt, a multi-line error message); a carriage
return is always escaped (it rewinds the line and can overwrite what was printed before).

:func:`escape_markup` is for the few places that build Textual content markup around an
outside string; prefer ``Content`` / ``Text`` objects (no markup parsing at all).
"""

from __future__ import annotations

import re
from typing import Any

_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# C0, DEL, C1, bidi controls, line/paragraph separators, any surrogate
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_MULTILINE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _show(match: re.Match[str]) -> str:
    ch = match.group(0)
    short = _SHORT.get(ch)
    if short is not None:
        return short
    n = ord(ch)
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}"


def visible(text: object, *, multiline: bool = False) -> str:
    """``text`` (``str()`` of it) with every control character shown as an escape.

    Idempotent on its own output and the identity on ordinary text (letters of any script,
    emoji, punctuation, spaces)."""
    s = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE_MULTILINE if multiline else _UNSAFE
    return pattern.sub(_show, s)


def has_control(text: str) -> bool:
    """True when :func:`visible` would change ``text`` (single-line rules)."""
    return _UNSAFE.search(text) is not None


def escape_markup(text: object, *, multiline: bool = False) -> str:
    """:func:`visible`, then escaped for Textual content markup (``Content.from_markup``,
    ``Static("...")``, notifications with ``markup=True``).

    Every ``[`` becomes ``\\[`` (Textual opens a tag at ANY unescaped ``[``: ``[$error]``,
    ``[B]`` and ``[ on red]`` are tags too, which ``rich.markup.escape`` leaves alone). A
    trailing backslash would escape the ``[`` of a tag that follows, and Textual markup has
    no escape for a backslash: a zero-width space is put after it."""
    s = visible(text, multiline=multiline).replace("[", "\\[")
    if s.endswith("\\"):
        s += "\u200b"
    return s


def visible_tree(obj: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, tuples) with every string passed through
    :func:`visible` (keys too): for a text rendering of data read from outside."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, dict):
        return {visible_tree(k): visible_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(visible_tree(v) for v in obj)
    return obj
