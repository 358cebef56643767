"""Start the TUI (the only CLI path that imports textual)."""

from __future__ import annotations

import argparse
import os

#: ms a lone ESC byte waits for the rest of an escape sequence before it counts as the Esc
#: key. Textual's default is 100; 50 is neovim's ttimeoutlen — Esc closes a modal sooner, and
#: arrow/function-key sequences (one write by the terminal) still arrive whole over SSH.
#: A user's own ESCDELAY wins.
ESCDELAY_MS = "50"


def run_tui(args: argparse.Namespace) -> int:
    os.environ.setdefault("ESCDELAY", ESCDELAY_MS)  # read when textual is first imported
    from distill_tui.app import run_app

    return run_app(debug=args.debug, image_renderer=args.image_renderer)
