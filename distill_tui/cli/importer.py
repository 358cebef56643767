"""``distill models import [PATH…] [--remember]`` (core: distill_tui/downloads/importer.py)."""

from __future__ import annotations

import argparse
import asyncio
import builtins
from pathlib import Path
from typing import Any

from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.formatting import human_size
from distill_tui.textsafe import visible


def print(*values: object, **kwargs: Any) -> None:
    """File names found on disk are outside text: control characters shown (textsafe)."""
    builtins.print(*(visible(v, multiline=True) for v in values), **kwargs)


def _shown(path: Path, roots: list[Path]) -> str:
    for r in roots:
        try:
            return str(path.relative_to(r)) if r.is_dir() else path.name
        except ValueError:
            continue
    return str(path)


def cmd_import(args: argparse.Namespace, ctx: CoreContext) -> int:
    from distill_tui.downloads.importer import hub_offline, import_paths
    from distill_tui.hftoken import get_token

    given = [Path(p).expanduser().absolute() for p in args.paths]
    if args.remember and not given:
        raise CliError("--remember needs at least one PATH")
    dirs = given or [Path(d).expanduser() for d in ctx.settings.settings.import_dirs]
    if not dirs:
        raise CliError(
            "nothing to scan: give a PATH (e.g. ~/ComfyUI/models) or set import_dirs in "
            f"{ctx.settings.path}"
        )
    missing = [d for d in dirs if not d.exists()]
    if missing and given:
        raise CliError(f"no such file or folder: {missing[0]}")
    offline = hub_offline()
    print("scanning " + ", ".join(str(d) for d in dirs) + (" (offline)" if offline else "") + " …")
    token = None if offline else get_token()
    found, problems = asyncio.run(
        import_paths(ctx.catalog, ctx.settings, ctx.inventory, dirs, token=token, offline=offline)
    )
    for p in problems:
        print(f"  skipped   {p}")
    counts: dict[str, int] = {}
    for f in found:
        counts[f.status] = counts.get(f.status, 0) + 1
        name = _shown(f.path, dirs)
        size = human_size(f.size)
        if f.status == "linked":
            print(f"  linked    {name} -> {f.key} ({f.words})")
        elif f.status == "present":
            print(f"  present   {name}: {f.key} is already installed")
        else:
            word = {"unmatched": "unmatched", "mismatch": "mismatch", "locked": "busy"}.get(
                f.status, "error"
            )
            print(f"  {word:<9} {name} ({size}): {f.words}")
            if f.looks_like:
                print(f"            looks like: {f.looks_like}")
    if not found:
        print("  no model files (.gguf, .safetensors, …) found")
    linked = counts.get("linked", 0)
    parts = [f"{linked} linked"]
    if counts.get("present"):
        parts.append(f"{counts['present']} already installed")
    other = len(found) - linked - counts.get("present", 0)
    if other:
        parts.append(f"{other} not matched")
    print(", ".join(parts))
    if linked:
        ctx.inventory.refresh()
        for m in ctx.catalog.models:
            if ctx.resolver.is_model_ready(m.id):
                print(f"{m.id}: ready")
    if args.remember:
        add = [str(d) for d in given]

        def remember(s):  # on the settings as they are on disk now, under the settings lock
            return {"import_dirs": [*s.import_dirs, *(d for d in add if d not in s.import_dirs)]}

        if any(d not in ctx.settings.settings.import_dirs for d in add):
            ctx.settings.edit(remember)
            print(f"import_dirs: {', '.join(ctx.settings.settings.import_dirs)}")
    return 1 if counts.get("error") else 0
