"""Fetch one file as parallel Range segments into ``<file>.part``, verify, publish.

The HTTP side of a download. Beside it: :mod:`.pieces` (how the file is cut, how many
connections) and :mod:`.diskio` (the writer and hasher threads).

- Workers take the lowest pending piece each (:func:`.pieces.plan_pieces`: pieces finish in
  offset order, so the written prefix the hasher follows grows steadily). A worker that finds
  no pending piece splits the in-flight piece with the most bytes left and takes its upper
  half (aria2-style), so the tail of a file is not left to one connection.
- Adaptive connections: when ``max_connections`` > ``connections`` and pieces are still
  pending, the fetcher measures the aggregate rate for ``probe_window`` seconds, then opens up
  to ``max_connections`` (the settings' connections per file doubled, at most 16 by default);
  if the aggregate rate did not rise by ``probe_gain`` (the link, not the per-connection cap of
  a CDN, is the limit) the extra workers retire after their current piece.
- Every answer is checked: 206 with the Content-Range asked for and the Hub's total; a 200 to
  a Range request is only used when the range starts at 0 (its prefix), else retried; a 403
  from the CDN (expired signature) re-asks the Hub for a fresh URL; 416 re-checks the Hub.
- Bytes go from the socket to the writer thread; only what it has really written counts for
  the sidecar and the hasher (:mod:`.diskio`).
- Every ``flush_interval`` seconds: fdatasync the .part, then atomically replace the sidecar
  with the ranges written before that sync. A crash can only lose the last interval.
- A stall watchdog (the ticker) cuts a connection that delivered less than ``stall_rate``
  bytes/s (1 KiB/s) over ``stall_timeout`` seconds (the service's window: 3 x
  ``HF_HUB_DOWNLOAD_TIMEOUT``, 30 s by default) - nothing at all, or a trickle that never trips
  a read timeout - and its piece continues on a fresh connection (with a fresh URL from the Hub)
  from the byte it reached. A cut counts as a failed attempt unless that attempt delivered at
  least a window's worth at the floor rate (a trickle never resets the count); after the
  retries the file fails with "stalled: the server sent N bytes in the last W s", and the
  service tries the next source.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from distill_tui.atomic import fsync_dir
from distill_tui.downloads.diskio import PrefixHasher, Writer
from distill_tui.downloads.errors import DownloadError
from distill_tui.downloads.hub import (
    RETRY_STATUS,
    TRANSIENT_EXC,
    HubMeta,
    network_error,
    retry_after,
    tls_error,
    tls_failure,
    wait_note,
)
from distill_tui.downloads.pieces import max_connections, plan_pieces
from distill_tui.downloads.rate import Retry, exc_reason, status_reason
from distill_tui.downloads.sidecar import RangeSet, Sidecar, part_path, sidecar_path
from distill_tui.inventory import human_size

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")
MiB = 1 << 20


class ChecksumMismatch(Exception):
    def __init__(self, expected: str, actual: str):
        super().__init__(f"sha256 mismatch: expected {expected[:12]}…, got {actual[:12]}…")
        self.expected = expected
        self.actual = actual


class Restart(Exception):
    """The object upstream changed (size/sha): the partial is dropped and started over."""


@dataclass
class FetchConfig:
    connections: int = 8
    stall_timeout: float = 30.0  #: a connection below ``stall_rate`` for this long is cut
    stall_rate: float = 1024.0  #: bytes/s floor of the stall watchdog (per connection)
    retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 30.0
    min_piece: int = 1 * MiB
    max_piece: int = 32 * MiB
    flush_interval: float = 1.0
    tick: float = 0.1
    #: adaptive connections: at most this many (0: 2 x connections, at most 16; never fewer
    #: than ``connections``; ``connections`` == 1 keeps a single connection)
    max_connections: int = 0
    probe_window: float = 0.25  #: seconds per aggregate-rate measurement
    base_window: float = 0.05  #: the first base rate (before the first scale-up) is this short
    probe_gain: float = 0.2  #: keep the extra connections if the rate rose by at least this
    reprobe: float = 20.0  #: seconds before extra connections are tried again (0: never)
    steal_min: int = 1 * MiB  #: split an in-flight piece only if it has this much left
    verify: bool = True  #: False only for the benchmark's "download alone" baseline


class Progress:
    """Shared between the fetcher and the service's ticker (same thread: the loop)."""

    def __init__(self, total: int = 0):
        self.total = total
        self.done = 0
        self.resumed_from = 0
        self.fetched = 0  # body bytes received in this process
        self.phase = "downloading"  # -> "verifying" once every byte is written
        #: transient words for the person (e.g. the server asked to wait); None when moving
        self.note: str | None = None
        #: the latest failed attempt of a connection that will be retried (cleared by the next
        #: bytes received): the service shows it while nothing moves
        self.retry: Retry | None = None

    def __repr__(self) -> str:
        return f"Progress({self.done}/{self.total})"


class Fetcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        dest: Path,
        meta: HubMeta,
        *,
        expected_sha: str | None,
        token: str | None,
        cfg: FetchConfig,
        refresh: Callable[[], Awaitable[HubMeta]],
        progress: Progress,
        label: str,
    ):
        self.client = client
        self.dest = dest
        self.meta = meta
        self.size = meta.size
        self.expected_sha = expected_sha
        self.token = token
        self.cfg = cfg
        self.refresh = refresh
        self.progress = progress
        self.label = label
        self.part = part_path(dest)
        self.side = sidecar_path(dest)
        self.location = meta.location
        self.loc_gen = 0
        self._refresh_lock = asyncio.Lock()
        self.done = RangeSet()
        self.inflight: dict[int, list[int]] = {}  # id -> [start, pos, end] (end may shrink)
        self.pending: deque[tuple[int, int]] = deque()
        self.fd: int | None = None
        self.sidecar: Sidecar | None = None
        self.hasher: PrefixHasher | None = None
        self.writer: Writer | None = None
        self._retire = 0  # workers asked to stop after their current piece
        self.workers = 0  # live workers (adaptive connections)
        self.peak_workers = 0
        self.retired = 0  # extra workers retired by the scaler
        self.scale_ups = 0  # times the scaler opened extra connections
        self._watch: dict[int, _Watch] = {}  # piece id -> the stall watchdog of its request
        self.stalls = 0  # connections cut by the watchdog

    # ---- state -----------------------------------------------------------------------
    def written(self) -> RangeSet:
        """Bytes really written to the .part (not those still queued for the writer)."""
        if self.writer is not None:
            return self.writer.snapshot()
        w = self.done.copy()
        for start, pos, _end in self.inflight.values():
            w.add(start, pos)
        return w

    def _open(self) -> None:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        sc = Sidecar.load(self.side)
        reuse = False
        if sc is not None and sc.matches(
            self.meta.resolve_url, self.meta.revision, self.meta.sha256, self.size
        ):
            with contextlib.suppress(OSError):
                reuse = os.stat(self.part).st_size == self.size
        if not reuse:
            if sc is not None or self.part.exists():
                log.info("%s: partial does not match the Hub's file; starting over", self.label)
            for p in (self.part, self.side):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            sc = Sidecar(self.meta.resolve_url, self.meta.revision, self.meta.sha256, self.size)
        assert sc is not None
        self.sidecar = sc
        self.done = sc.done.copy()
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)  # sparse; progress lives in the sidecar
        sc.save(self.side)
        self.progress.total = self.size
        self.progress.done = self.progress.resumed_from = self.done.covered()

    def _flush_sync(self) -> None:
        """fdatasync, then record what that sync made durable. Never raises."""
        if self.fd is None or self.sidecar is None:
            return
        snap = self.written()
        try:
            os.fdatasync(self.fd)
            self.sidecar.done = snap
            self.sidecar.save(self.side)
        except OSError as e:
            log.warning("%s: could not persist progress: %s", self.label, e.strerror or e)

    async def _flush(self) -> None:
        if self.fd is None or self.sidecar is None:
            return
        snap = self.written()
        fd = self.fd
        try:
            await asyncio.to_thread(os.fdatasync, fd)
            self.sidecar.done = snap
            await asyncio.to_thread(self.sidecar.save, self.side)
        except OSError as e:
            log.warning("%s: could not persist progress: %s", self.label, e.strerror or e)

    async def _ticker(self) -> None:
        last_flush = last_tick = time.monotonic()
        while True:
            await asyncio.sleep(self.cfg.tick)
            now = time.monotonic()
            self._check_stalls(now, now - last_tick)
            last_tick = now
            w = self.written()
            self.progress.done = w.covered()
            if self.hasher is not None:
                self.hasher.advance(w.prefix_end())
            if time.monotonic() - last_flush >= self.cfg.flush_interval:
                last_flush = time.monotonic()
                await self._flush()

    def _check_stalls(self, now: float, gap: float) -> None:
        """The stall watchdog: cut a connection that delivered less than ``stall_rate`` bytes/s
        (nothing, or a trickle) over the last ``stall_timeout`` seconds; its piece is retried
        on a fresh connection from the byte it reached. httpx's read timeout alone never cuts
        a connection that sends one byte every few seconds."""
        window = self.cfg.stall_timeout
        if window <= 0:
            return
        if gap > window / 2 or (self.writer is not None and self.writer.waiting):
            # the loop itself was blocked (a suspended process) or waits for the disk: the
            # connections were not read, so they are not to blame; measure again from now
            for w in self._watch.values():
                w.mark(now)
            return
        floor = self.cfg.stall_rate * window
        for w in self._watch.values():
            if w.cut or now - w.t0 < window:
                continue
            got = w.slot[1] - w.pos0
            if got < floor and w.slot[1] < w.slot[2]:
                w.cut = True
                w.got = got
                self.stalls += 1
                log.info(
                    "%s: connection at %d delivered %d bytes in %.0f s; cutting it",
                    self.label,
                    w.slot[1],
                    got,
                    now - w.t0,
                )
                w.timeout.reschedule(asyncio.get_running_loop().time())
            else:
                w.mark(now)

    # ---- run -------------------------------------------------------------------------
    async def run(self) -> str:
        """Download what is missing, verify, publish. Returns the sha256 of the published file."""
        self._open()
        assert self.fd is not None
        self.hasher = PrefixHasher(self.fd, self.size) if self.cfg.verify else None
        self.writer = Writer(self.fd, self.done)
        self.pending.extend(plan_pieces(self.done.gaps(self.size), self.cfg))
        ok = False
        ticker = asyncio.create_task(self._ticker())
        try:
            if self.pending:
                n = min(self.cfg.connections, len(self.pending))
                try:
                    async with asyncio.TaskGroup() as tg:
                        for _ in range(n):
                            tg.create_task(self._worker())
                        if max_connections(self.cfg) > n:
                            tg.create_task(self._scaler(tg, n))
                except BaseExceptionGroup as eg:
                    raise _pick(eg) from None
            await self.writer.aclose()
            if self.writer.error is not None:
                raise self._disk_error(self.writer.error)
            ok = True
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if not ok:
                self.writer.close()  # what was received is written (unless writing failed)
                self._flush_sync()
                if self.sidecar is not None:  # what is kept: the durable bytes of the partial
                    self.progress.done = self.sidecar.done.covered()
                if self.hasher is not None:
                    self.hasher.stop()
                os.close(self.fd)
                self.fd = None
        self.progress.done = self.size
        self.progress.phase = "verifying"
        return await self._verify_and_publish()

    async def _verify_and_publish(self) -> str:
        assert self.fd is not None
        fd = self.fd
        try:
            if self.hasher is not None:
                digest = await self.hasher.result()
            else:  # benchmark baseline only: no hashing at all
                digest = self.expected_sha or ""
            actual_size = os.fstat(fd).st_size
        except BaseException:
            self._flush_sync()
            os.close(fd)
            self.fd = None
            raise
        if actual_size != self.size:
            os.close(fd)
            self.fd = None
            self._discard()
            raise DownloadError("size_mismatch", f"{self.label}: size {actual_size} != {self.size}")
        if self.expected_sha and digest != self.expected_sha:
            os.close(fd)
            self.fd = None
            self._discard()
            raise ChecksumMismatch(self.expected_sha, digest)
        try:
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
            self.fd = None
        os.replace(self.part, self.dest)
        fsync_dir(self.dest.parent)
        with contextlib.suppress(FileNotFoundError):
            self.side.unlink()
        return digest

    def _discard(self) -> None:
        for p in (self.part, self.side):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    async def _worker(self) -> None:
        self.workers += 1
        self.peak_workers = max(self.peak_workers, self.workers)
        try:
            while True:
                if self._retire > 0:
                    self._retire -= 1
                    self.retired += 1
                    return
                slot = self._next_slot()
                if slot is None:
                    return
                await self._piece(slot)
        finally:
            self.workers -= 1

    def _next_slot(self) -> list[int] | None:
        """The lowest pending piece, else the upper half of the in-flight piece with the most
        bytes left (its owner stops at the new end: it checks ``slot[2]`` on every chunk)."""
        if self.pending:
            a, b = self.pending.popleft()
            return [a, a, b]
        best: list[int] | None = None
        for slot in self.inflight.values():
            if best is None or slot[2] - slot[1] > best[2] - best[1]:
                best = slot
        if best is None or best[2] - best[1] < max(self.cfg.steal_min, 2 * 64 * 1024):
            return None
        mid = best[1] + (best[2] - best[1]) // 2
        mid -= mid % (64 * 1024)
        if mid <= best[1]:
            return None
        end = best[2]
        best[2] = mid
        return [mid, mid, end]

    async def _rate(self, seconds: float) -> float:
        f0, t0 = self.progress.fetched, time.monotonic()
        await asyncio.sleep(seconds)
        return (self.progress.fetched - f0) / max(1e-6, time.monotonic() - t0)

    async def _scaler(self, tg: asyncio.TaskGroup, n: int) -> None:
        """Open more connections while that raises the aggregate rate (per-connection caps).

        A decision to retire them is taken again every ``reprobe`` seconds while pieces are
        pending: one noisy measurement (or a link that got faster) does not fix the count for
        the rest of a multi-GB file."""
        cap = max_connections(self.cfg)
        win = self.cfg.probe_window
        # until every connection has its first bytes (at most one window): a base measured
        # early (slow start) can only be low, which errs toward keeping the extra connections
        deadline = time.monotonic() + win
        while time.monotonic() < deadline:
            if sum(1 for s in self.inflight.values() if s[1] > s[0]) >= n:
                break
            await asyncio.sleep(min(0.02, win / 4))
        first = True
        while True:
            # a short base errs the same harmless way; the first one is shortest, since the
            # extra connections (the whole gain under a per-connection cap) open right after
            base = await self._rate(min(self.cfg.base_window, win / 2) if first else win / 2)
            first = False
            while n < cap and len(self.pending) >= 2:
                add = min(cap - n, n)
                for _ in range(add):
                    tg.create_task(self._worker())
                n += add
                self.scale_ups += 1
                await asyncio.sleep(win / 2)  # new connections set up
                rate = await self._rate(win)
                log.debug(
                    "%s: %d connections: %.1f MB/s (was %.1f)",
                    self.label,
                    n,
                    rate / 1e6,
                    base / 1e6,
                )
                if rate < base * (1 + self.cfg.probe_gain):
                    self._retire += add  # the link is the limit: back to the configured count
                    n -= add
                    break
                base = rate
            if n >= cap or self.cfg.reprobe <= 0:
                return
            until = time.monotonic() + self.cfg.reprobe
            while self.pending and (time.monotonic() < until or self._retire > 0):
                await asyncio.sleep(min(0.25, self.cfg.reprobe / 4))  # ends with the pieces
            if len(self.pending) < 2:
                return
            n = self.workers

    # ---- one piece ----------------------------------------------------------------------
    async def _piece(self, slot: list[int]) -> None:
        a = slot[0]
        pid = id(slot)
        self.inflight[pid] = slot
        failures = 0
        size_faults = 0
        why = ""  # what the server did last time it was not usable (for the final message)
        try:
            while slot[1] < slot[2]:
                pos, b = slot[1], slot[2]
                url, gen = self.location, self.loc_gen
                headers = {"Range": f"bytes={pos}-{b - 1}", "Accept-Encoding": "identity"}
                if self.meta.same_origin and self.token:
                    headers["Authorization"] = f"Bearer {self.token}"
                delay: float | None = None
                watch: _Watch | None = None
                try:
                    async with asyncio.timeout(None) as timeout:
                        watch = self._watch[pid] = _Watch(slot, timeout, time.monotonic())
                        try:
                            async with self.client.stream("GET", url, headers=headers) as resp:
                                limit, why = await self._check(resp, pos, b, gen)
                                if limit is None:
                                    delay = self._delay(resp, failures)
                                else:
                                    await self._receive(resp, slot)
                        finally:
                            del self._watch[pid]  # never rescheduled once its block is left
                except TimeoutError:
                    if watch is None or not watch.cut:
                        raise
                    # cut by the stall watchdog. Only an attempt that delivered a useful amount
                    # (a window's worth at the floor rate) before it slowed down resets the
                    # count: a trickle of a byte every few seconds is a failure every time
                    window = self.cfg.stall_timeout
                    useful = slot[1] - pos >= self.cfg.stall_rate * window
                    failures = 0 if useful else failures
                    failures += 1
                    if failures > self.cfg.retries:
                        raise DownloadError(
                            "network",
                            f"{self.label}: stalled: the server sent {watch.got} bytes in the "
                            f"last {window:g} s (under {human_size(self.cfg.stall_rate)}/s, "
                            f"{failures} attempts on fresh connections); rerun to resume",
                            resumable=True,
                        ) from None
                    # a fresh connection, to a fresh URL (maybe another CDN node), right away:
                    # the window itself was the wait
                    self._retrying(f"stalled: {watch.got} B in {window:g} s", failures, 0)
                    if not self.meta.same_origin:
                        await self._refresh_location(gen)
                    continue
                except _SizeFault as e:
                    size_faults += 1
                    if size_faults >= 2:
                        raise DownloadError(
                            "size_mismatch",
                            f"{self.label}: the Hub says {self.size} bytes but the CDN serves "
                            f"{e.total}; nothing was published (try again later)",
                            resumable=True,
                        ) from None
                    await self._refresh_location(gen)
                    delay = 0
                except TRANSIENT_EXC as e:
                    progressed = slot[1] > pos
                    if tls_failure(e) is not None:  # a certificate is not transient
                        raise tls_error(str(url), e) from None
                    if progressed:
                        failures = 0
                    failures += 1
                    log.info(
                        "%s: connection problem at %d (%s), retry %d",
                        self.label,
                        slot[1],
                        type(e).__name__,
                        failures,
                    )
                    if failures > self.cfg.retries:
                        raise network_error(self.meta.resolve_url, e, self.token) from None
                    pause = self._backoff(failures)
                    self._retrying(exc_reason(e), failures, pause)
                    await asyncio.sleep(pause)
                    continue
                if delay is not None:
                    if slot[1] > pos:
                        failures = 0
                    failures += 1
                    if failures > self.cfg.retries:
                        raise DownloadError(
                            "network",
                            f"{self.label}: the download server {why or 'kept failing'} "
                            f"({failures} times); rerun to resume",
                            resumable=True,
                        )
                    if delay:
                        st = resp.status_code
                        self._retrying(
                            status_reason(st),
                            failures,
                            delay,
                            status=st,
                            asked=st in RETRY_STATUS and "retry-after" in resp.headers,
                        )
                        await self._wait(delay, resp_asked=why.startswith("answered"))
        finally:
            self.inflight.pop(pid, None)
            if slot[1] > a:
                self.done.add(a, slot[1])

    async def _receive(self, resp: httpx.Response, slot: list[int]) -> None:
        """The body of a usable answer into the writer, from ``slot[1]`` (advanced with every
        byte) up to ``slot[2]`` (which shrinks when another worker splits the piece). A body
        that ends early raises: the caller retries from where it got to."""
        writer = self.writer
        assert writer is not None
        async for chunk in resp.aiter_raw():
            room = slot[2] - slot[1]
            if len(chunk) > room:
                chunk = chunk[:room]
            self._write(chunk, slot[1])
            slot[1] += len(chunk)
            if writer.queued > writer.high:
                await writer.room()
            self.progress.fetched += len(chunk)
            if self.progress.retry is not None:
                self.progress.retry = None
            if slot[1] >= slot[2]:
                return
        if slot[1] < slot[2]:
            raise httpx.RemoteProtocolError("body ended early")

    def _write(self, chunk: bytes, offset: int) -> None:
        assert self.writer is not None
        try:
            self.writer.put(chunk, offset)
        except OSError as e:
            raise self._disk_error(e) from None

    def _disk_error(self, e: OSError) -> DownloadError:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = _free(self.dest.parent)
            kept = self.written().covered()
            return DownloadError(
                "disk",
                f"disk full while writing {self.dest.name} ({human_size(free)} free); the "
                f"partial download is kept ({human_size(kept)} of {human_size(self.size)}): "
                "free some space and rerun to resume",
                resumable=True,
            )
        return DownloadError("disk", f"cannot write {self.part}: {e.strerror or e}", resumable=True)

    def _retrying(
        self,
        reason: str,
        failures: int,
        pause: float,
        *,
        status: int | None = None,
        asked: bool = False,
    ) -> None:
        """Record a failed attempt that will be retried in ``pause`` s (Progress.retry)."""
        self.progress.retry = Retry(
            reason,
            failures,
            self.cfg.retries + 1,
            time.monotonic() + pause,
            status=status,
            asked=asked,
        )

    def _backoff(self, failures: int) -> float:
        return min(self.cfg.max_backoff, self.cfg.backoff * 2 ** max(0, failures - 1))

    async def _wait(self, delay: float, *, resp_asked: bool) -> None:
        """Sleep before a retry; a long wait the server asked for is shown (Progress.note)."""
        if not resp_asked or delay < 3.0:
            await asyncio.sleep(delay)
            return
        note = wait_note(delay)
        self.progress.note = note
        log.info("%s: %s", self.label, note)
        try:
            await asyncio.sleep(delay)
        finally:
            if self.progress.note == note:
                self.progress.note = None

    def _delay(self, resp: httpx.Response, failures: int) -> float:
        if resp.status_code in RETRY_STATUS:
            return retry_after(resp, self._backoff(failures + 1))
        if resp.status_code == 403 or resp.status_code == 416:
            return 0.0  # already refreshed
        return self._backoff(failures + 1)

    async def _check(
        self, resp: httpx.Response, pos: int, b: int, gen: int
    ) -> tuple[int | None, str]:
        """Validate an answer: (bytes to take, "") or (None, what the server did) to retry."""
        st = resp.status_code
        enc = resp.headers.get("content-encoding", "identity").lower()
        if st in (200, 206) and enc not in ("identity", ""):
            why = f"sent Content-Encoding {enc} instead of the raw bytes (a compressing proxy?)"
            log.info("%s: server %s; retrying", self.label, why)
            return None, why
        if st == 206:
            cr = resp.headers.get("content-range", "").strip()
            m = _CONTENT_RANGE.match(cr)
            if not m:
                why = f"answered 206 without a usable Content-Range ({cr[:40]!r})"
                log.info("%s: %s; retrying", self.label, why)
                return None, why
            s, e, t = int(m.group(1)), int(m.group(2)), m.group(3)
            if t != "*" and int(t) != self.size:
                raise _SizeFault(int(t))
            if s != pos or e != b - 1:
                why = f"sent Content-Range bytes {s}-{e} when asked for bytes {pos}-{b - 1}"
                log.info("%s: %s; retrying", self.label, why)
                return None, why
            return b - pos, ""
        if st == 200:
            cl = resp.headers.get("content-length")
            if cl is not None and cl.isdigit() and int(cl) != self.size:
                raise _SizeFault(int(cl))
            if pos == 0:
                return b, ""  # Range ignored, but the body starts where we want: use its prefix
            why = f"ignored the Range request (200 with the whole file) at offset {pos}"
            log.info("%s: server %s; retrying", self.label, why)
            return None, why
        if st in (401, 403, 404, 410) and not self.meta.same_origin:
            # signed URL expired/invalid (403) or object moved: ask the Hub for a fresh URL
            await self._refresh_location(gen)
            return None, f"refused the download URL ({st}) even after a fresh one from the Hub"
        if st == 416:
            m = _UNSATISFIED.match(resp.headers.get("content-range", "").strip())
            if m and int(m.group(1)) != self.size:
                raise _SizeFault(int(m.group(1)))
            await self._refresh_location(gen)
            return None, f"answered 416 (range not satisfiable) for bytes {pos}-{b - 1}"
        if st in RETRY_STATUS:
            return None, f"answered HTTP {st}"
        if st in (401, 403, 404):
            from distill_tui.downloads.hub import hub_error

            raise hub_error(resp, self.meta.resolve_url, self.token)
        if 300 <= st < 400:
            loc = resp.headers.get("location", "")
            where = (urlsplit(loc).netloc or "the same host") if loc else "nowhere"
            why = f"kept redirecting ({st} to {where}) instead of sending the bytes"
            log.info("%s: server %s; retrying", self.label, why)
            return None, why
        log.info("%s: unexpected status %d; retrying", self.label, st)
        return None, f"answered an unexpected HTTP {st}"

    async def _refresh_location(self, gen: int) -> None:
        async with self._refresh_lock:
            if gen != self.loc_gen:
                return  # another connection already got a fresh URL
            meta = await self.refresh()
            if meta.size != self.size or (
                meta.sha256 and self.meta.sha256 and meta.sha256 != self.meta.sha256
            ):
                raise Restart(f"{self.label}: the file changed on the Hub during the download")
            self.location = meta.location
            self.loc_gen += 1
            log.info("%s: got a fresh download URL from the Hub", self.label)


class _Watch:
    """Stall watchdog state of one request: bytes of ``slot`` reached since ``t0``."""

    __slots__ = ("slot", "timeout", "t0", "pos0", "cut", "got")

    def __init__(self, slot: list[int], timeout: asyncio.Timeout, now: float):
        self.slot = slot
        self.timeout = timeout
        self.cut = False
        self.got = 0  #: bytes of the last window when it was cut
        self.mark(now)

    def mark(self, now: float) -> None:
        self.t0 = now
        self.pos0 = self.slot[1]


class _SizeFault(Exception):
    def __init__(self, total: int):
        self.total = total


def _pick(eg: BaseExceptionGroup) -> BaseException:
    """The most meaningful exception of a group (a worker's DownloadError over cancellations)."""
    flat: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for x in e.exceptions:
                walk(x)
        else:
            flat.append(e)

    walk(eg)
    for kind in (DownloadError, Restart, ChecksumMismatch):
        for e in flat:
            if isinstance(e, kind):
                return e
    for e in flat:
        if not isinstance(e, asyncio.CancelledError):
            return e
    return flat[0] if flat else eg


def _free(path: Path) -> int:
    import shutil

    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0
