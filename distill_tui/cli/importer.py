"""``distill models import [PATH…] [--remember]`` (core: distill_tui/downloads/importer.py)."""

from __future__ import annotations

import argparse
import asyncio
import builtins
import sys
import threading
import time
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


#: files from this size on show their hashing (a few seconds per GB): one line, then a bar on a
#: terminal or a line every HASH_EVERY seconds in a log
HASH_SHOWN_FROM = 256 << 20
HASH_EVERY = 5.0


class _Hashing:
    """``import_paths``' ``on_hash``: the progress of hashing a large file (called from the
    hashing thread)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()
        self.path: Path | None = None
        self.last = 0.0
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, path: Path, done: int, total: int) -> None:
        if total < HASH_SHOWN_FROM:
            return
        with self.lock:
            now = time.monotonic()
            if path != self.path:
                self.path, self.last = path, now
                self._start(path, total)
            if self.bar is not None:
                self.bar.update(self.task, completed=done)
            elif now - self.last >= HASH_EVERY:
                self.last = now
                self._err(
                    f"  hashing   {100 * done / total:5.1f}%  {human_size(done)} of "
                    f"{human_size(total)}"
                )
            if done >= total:
                self.stop()

    def _start(self, path: Path, total: int) -> None:
        name = visible(_shown(path, self.roots))
        if not self.tty:
            self._err(f"  hashing   {name} ({human_size(total)}) …")
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("  hashing {task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=False),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.bar.add_task(name, total=total)
        self.bar.start()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = None
        self.path = None

    @staticmethod
    def _err(text: str) -> None:
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


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
    hashing = _Hashing(dirs)
    try:
        found, problems = asyncio.run(
            import_paths(
                ctx.catalog,
                ctx.settings,
                ctx.inventory,
                dirs,
                token=token,
                offline=offline,
                on_hash=hashing,
            )
        )
    finally:
        hashing.stop()
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
