"""Start the TUI (the only CLI path that imports textual)."""

from __future__ import annotations

import argparse


def run_tui(args: argparse.Namespace) -> int:
    from distill_tui.app import run_app

    return run_app(debug=args.debug, image_renderer=args.image_renderer)
