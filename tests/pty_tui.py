"""The real TUI in a pseudo-terminal: spawn ``python -m distill_tui``, read what it draws, send
keys and signals, and compare the terminal's modes before and after (what ``stty -a`` shows)."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALT_ON, ALT_OFF = b"\x1b[?1049h", b"\x1b[?1049l"


class PtyTUI:
    def __init__(self, *args: str, env: dict[str, str] | None = None, size=(120, 40)):
        self.master, self.slave = os.openpty()
        w, h = size
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
        self.modes_before = termios.tcgetattr(self.slave)
        slave = self.slave

        def controlling_tty() -> None:
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        environ = dict(env or os.environ)
        environ.setdefault("TERM", "xterm-256color")
        environ["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "distill_tui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=environ,
            start_new_session=True,
            preexec_fn=controlling_tty,
            close_fds=True,
        )
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._buf += data

    @property
    def output(self) -> bytes:
        with self._lock:
            return bytes(self._buf)

    def wait_for(self, marker: bytes, timeout: float = 20.0, start: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.output[start:]:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = self.output[-2000:]
        raise AssertionError(f"{marker!r} not seen (rc={self.proc.poll()}); last output: {tail!r}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_exit(self, timeout: float = 10.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        time.sleep(0.1)  # let the reader drain what was written last
        return rc

    def modes_now(self) -> list:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
