"""Start the TUI (the only CLI path that imports textual)."""

from __future__ import annotations

import argparse
import os


def run_tui(args: argparse.Namespace) -> int:
    from distill_tui import image_probe, term_input

    # the terminal probe waits for answers: let it wait while the imports below run
    image_probe.start()
    # Read by textual when it is first imported; see term_input for why 25 ms.
    os.environ.setdefault("ESCDELAY", str(term_input.DEFAULT_ESCDELAY_MS))
    from textual import constants

    term_input.install(constants.ESCAPE_DELAY)
    from distill_tui.app import run_app

    return run_app(debug=args.debug, image_renderer=args.image_renderer)
