"""Byte-range bookkeeping and the ``<file>.part.json`` sidecar of a partial download.

The sidecar records the Hub resolve URL (never the signed CDN URL), revision, sha256, size
and the byte ranges that are durable (written AND fsynced before the sidecar was replaced).
It is written atomically, so a crash at any point leaves either the old or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from distill_tui.atomic import atomic_write_json
from distill_tui.inventory import now_iso
from distill_tui.redact import redact_url

SIDECAR_VERSION = 1


class RangeSet:
    """Sorted, merged, half-open byte intervals [a, b)."""

    __slots__ = ("_r",)

    def __init__(self, ranges: list[tuple[int, int]] | None = None):
        self._r: list[list[int]] = []
        for a, b in ranges or []:
            self.add(a, b)

    def add(self, a: int, b: int) -> None:
        if b <= a:
            return
        r = self._r
        # find insertion point; ranges are few (one per segment), linear is fine
        out: list[list[int]] = []
        placed = False
        for x, y in r:
            if y < a:
                out.append([x, y])
            elif b < x:
                if not placed:
                    out.append([a, b])
                    placed = True
                out.append([x, y])
            else:
                a, b = min(a, x), max(b, y)
        if not placed:
            out.append([a, b])
        out.sort()
        self._r = out

    def prefix_end(self) -> int:
        """End of the contiguous covered prefix starting at 0."""
        if self._r and self._r[0][0] == 0:
            return self._r[0][1]
        return 0

    def covered(self) -> int:
        return sum(b - a for a, b in self._r)

    def gaps(self, size: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        pos = 0
        for a, b in self._r:
            if a > pos:
                out.append((pos, min(a, size)))
            pos = max(pos, b)
        if pos < size:
            out.append((pos, size))
        return [(a, b) for a, b in out if b > a]

    def copy(self) -> RangeSet:
        c = RangeSet()
        c._r = [list(x) for x in self._r]
        return c

    def to_list(self) -> list[list[int]]:
        return [list(x) for x in self._r]

    def __repr__(self) -> str:
        return f"RangeSet({self._r})"


@dataclass
class Sidecar:
    url: str
    revision: str | None
    sha256: str | None
    size: int
    done: RangeSet = field(default_factory=RangeSet)

    def matches(self, url: str, revision: str | None, sha256: str | None, size: int) -> bool:
        """Same object upstream? sha256 decides when both know it (whichever source — a
        mirror serves the same bytes), else the same URL and revision."""
        if self.size != size:
            return False
        if self.sha256 and sha256:
            return self.sha256 == sha256
        if redact_url(self.url) != redact_url(url):
            return False
        return self.revision == revision and self.sha256 == sha256

    def to_json(self) -> dict:
        return {
            "version": SIDECAR_VERSION,
            "url": redact_url(self.url),
            "revision": self.revision,
            "sha256": self.sha256,
            "size": self.size,
            "done": self.done.to_list(),
            "updatedAt": now_iso(),
        }

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Sidecar | None:
        """None when missing or unreadable (the partial is then started over)."""
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("version") != SIDECAR_VERSION:
                return None
            size = int(raw["size"])
            done = RangeSet()
            for a, b in raw.get("done", []):
                a, b = int(a), int(b)
                if not (0 <= a <= b <= size):
                    return None
                done.add(a, b)
            return cls(
                url=str(raw["url"]),
                revision=raw.get("revision"),
                sha256=raw.get("sha256"),
                size=size,
                done=done,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


def lock_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".lock")


def partial_allocated(dest: Path) -> int:
    """Disk space already allocated to the partial of ``dest`` (rewriting it needs no more)."""
    try:
        return os.stat(part_path(dest)).st_blocks * 512
    except OSError:
        return 0


def partial_bytes(dest: Path, size: int) -> int:
    """Durable bytes of an existing partial of ``dest`` (0 if none or unusable)."""
    sc = Sidecar.load(sidecar_path(dest))
    if sc is None or sc.size != size:
        return 0
    with contextlib.suppress(OSError):
        if os.stat(part_path(dest)).st_size == size:
            return sc.done.covered()
    return 0
