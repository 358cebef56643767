"""Every download on this box, whoever runs it: read from the files, not from a daemon.

A download in progress leaves three things beside its destination: ``<file>.part`` (the bytes),
``<file>.part.json`` (the sidecar: size and the byte ranges that are durable) and, while a
process works on it, ``<file>.lock`` (an flock held by that process, its pid inside). From
them any ``distill`` — the CLI's ``models status``, ``models list``, the Model Manager of another
TUI — can tell a *running* download (lock held: by which pid, how far) from a *partial* one
(nobody holds it: ``d`` / ``distill models download`` resumes it) and from a *stalled* one (the
lock is held but its holder stopped beating: stopped with SIGSTOP / ctrl+z, or hung; see
lock.py). Speed comes from two looks at the sidecar, averaged over several seconds
(:class:`ActivityWatch`).

No textual, no httpx: the CLI and the TUI share it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill_tui.downloads.lock import Holder, holder
from distill_tui.downloads.rate import RateWindow
from distill_tui.downloads.sidecar import Sidecar, lock_path, part_path, sidecar_path

if TYPE_CHECKING:
    from distill_tui.catalog import Catalog


@dataclass(frozen=True)
class Activity:
    key: str  #: the file's path relative to the models dir
    size: int  #: the whole file
    done: int  #: durable bytes (from the sidecar)
    pid: int | None  #: the process downloading it now; None: a partial nobody works on
    model_id: str | None = None
    component: str | None = None
    quant_id: str | None = None
    speed: float | None = None  #: bytes/s between two looks (ActivityWatch), else None
    #: the holder (running only): its pid, how long it has been quiet, stopped or not
    holder: Holder | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def stalled(self) -> bool:
        """Held by a process that stopped beating (SIGSTOP, ctrl+z, hung): not progressing."""
        return self.holder is not None and self.holder.stalled

    @property
    def fraction(self) -> float:
        return self.done / self.size if self.size else 0.0

    @property
    def state(self) -> str:
        if self.stalled:
            return "stalled"
        return "downloading" if self.running else "partial"


def _owner(catalog: Catalog | None, key: str) -> tuple[str | None, str | None, str | None]:
    if catalog is None:
        return None, None, None
    for m in catalog.models:
        for component, qid, f in m.files():
            if f.file == key:
                return m.id, component, qid
    return None, None, None


def _lock_holder(dest: Path) -> Holder | None:
    return holder(lock_path(dest))


def _pid(h: Holder | None) -> int | None:
    return None if h is None else (h.pid or -1)  # held, pid unreadable: still "running"


def scan(models_dir: Path, catalog: Catalog | None = None) -> list[Activity]:
    """Downloads under ``models_dir``: running ones (lock held) and resumable partials."""
    out: list[Activity] = []
    if not models_dir.is_dir():
        return out
    for side in sorted(models_dir.rglob("*.part.json")):
        dest = side.with_name(side.name[: -len(".part.json")])
        if side != sidecar_path(dest) or not part_path(dest).exists():
            continue
        sc = Sidecar.load(side)
        if sc is None:
            continue
        key = dest.relative_to(models_dir).as_posix()
        model_id, component, quant_id = _owner(catalog, key)
        h = _lock_holder(dest)
        out.append(
            Activity(
                key=key,
                size=sc.size,
                done=sc.done.covered(),
                pid=_pid(h),
                model_id=model_id,
                component=component,
                quant_id=quant_id,
                holder=h,
            )
        )
    # a lock held before the first sidecar flush: running, nothing durable yet
    seen = {a.key for a in out}
    for lock in sorted(models_dir.rglob("*.lock")):
        if lock.name == ".installed.json.lock" and lock.parent == models_dir:
            continue  # the inventory's own lock, never a download
        dest = lock.with_name(lock.name[: -len(".lock")])
        key = dest.relative_to(models_dir).as_posix()
        if key in seen or dest.exists() or lock != lock_path(dest):
            continue
        h = _lock_holder(dest)
        if h is None:
            continue
        model_id, component, qid = _owner(catalog, key)
        size = 0
        if catalog is not None and model_id:
            with contextlib.suppress(KeyError, StopIteration):
                size = next(
                    f.size for _c, _q, f in catalog.require(model_id).files() if f.file == key
                )
        out.append(Activity(key, size, 0, _pid(h), model_id, component, qid, holder=h))
    return out


class ActivityWatch:
    """Successive scans with a speed per running download: the durable bytes' growth over
    the last ``window`` seconds of looks (rate.py). The first look's bytes (a resumed partial,
    or what another process did before this one looked) are never a speed, and the sidecar's
    flush cadence does not make it jump between 0 and twice the rate. None while unknown."""

    def __init__(self, models_dir: Path, catalog: Catalog | None = None, *, window: float = 8.0):
        self.models_dir = models_dir
        self.catalog = catalog
        self.window = window
        self._rates: dict[str, RateWindow] = {}

    def scan(self) -> list[Activity]:
        now = time.monotonic()
        out = []
        for a in scan(self.models_dir, self.catalog):
            speed = None
            if a.running:
                rw = self._rates.get(a.key)
                if rw is None:
                    rw = self._rates[a.key] = RateWindow(self.window, min_span=2.0)
                rw.add(a.done, now)
                speed = rw.rate(now)
            else:
                self._rates.pop(a.key, None)
            out.append(Activity(**{**a.__dict__, "speed": speed}))
        return out
