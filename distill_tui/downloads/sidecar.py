"""Byte-range bookkeeping and the ``<file>.part.json`` sidecar of a partial download.

The sidecar records the Hub resolve URL (never the signed CDN URL), revision, sha256, size
and the byte ranges that are durable (written AND fsynced before the sidecar was replaced).
It is written atomically, so a crash at any point leaves either the old or the new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from distill_tui.atomic import atomic_write_json, move_aside
from distill_tui.inventory import now_iso
from distill_tui.jsonfile import loads as load_json
from distill_tui.redact import redact_url

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1
#: no file is larger (sparse .part files are truncated to this size: ftruncate's off_t)
MAX_SIZE = 2**63 - 1
#: a sidecar lists one range per segment (merged): far fewer than this
MAX_RANGES = 100_000

_notes: list[str] = []
_notes_lock = threading.Lock()


def drain_notes() -> list[str]:
    """Sidecars moved aside since the last call (one line each), for the CLI to say once."""
    with _notes_lock:
        out, _notes[:] = list(_notes), []
    return out


class SidecarShapeError(ValueError):
    """A sidecar that distill did not write (wrong types, sizes out of range)."""


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
        """None when missing, unreadable or not a sidecar (the partial is then started
        over). One of the wrong shape (``[1]``, a size of ``1e400``, ranges that are not
        pairs of offsets inside the file) is moved aside (``.corrupt-<time>``) and said once
        (:func:`drain_notes`, and the log): every reader — status, list, dry-run, the
        download itself — then treats the partial as unknown instead of tracing back."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            raw = load_json(data)
            if isinstance(raw, dict) and raw.get("version") not in (None, SIDECAR_VERSION):
                return None  # another (newer) distill's sidecar: not ours to judge
            return cls._parse(raw)
        except ValueError as e:  # JSONFileError and SidecarShapeError are ValueErrors
            cls._set_aside(path, str(e).splitlines()[0] if str(e) else "not a sidecar")
            return None

    @classmethod
    def _parse(cls, raw: object) -> Sidecar:
        def bad(why: str) -> SidecarShapeError:
            return SidecarShapeError(why)

        if not isinstance(raw, dict):
            raise bad(f"expected a JSON object, got {type(raw).__name__}")
        if raw.get("version") != SIDECAR_VERSION:
            raise bad("no version")
        size = raw.get("size")
        if type(size) is not int or not (0 < size <= MAX_SIZE):
            raise bad("size is not a byte count")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            raise bad("url is not text")
        for key in ("revision", "sha256"):
            if raw.get(key) is not None and not isinstance(raw.get(key), str):
                raise bad(f"{key} is not text")
        ranges = raw.get("done", [])
        if not isinstance(ranges, list) or len(ranges) > MAX_RANGES:
            raise bad("done is not a list of byte ranges")
        done = RangeSet()
        for r in ranges:
            if (
                not isinstance(r, list)
                or len(r) != 2
                or any(type(x) is not int for x in r)
                or not (0 <= r[0] <= r[1] <= size)
            ):
                raise bad("done holds something that is not a byte range inside the file")
            done.add(r[0], r[1])
        return cls(
            url=url,
            revision=raw.get("revision"),
            sha256=raw.get("sha256"),
            size=size,
            done=done,
        )

    @staticmethod
    def _set_aside(path: Path, why: str) -> None:
        try:
            moved = move_aside(path)
        except OSError as e:
            note = (
                f"partial download {path.name}: its progress file is not usable ({why}) and "
                f"could not be moved aside ({e.strerror or e}); the download starts over"
            )
        else:
            note = (
                f"partial download {path}: its progress file is not usable ({why}); moved "
                f"aside to {moved.name}, the download starts over"
            )
        log.warning(note)
        with _notes_lock:
            if note not in _notes:
                _notes.append(note)


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
