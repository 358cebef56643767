"""Bounded folder walks (issue 19.16): the folders a person names (``import_dirs``,
``lora_dir``, ``distill models import PATH``) may be anything — a tree 1,100 levels deep, a
whole disk, ``/usr``. A walk here is iterative (``os.scandir`` and an explicit stack: no
recursion to overflow), never follows a folder symlink (no loops), and stops at a depth, a
number of entries and a time budget, saying what it skipped.

Blocking: callers run it on a worker thread. No textual import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: folders below this many levels are not looked into (real model/LoRA trees: < 6)
MAX_DEPTH = 32
#: a walk stops after this many entries (files and folders) ...
MAX_ENTRIES = 50_000
#: ... or after this many seconds
MAX_SECONDS = 10.0


@dataclass
class Walk:
    """What a walk found: ``(path, size)`` of each matching regular file (symlinks to files
    followed), in ``os.walk`` order (top-down, names sorted), and what it skipped."""

    root: Path
    max_depth: int = MAX_DEPTH
    files: list[tuple[Path, int]] = field(default_factory=list)
    too_deep: int = 0  #: folders not looked into (deeper than max_depth)
    unreadable: int = 0  #: folders that could not be listed
    stopped: str | None = None  #: why the walk ended early ("50000 entries", "10 s")

    @property
    def complete(self) -> bool:
        return not (self.too_deep or self.stopped)

    def skipped(self) -> list[str]:
        """For a person: one short phrase per kind of skip."""
        out = []
        if self.stopped:
            out.append(f"stopped after {self.stopped}")
        if self.too_deep:
            s = "s" if self.too_deep != 1 else ""
            out.append(
                f"{self.too_deep} folder{s} nested deeper than {self.max_depth} levels skipped"
            )
        if self.unreadable:
            s = "s" if self.unreadable != 1 else ""
            out.append(f"{self.unreadable} folder{s} could not be read")
        return out


def walk_files(
    root: str | os.PathLike[str],
    suffixes: tuple[str, ...],
    *,
    max_depth: int = MAX_DEPTH,
    max_entries: int = MAX_ENTRIES,
    max_seconds: float = MAX_SECONDS,
    skip: Callable[[os.stat_result], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Walk:
    """Files under ``root`` whose lower-cased name ends with one of ``suffixes``; names
    starting with "." are left out. ``skip(stat)`` True: a folder not walked (the models dir
    itself). Never raises for what it finds on the way."""
    walk = Walk(Path(root), max_depth)
    deadline = clock() + max_seconds
    entries = 0
    stack: list[tuple[str, int]] = [(os.fspath(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            if skip is not None and skip(os.stat(folder)):
                continue
            with os.scandir(folder) as it:
                listed = []
                for e in it:
                    entries += 1
                    if entries > max_entries:
                        walk.stopped = f"{max_entries} entries"
                        break
                    if not e.name.startswith("."):
                        listed.append(e)
        except OSError:  # unreadable, vanished, a path too long for the system
            walk.unreadable += 1
            continue
        listed.sort(key=lambda e: e.name)
        subdirs = []
        for e in listed:
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(e.path)
                elif e.name.lower().endswith(suffixes) and e.is_file():
                    size = e.stat().st_size
                    if size > 0:
                        walk.files.append((Path(e.path), size))
            except OSError:
                continue
        if walk.stopped:
            break
        if clock() > deadline:
            walk.stopped = f"{max_seconds:g} s"
            break
        if subdirs and depth >= max_depth:
            walk.too_deep += len(subdirs)
            continue
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    return walk


__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "MAX_SECONDS", "Walk", "walk_files"]
