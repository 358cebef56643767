"""One writer per destination across processes: an ``fcntl.flock`` on ``<file>.lock``.

The kernel releases a flock when its holder dies (even SIGKILL), so a lock file left behind is
never "held" by a dead process; ``distill models clean`` removes such leftovers. After taking
the lock we check that the path still names the locked inode (another process may have
unlinked it meanwhile), which makes unlinking the lock file on success safe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path


class DestLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

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
            return True

    def holder_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_text().strip() or "0") or None
        return None

    def release(self, unlink: bool = False) -> None:
        if self.fd is None:
            return
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
