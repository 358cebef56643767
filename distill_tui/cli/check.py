"""``distill models check [MODEL] [--json]``: has upstream changed under the installed files?

Never downloads. Exit 0: every installed file is up to date; 1: a file changed upstream or is
gone; 3: nothing could be checked (``HF_HUB_OFFLINE``, the Hub unreachable) or some files could
not be (one line each).

``--json`` shape (stable, version 1)::

    {"version": 1, "endpoint": str,
     "files": [{"file", "model", "component", "quant": str|null, "url", "pinnedRevision": str|null,
                "status": "up_to_date"|"changed"|"gone"|"unknown", "summary": str,
                "local": {"sha256", "size", "revision"},
                "hub": {"sha256", "size", "revision"} | null, "reason": str|null}],
     "summary": {"upToDate", "changed", "gone", "unknown"}}
"""

from __future__ import annotations

import argparse
import json
import sys

from distill_tui.catalog import UnknownModelError
from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.textsafe import visible

EXIT_CHANGED = 1
EXIT_CANNOT = 3


def cmd_check(args: argparse.Namespace, ctx: CoreContext) -> int:
    from distill_tui.drift import check_installed, installed_files
    from distill_tui.hftoken import offline, offline_message, token_to_send

    try:
        files = installed_files(ctx.catalog, ctx.inventory, args.model)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    if not files:
        what = f" of {args.model}" if args.model else ""
        if args.json:
            from distill_tui.drift import DriftReport
            from distill_tui.hftoken import endpoint

            _dump(DriftReport(endpoint()).to_json())
        else:
            print(f"nothing to check: no installed files{what}")
        return 0
    if offline():
        raise CliError(offline_message("cannot check for upstream changes"), code=EXIT_CANNOT)
    report = check_installed(ctx.catalog, ctx.inventory, args.model, token_to_send())
    if report.unreachable and not args.json:
        reasons = dict.fromkeys(f.reason or "no answer" for f in report.files)
        raise CliError(
            f"cannot check: the Hub did not answer for any file ({next(iter(reasons))})",
            code=EXIT_CANNOT,
        )
    if args.json:
        _dump(report.to_json())
    else:
        w = max(len(f.key) for f in report.files)
        for f in report.files:
            print(visible(f"  {f.key:<{w}}  {f.words}"))
        parts = [
            f"{report.count(s)} {word}"
            for s, word in (
                ("up_to_date", "up to date"),
                ("changed", "changed upstream"),
                ("gone", "gone"),
                ("unknown", "not checked"),
            )
            if report.count(s)
        ]
        print(f"{len(report.files)} installed file(s): " + ", ".join(parts))
        if report.count("changed") or report.count("gone"):
            print(
                "the installed files are still usable; to get the new ones: distill models remove "
                "MODEL --quant ROLE=Q (or --vae / --all), then distill models download"
            )
    if report.count("changed") or report.count("gone"):
        return EXIT_CHANGED
    return EXIT_CANNOT if report.count("unknown") else 0


def _dump(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
