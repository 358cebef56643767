"""One progress, speed and ETA for a set of files (issue 22.11).

The recommended set downloads file by file, each with its own bar; this adds them up: the
bytes of every file of the set (a file already on disk counts as done, a file not started yet
at its catalog size), the speed of the files moving now, and the time the rest takes at that
speed. Used by ``distill models download`` (the overall bar / line) and the Model Manager's
card header. No textual here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from distill_tui.formatting import eta_text, human_size

_MOVING = frozenset({"preflight", "downloading", "verifying"})
_WAITING = frozenset({"queued"})
#: an ETA beyond this is no ETA (rate.py's rule for one file)
MAX_ETA = 99 * 3600


@dataclass(frozen=True)
class SetProgress:
    files: int  #: files of the set
    files_done: int  #: on disk (or finished) among them
    bytes_done: int
    total: int
    speed: float  #: bytes/s, the files moving now
    eta: float | None  #: seconds for the rest of the set; None while unknown
    active: bool  #: a file of the set is queued or moving

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else max(0.0, min(1.0, self.bytes_done / self.total))

    def eta_words(self) -> str:
        return eta_text(self.eta, "--:--")

    def text(self) -> str:
        """``set 41% · 3.9 GB of 9.6 GB · 2 of 3 files · 21.0 MB/s · ETA 4:31``"""
        speed = f" · {human_size(self.speed)}/s" if self.speed > 0 else ""
        return (
            f"set {int(100 * self.fraction)}% · {human_size(self.bytes_done)} of "
            f"{human_size(self.total)} · {self.files_done} of {self.files} files{speed}"
            f" · ETA {self.eta_words()}"
        )

    def short(self) -> str:
        """The card header's words: ``set 41% · ETA 4:31`` (changes at most once a second)."""
        return f"set {int(100 * self.fraction)}% · ETA {self.eta_words()}"


def _state(ev: Any) -> str:
    st = getattr(ev, "state", None)
    return str(getattr(st, "value", st or ""))


def set_progress(files: Iterable[tuple[int, bool, Any]]) -> SetProgress:
    """``files``: (catalog size, on disk, latest event or None) for every file of the set."""
    n = n_done = done = total = 0
    speed = 0.0
    active = False
    for size, present, ev in files:
        n += 1
        st = _state(ev) if ev is not None else ""
        ev_total = int(getattr(ev, "total", 0) or 0) if ev is not None else 0
        t = ev_total or int(size or 0)
        total += t
        if st in _MOVING or st in _WAITING:
            active = True
            got = int(getattr(ev, "bytes_done", 0) or 0)
            done += min(got, t) if t else got
            if st == "downloading" and not getattr(ev, "activity", None):
                speed += float(getattr(ev, "speed", 0.0) or 0.0)
        elif present or st == "done":
            n_done += 1
            done += t
        elif ev is not None:  # paused / failed / cancelled: what is kept counts
            done += min(int(getattr(ev, "bytes_done", 0) or 0), t)
    rest = max(0, total - done)
    eta: float | None = None
    if rest == 0:
        eta = 0.0
    elif speed > 0 and rest / speed <= MAX_ETA:
        eta = rest / speed
    return SetProgress(n, n_done, done, total, speed, eta, active)
