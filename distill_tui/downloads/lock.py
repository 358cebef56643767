"""One writer per destination across processes: an ``fcntl.flock`` on ``<file>.lock``.

The kernel releases a flock when its holder dies (even SIGKILL), so a lock file left behind is
never "held" by a dead process; ``distill models clean`` removes such leftovers. After taking
the lock we check that the path still names the locked inode (another process may have
unlinked it meanwhile), which makes unlinking the lock file on success safe.

A holder that is alive but not running - stopped (SIGSTOP, ctrl+z), or hung - keeps its flock
for ever. So the holder beats: a thread of its own touches the lock file's mtime every
:data:`HEARTBEAT` seconds while it holds the lock. A lock whose mtime is older than
:data:`STALLED_AFTER` is held by a process that is not progressing (:func:`holder`): ``models
status`` says so, and a process waiting for the lock stops waiting with a line naming the pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: seconds between two touches of a held lock file (its mtime: the holder is alive and running)
HEARTBEAT = 1.0
#: a held lock not touched for this long: its holder is stalled (stopped or hung), not waited for
STALLED_AFTER = 15.0


@dataclass(frozen=True)
class Holder:
    """The process that holds a lock, as other processes see it."""

    pid: int | None  #: None: unreadable (held all the same)
    quiet_for: float  #: seconds since its last heartbeat
    stopped: bool  #: the kernel says it is stopped (SIGSTOP, ctrl+z) - Linux /proc only

    @property
    def stalled(self) -> bool:
        return self.quiet_for >= STALLED_AFTER

    def who(self) -> str:
        return f"pid {self.pid}" if self.pid else "another process"

    def quiet_text(self) -> str:
        """``not progressing for 17 s (pid 4242, stopped)``"""
        how = ", stopped" if self.stopped else ""
        return f"not progressing for {int(self.quiet_for):d} s ({self.who()}{how})"

    def stalled_text(self) -> str:
        """``stalled — not progressing for 17 s (pid 4242, stopped)``"""
        return f"stalled — {self.quiet_text()}"

    def advice(self) -> str:
        """What a person can do about a stalled holder."""
        if not self.pid:
            return "find the distill process that holds it and resume or end it"
        p = self.pid
        resume = f"resume it (`kill -CONT {p}`, or `fg` in its terminal)"
        return f"{resume} or end it (`kill {p}`: its partial download is kept)"


def _stopped(pid: int) -> bool:
    """True when /proc says ``pid`` is stopped (state T) or traced-stopped (t)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read(4096)
    except OSError:
        return False
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")"
    rest = stat[stat.rfind(b")") + 1 :].split()
    return bool(rest) and rest[0] in (b"T", b"t")


def holder(path: Path) -> Holder | None:
    """Who holds the lock file ``path`` and for how long it has been quiet; None when nobody
    holds it (or it does not exist)."""
    if not Path(path).exists() or is_stale(path):
        return None
    pid = DestLock(path).holder_pid()
    try:
        quiet = max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        quiet = 0.0
    return Holder(pid, quiet, pid is not None and _stopped(pid))


class DestLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None
        self._beat_stop: threading.Event | None = None
        self._beat: threading.Thread | None = None

    def try_acquire(self) -> bool:
        """Take the lock without waiting. False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # unlinked by the previous holder after we opened it: retry
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            self._start_beat(fd)
            return True

    def _start_beat(self, fd: int) -> None:
        """Touch the lock file every HEARTBEAT s while it is held (a thread: whatever the event
        loop is doing, a running process beats; a stopped one does not)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT):
                with contextlib.suppress(OSError):
                    os.utime(fd)

        self._beat_stop = stop
        self._beat = threading.Thread(target=beat, name="distill-lock-beat", daemon=True)
        self._beat.start()

    def _stop_beat(self) -> None:
        """Before the fd is closed: the thread must never touch a reused descriptor."""
        if self._beat_stop is not None:
            self._beat_stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self._beat_stop = self._beat = None

    def holder_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_text().strip() or "0") or None
        return None

    def release(self, unlink: bool = False) -> None:
        if self.fd is None:
            return
        self._stop_beat()
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None


def is_stale(path: Path) -> bool:
    """True when nobody holds the lock file (it can be removed)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:  # a read-only lock file (chmod -R a-w): flock needs no write
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)
