"""Honest progress: the rate over a window of seconds, an ETA only when it means something,
and the words for a download that is not moving (retrying, stalled).

- :class:`RateWindow` keeps timestamped samples of a counter of the bytes *received in this
  process* (``Progress.fetched``), never of the bytes done: a resumed partial's bytes were
  already on disk and are no speed. The rate is the bytes received over the last ``window``
  seconds divided by that span, so a burst every few seconds reads as its average (no decay
  to 0 between bursts, no spike from one fast tick) and a link that stopped reads 0 after
  one window. It is unknown (None) until ``min_span`` seconds of samples exist.
- :func:`eta_for`: the seconds left at that rate; None while the rate is unknown or zero,
  and beyond :data:`MAX_ETA` (99 h) - an ETA of days says nothing a person can use.
- :class:`Retry`: one failed attempt the fetcher (or the Hub's HEAD) will retry, with the
  words a person sees: ``retrying (HTTP 503, attempt 3 of 7, next in 4 s)``.

No textual, no httpx: the service, the TUI's rows and the CLI share it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: an ETA beyond this is hidden (unknown), never shown as "37289488:16:04"
MAX_ETA = 99 * 3600.0
#: the default averaging window (seconds) of the rate shown for a download
WINDOW = 6.0
#: no byte, or under SLOW_RATE, for this long while downloading: the row says "stalled"
STALLED_AFTER = 10.0
#: bytes/s under which a download is not useful progress (a trickle of a byte every few
#: seconds never leaves a row idle for STALLED_AFTER, but it is stalled all the same)
SLOW_RATE = 1000.0


class RateWindow:
    """Bytes/s over the last ``window`` seconds from samples of a growing counter.

    ``add(count)`` is called on every tick (the service's, ~10/s) with the counter's current
    value; the clock is injectable for tests. Before the counter first grows only the latest
    sample is kept, so connecting (TLS, the Hub's redirect) does not count as slow bytes.
    """

    def __init__(
        self,
        window: float = WINDOW,
        *,
        min_span: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = window
        self.min_span = min(min_span, window)
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self.started = clock()
        #: when the counter last grew (the start, before the first byte)
        self.last_change = self.started
        #: when the rate was last at least SLOW_RATE (the start, before it first was)
        self.last_useful = self.started
        self._moved = False

    def add(self, count: int, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        s = self._samples
        if s and count < s[-1][1]:  # a counter that went back (a restart): measure anew
            s.clear()
            self._moved = False
        if s and count > s[-1][1]:
            self.last_change = now
            self._moved = True
        if not self._moved:
            s.clear()  # nothing received yet: the anchor is the latest look before a byte
        s.append((now, count))
        # keep one sample at or before the window's start: the anchor of the span
        while len(s) >= 2 and s[1][0] <= now - self.window:
            s.popleft()
        r = self.rate(now)
        if r is not None and r >= SLOW_RATE:
            self.last_useful = now

    def rate(self, now: float | None = None) -> float | None:
        """Bytes/s over the window, or None while less than ``min_span`` s were seen."""
        now = self.clock() if now is None else now
        s = self._samples
        if not s or not self._moved:
            return None
        t0, n0 = s[0]
        span = now - t0
        if span < self.min_span:
            return None
        # the span is at least the window once the window is full: seconds without bytes at
        # its end count as such (a link that stopped reads 0 after one window)
        return max(0.0, (s[-1][1] - n0) / span)

    def idle(self, now: float | None = None) -> float:
        """Seconds since the counter last grew (since the start before the first byte)."""
        now = self.clock() if now is None else now
        return max(0.0, now - self.last_change)

    def slow(self, now: float | None = None) -> float:
        """Seconds since the rate was last at least SLOW_RATE (a trickle, or nothing at all)."""
        now = self.clock() if now is None else now
        return max(0.0, now - self.last_useful)


def eta_for(remaining: float, rate: float | None) -> float | None:
    """Seconds left at ``rate``; None while the rate is unknown or 0, or beyond MAX_ETA."""
    if remaining <= 0:
        return 0.0
    if rate is None or not rate > 0 or math.isinf(rate):
        return None
    eta = remaining / rate
    return eta if eta <= MAX_ETA else None


def fmt_eta(seconds: float | None) -> str | None:
    """``4:05`` / ``1:02:03``; None for an unknown or absurd ETA (the caller leaves it out)."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds > MAX_ETA:
        return None
    s = int(seconds + 0.5)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_EXC_WORDS = {
    "ConnectError": "cannot connect",
    "ConnectTimeout": "connect timeout",
    "ReadTimeout": "read timeout",
    "WriteTimeout": "write timeout",
    "PoolTimeout": "pool timeout",
    "ReadError": "connection reset",
    "WriteError": "connection reset",
    "RemoteProtocolError": "connection dropped",
    "ProxyError": "proxy error",
}


def exc_reason(exc: BaseException) -> str:
    """Short words for a transport failure (``connection dropped``, ``read timeout``)."""
    return _EXC_WORDS.get(type(exc).__name__, type(exc).__name__)


@dataclass(frozen=True)
class Retry:
    """A failed attempt that will be retried: what failed, which attempt, when the next one is.

    ``attempt`` is the attempt that just failed (1-based) and ``attempts`` how many are
    allowed in all, so the last retry reads "attempt 6 of 7" and a 7th failure is final.
    ``at`` is ``time.monotonic()`` of the next attempt (this process's clock)."""

    reason: str  #: "HTTP 503", "connection dropped", "no data for 30 s"
    attempt: int
    attempts: int
    at: float
    status: int | None = None  #: the HTTP status, when the server answered
    asked: bool = False  #: the server said how long to wait (Retry-After)

    def next_in(self, now: float | None = None) -> float:
        return max(0.0, self.at - (time.monotonic() if now is None else now))

    def text(self, now: float | None = None, *, short: bool = False) -> str:
        """``retrying (HTTP 503, attempt 3 of 7, next in 4 s)``; ``short``: fewer words."""
        left = self.next_in(now)
        when = f"next in {max(1, int(left + 0.5)):d} s" if left >= 0.5 else "trying now"
        if self.asked and left >= 0.5:
            when += " as asked"
        if short:
            return f"retry {self.attempt}/{self.attempts} ({self.reason}), {when}"
        return f"retrying ({self.reason}, attempt {self.attempt} of {self.attempts}, {when})"


def status_reason(status: int) -> str:
    return f"HTTP {status}"


def stalled_text(seconds: float, idle: float | None = None) -> str:
    """``stalled (no data for 12 s)``; when bytes still trickle (``idle``, the seconds since the
    last byte, is well under ``seconds``): ``stalled (under 1 KB/s for 12 s)``."""
    if idle is not None and idle < seconds - 1.0:
        return f"stalled (under {SLOW_RATE / 1000:g} KB/s for {int(seconds):d} s)"
    return f"stalled (no data for {int(seconds):d} s)"
