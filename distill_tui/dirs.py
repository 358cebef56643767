"""The Model Directory and the output directory as settings: check a new path, move the
downloaded model files to a new directory on the same filesystem.

No textual here: the Settings screen (and any future CLI) call these. A check creates the
directory when it is missing (that is how "can be created" is known) and writes a probe file
to learn that it is writable; it never touches anything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from distill_tui.inventory import Inventory


@dataclass(frozen=True)
class DirCheck:
    """The result of :func:`check_dir`: ``path`` (expanded, absolute) when usable, else
    ``error`` (one line for a person)."""

    text: str
    path: Path | None = None
    error: str | None = None
    free: int | None = None
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.path is not None


def parse_dir(text: str) -> tuple[Path | None, str | None]:
    """``~`` expanded; a relative path is refused (it would depend on the directory distill
    was started from)."""
    raw = text.strip()
    if not raw:
        return None, "empty: type an absolute path (/… or ~/…)"
    if any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        return None, "the path has control characters"
    path = Path(raw).expanduser()
    if not path.is_absolute():
        return None, (
            f"{raw!r} is a relative path: type an absolute one (/… or ~/…); a relative path "
            "would depend on the directory distill is started from"
        )
    return Path(os.path.normpath(path)), None


def check_dir(text: str, *, create: bool = True) -> DirCheck:
    """Is ``text`` usable as a directory distill writes to? Absolute after ``~``; exists or
    can be created (it is created when ``create``); writable; free space."""
    path, error = parse_dir(text)
    if path is None:
        return DirCheck(text, error=error)
    created = False
    if path.exists() and not path.is_dir():
        return DirCheck(text, error=f"{path} exists and is not a directory")
    if not path.exists():
        if not create:
            return DirCheck(text, path=path, free=_free(path))
        try:
            path.mkdir(parents=True, exist_ok=True)
            created = True
        except OSError as e:
            return DirCheck(text, error=f"cannot create {path} ({e.strerror or e})")
    problem = writable_problem(path)
    if problem:
        return DirCheck(text, error=f"cannot write in {path} ({problem})", created=created)
    return DirCheck(text, path=path, free=_free(path), created=created)


def writable_problem(path: Path) -> str | None:
    """None when a file can be created (and removed) in ``path``, else why not."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".distill-write-test-", dir=path)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def _free(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _device(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return probe.stat().st_dev
    except OSError:
        return None


def same_filesystem(a: Path, b: Path) -> bool:
    """True when a rename from ``a`` to ``b`` stays on one filesystem (no copy)."""
    da, db = _device(a), _device(b)
    return da is not None and da == db


def downloaded_files(inventory: Inventory) -> list[tuple[str, int]]:
    """(relative path, size) of every verified file on disk in the inventory's directory."""
    return [
        (rel, rec.size)
        for rel, rec in sorted(inventory.records().items())
        if inventory.is_present(rel)
    ]


@dataclass
class MoveReport:
    moved: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (file, why)
    bytes_moved: int = 0


def move_models(inventory: Inventory, new_dir: Path) -> MoveReport:
    """Rename every verified file of ``inventory`` into ``new_dir`` (same relative path) and
    move its record to ``new_dir``'s inventory. Renames only: the caller checks
    :func:`same_filesystem` first. A file that already exists at the new place is left where
    it is (reported): nothing is ever overwritten. Partial downloads stay behind."""
    report = MoveReport()
    target = Inventory(new_dir).load()
    moved_records = {}
    for rel, size in downloaded_files(inventory):
        src = inventory.abs_path(rel)
        dst = target.abs_path(rel)
        if dst.exists():
            report.skipped.append((rel, "a file of that name is already there"))
            continue
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, dst)
        except OSError as e:
            report.skipped.append((rel, e.strerror or str(e)))
            continue
        rec = inventory.get(rel)
        if rec is not None:
            moved_records[rel] = rec
        report.moved.append(rel)
        report.bytes_moved += size
    if moved_records:
        target.adopt_records(moved_records)
        for rel in moved_records:
            inventory.forget(rel)
    return report
