"""Esc in ~ESCDELAY, not ~100 ms (TUI only; imported just before the app runs).

A lone ESC byte is ambiguous: it may be the Esc key or the start of an escape sequence (an
arrow, F1). Textual's parser waits ``ESCDELAY`` ms for more bytes, but its Linux input thread
only looks at that timeout when ``select`` returns — every 100 ms when nothing else arrives —
so Esc (which closes every modal here) took ~110 ms whatever ESCDELAY said. This caps that
``select`` at half the escape delay: Esc now lands ESCDELAY..1.5×ESCDELAY after the press.

It swaps the ``selectors`` module seen by ``textual.drivers.linux_driver`` for a copy whose
``SelectSelector`` never sleeps longer than the cap; nothing else in the process is touched.
If a future Textual stops using ``selectors.SelectSelector`` there, this silently does
nothing (tests/test_term_input.py notices).
"""

from __future__ import annotations

import selectors
import types

#: Textual's default is 100 ms, ncurses' 1000. tmux 3.5 waits 10 ms (escape-time) and neovim
#: 50 (ttimeoutlen): a terminal writes a key's whole sequence at once, so over SSH the bytes
#: arrive together. A user's own ESCDELAY (in ms) wins.
DEFAULT_ESCDELAY_MS = 25


def install(escape_delay: float) -> bool:
    """Cap the input thread's select timeout at ``escape_delay / 2`` seconds (>= 5 ms).
    Returns False where there is no Linux driver to adjust (Windows)."""
    try:
        from textual.drivers import linux_driver
    except ImportError:  # pragma: no cover - Windows
        return False
    current = getattr(linux_driver, "selectors", None)
    if current is None:
        return False
    cap = max(0.005, escape_delay / 2)

    class CappedSelectSelector(selectors.SelectSelector):
        def select(self, timeout: float | None = None) -> list:  # type: ignore[override]
            return super().select(cap if timeout is None else min(timeout, cap))

    proxy = types.SimpleNamespace(
        **{name: getattr(selectors, name) for name in dir(selectors) if not name.startswith("__")}
    )
    proxy.SelectSelector = CappedSelectSelector
    proxy.distill_select_cap = cap
    linux_driver.selectors = proxy  # type: ignore[assignment]
    return True
