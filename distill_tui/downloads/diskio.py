"""Disk I/O threads of one download: the writer and the hasher that follows it.

- :class:`Writer`: ``pwrite`` on a thread of its own, beside the event loop's HTTP parsing;
  at most 16 MiB queued (memory stays flat); it starts the kernel's writeback early
  (``sync_file_range``, Linux) so the fsync before publishing finds little left to write.
- :class:`PrefixHasher`: sha256 of the contiguous written prefix, read back from the page
  cache right after it was written, so when the last byte lands only what the other
  connections wrote beyond the prefix is left to hash (see ``pieces.plan_pieces``).

No HTTP here: :mod:`distill_tui.downloads.fetch` decides what to write where.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable

from distill_tui.downloads.sidecar import RangeSet

MiB = 1 << 20
#: the most the hasher reads and hashes at once (see _hash_window); also its buffer
HASH_WINDOW = 16 * MiB


class PrefixHasher:
    """sha256 of [0, size) computed by a thread that follows the contiguous written prefix."""

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.size = size
        self.pos = 0
        self._target = 0
        self._h = hashlib.sha256()
        self._buf: memoryview | None = None  # the read buffer, allocated on first use
        self._cond = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="distill-hasher", daemon=True)
        self._thread.start()

    def advance(self, end: int) -> None:
        with self._cond:
            if end > self._target:
                self._target = min(end, self.size)
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    # nothing left to hash (an empty file, or all of it done): never wait for
                    # bytes that cannot come
                    while self.pos >= self._target and self.pos < self.size and not self._stop:
                        self._cond.wait()
                    if self.pos >= self.size:
                        return
                    if self._stop:
                        return
                    target = self._target
                while self.pos < target and not self._stop:
                    self._hash_window(min(target, self.pos + HASH_WINDOW))
                if self.pos >= self.size:
                    return
        except BaseException as e:  # reported by result()
            self._error = e

    def _hash_window(self, end: int) -> None:
        """Hash [pos, end) read back from the page cache in blocks of up to ``HASH_WINDOW``:
        one ``preadv`` and one ``update`` per block, each releasing the GIL for all of it
        (4 MiB blocks took the GIL back twice as often beside the busy event loop). A read,
        not a mapping: an I/O error is an ``OSError`` reported by :meth:`result`, where a
        mapped page that cannot be read kills the process (SIGBUS)."""
        if self._buf is None:
            self._buf = memoryview(bytearray(min(HASH_WINDOW, max(1, self.size))))
        while self.pos < end:
            want = min(len(self._buf), end - self.pos)
            got = os.preadv(self.fd, [self._buf[:want]], self.pos)
            if got <= 0:
                raise OSError(errno.EIO, "short read while hashing")
            self._h.update(self._buf[:got])
            self.pos += got

    async def result(self) -> str:
        self.advance(self.size)
        try:
            await asyncio.to_thread(self._thread.join)
        except BaseException:  # cancelled: end the thread, or the loop's close waits for it
            self.stop()
            raise
        if self._error is not None:
            raise self._error
        if self.pos != self.size:
            raise OSError(errno.EIO, "hasher stopped early")
        return self._h.hexdigest()


class Writer:
    """``pwrite`` on a thread of its own, in arrival order, so that copying into the page cache
    runs beside the loop's HTTP parsing instead of after it.

    ``ranges`` holds what was really written (the sidecar and the hasher only ever see those
    bytes, never bytes still queued). At most ``high`` bytes wait in the queue: past that,
    :meth:`room` makes the receiving connections wait (memory stays flat). Every ``kick``
    bytes it asks the kernel to start writing the dirty pages back (``sync_file_range``,
    Linux), so the fsync before publishing finds little left to do. A write error stops the
    writes; the next :meth:`put` raises it.
    """

    def __init__(self, fd: int, done: RangeSet, *, high: int = 16 * MiB, kick: int = 16 * MiB):
        self.fd = fd
        self.ranges = done.copy()
        self.high = high
        self.low = high // 2
        self.kick = kick
        self.error: OSError | None = None
        self.queued = 0  # bytes waiting
        self.waiting = False  # the loop waits for room
        self._q: deque[tuple[bytes, int]] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._since_kick = 0
        self._thread = threading.Thread(target=self._run, name="distill-writer", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes, offset: int) -> None:
        if self.error is not None:
            raise self.error
        with self._cond:
            self._q.append((chunk, offset))
            self.queued += len(chunk)
            self._cond.notify()

    async def room(self) -> None:
        """Wait while more than ``high`` bytes are queued."""
        while self.queued > self.high and self.error is None:
            with self._cond:
                if self.queued <= self.high:
                    return
                self._room.clear()
                self.waiting = True
            await self._room.wait()

    def snapshot(self) -> RangeSet:
        with self._cond:
            return self.ranges.copy()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._q and not self._stop:
                    self._cond.wait()
                if not self._q:
                    return
                chunk, offset = self._q.popleft()
            n = len(chunk)
            if self.error is None:
                try:
                    view = memoryview(chunk)
                    off = offset
                    while view:
                        k = os.pwrite(self.fd, view, off)
                        view = view[k:]
                        off += k
                    self._since_kick += n
                    if self._since_kick >= self.kick:
                        self._since_kick = 0
                        _start_writeback(self.fd)
                except OSError as e:
                    self.error = e
                except BaseException as e:  # never leave the receivers waiting for room
                    self.error = OSError(errno.EIO, f"writer failed: {e!r}")
            with self._cond:
                if self.error is None:
                    self.ranges.add(offset, offset + n)
                self.queued -= n
                if self.waiting and (self.queued <= self.low or self.error is not None):
                    self.waiting = False
                    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                        self._loop.call_soon_threadsafe(self._room.set)

    def close(self) -> None:
        """Write what is queued (unless a write failed), then end the thread. Blocks."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    async def aclose(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)


def _load_sync_file_range() -> Callable[[int], None] | None:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int) -> None:
        fn(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE: start writeback of the dirty pages, no wait

    return start


_SYNC_FILE_RANGE = _load_sync_file_range()


def _start_writeback(fd: int) -> None:
    """Start writing dirty pages back now (durability still comes from fdatasync/fsync)."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd)
