"""The TUI's terminal driver: Textual's Linux driver with an output path that never blocks the App.

Textual's ``WriterThread`` hands every frame to a thread through a queue of 30 writes with a
blocking ``put``. A terminal that stops reading (a laptop asleep at the other end of an SSH
connection) fills the pty, the writer thread blocks in ``write``, the queue fills, and then the
App's event loop blocks in ``put`` — and with it every download's next step, the inventory
write, the engine's events and the signal handlers. A terminal that goes away (the connection
drops: EIO on the pty) kills Textual's writer thread with an exception, and the next ``put`` on
the full queue — at the latest ``WriterThread.stop`` on the way out — blocks the main thread
forever: an orphan that ignores SIGTERM.

:class:`TerminalWriter` replaces it:

- ``write`` never blocks. While more than :data:`BACKLOG_LIMIT` bytes wait for the terminal,
  frames are dropped (intermediate frames only: once the terminal has taken everything, the
  App is asked for one full repaint, so the screen ends up exactly as it should). Small
  control sequences (modes, the synchronized-update brackets) are kept, up to a bound.
- A write that fails because the terminal is gone (EIO, EPIPE, ENXIO, EBADF) marks it gone:
  later writes are dropped at once and the App is told (``on_gone``), which quits as on a
  hang-up (downloads handed off, the engine child ended).
- ``stop`` waits a bounded time for the last bytes (the sequences that restore the terminal).

:class:`DistillDriver` installs it and treats an input error (EIO on read) as the terminal
being gone too, instead of Textual's panic with a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver

log = logging.getLogger(__name__)

#: bytes waiting for the terminal beyond which frames are dropped (a full 120x40 frame with
#: colours is 30-60 KB; at 256 kbit/s this is 2 s of lag)
BACKLOG_LIMIT = 64 * 1024
#: a write this short is a control sequence (a mode, a synchronized-update bracket), not a frame
SMALL_WRITE = 64
#: control sequences kept while frames are dropped, at most (bytes)
SMALL_BACKLOG_LIMIT = 16 * 1024
#: how long ``stop`` waits for the terminal to take the last bytes
STOP_TIMEOUT = 1.0
#: one ``os.write`` at most this many bytes (a slow link still sees frames go out in order)
WRITE_CHUNK = 64 * 1024

SYNC_START = "\x1b[?2026h"
SYNC_END = "\x1b[?2026l"
GONE_ERRNOS = {errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF, errno.ENOTTY}


class TerminalWriter(threading.Thread):
    """A file-like for Textual's driver: writes go to ``file``'s descriptor on this thread.

    ``on_drained`` is called (on this thread) when frames were dropped and the terminal has
    since taken everything: the caller repaints the whole screen. ``on_gone(error)`` is called
    once (on this thread) when the terminal is gone."""

    def __init__(
        self,
        file: IO[str],
        *,
        on_drained: Callable[[], None] | None = None,
        on_gone: Callable[[OSError], None] | None = None,
        backlog_limit: int = BACKLOG_LIMIT,
    ) -> None:
        super().__init__(daemon=True, name="distill-output")
        self._file = file
        self._fd = file.fileno()
        self._encoding = getattr(file, "encoding", None) or "utf-8"
        self._on_drained = on_drained
        self._on_gone = on_gone
        self._limit = backlog_limit
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._backlog = 0  #: bytes accepted and not yet taken by the terminal (in flight too)
        self._small = 0  #: bytes of small writes accepted while over the limit
        self._sync_open = False  #: a kept SYNC_START waits for its SYNC_END
        self._stale = False  #: a frame was dropped: repaint everything once drained
        self._stopping = False
        self._closing = False  #: the App is restoring the terminal: keep what it writes
        self.gone: OSError | None = None
        self.dropped = 0  #: frames dropped so far (for the log and tests)
        with contextlib.suppress(Exception):  # anything printed before the App took over
            file.flush()

    # ---- the file-like Textual uses -----------------------------------------------------
    def write(self, text: str) -> None:
        """Queue ``text`` for the terminal; never blocks (see the module docstring)."""
        if not text:
            return
        data = text.encode(self._encoding, "replace")
        with self._cond:
            if self.gone is not None or self._stopping:
                return
            if self._backlog >= self._limit and not self._closing:
                if not self._keep_while_backlogged(text, len(data)):
                    self._stale = True
                    self.dropped += 1
                    return
            elif text == SYNC_START:
                self._sync_open = True
            elif text == SYNC_END:
                self._sync_open = False
            self._chunks.append(data)
            self._backlog += len(data)
            self._cond.notify()

    def _keep_while_backlogged(self, text: str, size: int) -> bool:
        """Over the limit: keep a short control sequence (bounded), the SYNC_END that closes a
        kept SYNC_START; drop frames."""
        if text == SYNC_END:
            keep = self._sync_open
            self._sync_open = False
            return keep
        if text == SYNC_START:
            keep = self._small + size <= SMALL_BACKLOG_LIMIT
            self._sync_open = self._sync_open or keep
            if keep:
                self._small += size
            return keep
        if size <= SMALL_WRITE and self._small + size <= SMALL_BACKLOG_LIMIT:
            self._small += size
            return True
        return False

    def flush(self) -> None:
        """A no-op: the thread writes as soon as it can."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    @property
    def backlog(self) -> int:
        """Bytes the terminal has not taken yet."""
        with self._cond:
            return self._backlog

    # ---- lifecycle -----------------------------------------------------------------------
    def closing(self) -> None:
        """The App is about to restore the terminal: pending frames are dropped (they are
        stale now) and what it writes from here on is kept whatever the backlog."""
        with self._cond:
            if self._chunks:
                self.dropped += len(self._chunks)
                self._backlog -= sum(len(c) for c in self._chunks)
                self._chunks.clear()
                if self._sync_open:  # an update bracket left open would hold the screen
                    end = SYNC_END.encode()
                    self._chunks.append(end)
                    self._backlog += len(end)
            self._closing = True
            self._stale = False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Let the thread write what is queued and end; wait at most ``timeout`` seconds (a
        terminal that does not read keeps the rest)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._chunks and not self._stopping:
                    cond.wait()
                if not self._chunks:
                    return
                data = b"".join(self._chunks)
                self._chunks.clear()
                self._small = 0
            try:
                self._write_all(data)
            except OSError as e:
                self._lost(e)
                return
            with cond:
                self._backlog -= len(data)
                repaint = self._stale and not self._chunks and not self._closing
                if repaint:
                    self._stale = False
            if repaint and self._on_drained is not None:
                log.info("terminal reading again (%d frame(s) dropped): full repaint", self.dropped)
                try:
                    self._on_drained()
                except Exception:
                    log.exception("repaint request failed")

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view[:WRITE_CHUNK])
            except BlockingIOError:  # a descriptor left non-blocking by another program
                select.select([], [self._fd], [], 0.5)
                continue
            view = view[n:]

    def _lost(self, error: OSError) -> None:
        with self._cond:
            self.gone = error
            self._chunks.clear()
            self._backlog = 0
        if error.errno not in GONE_ERRNOS:
            log.warning("writing to the terminal failed: %s; treating it as gone", error)
        else:
            log.info("the terminal is gone (%s)", errno.errorcode.get(error.errno or 0, error))
        if self._on_gone is not None:
            try:
                self._on_gone(error)
            except Exception:
                log.exception("terminal-gone callback failed")


class DistillDriver(LinuxDriver):
    """Textual's Linux driver with :class:`TerminalWriter` for output.

    The App may define ``terminal_gone(error)``: called once, on the writer's or the input
    thread (so it must be thread-safe), when the terminal is gone. A repaint of the whole screen is requested on the
    App's loop once a terminal that stopped reading has taken everything again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gone_reported = False
        self._gone_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # Textual's LinuxDriver builds ``WriterThread(self._file)`` inside start_application_mode
    # and starts it right away; the assignment is where ours takes its place (Textual's
    # instance is never started).
    @property
    def _writer_thread(self) -> Any:
        return self.__dict__.get("_distill_writer")

    @_writer_thread.setter
    def _writer_thread(self, value: Any) -> None:
        old = self.__dict__.get("_distill_writer")
        if value is not None and not isinstance(value, TerminalWriter):
            value = TerminalWriter(
                value._file, on_drained=self._request_repaint, on_gone=self._gone
            )
        if old is not None and old is not value:
            old.stop(timeout=0)  # a resume after ctrl+z builds a new one
        self.__dict__["_distill_writer"] = value

    @property
    def writer(self) -> TerminalWriter | None:
        return self._writer_thread

    def stop_application_mode(self) -> None:
        writer = self.writer
        if writer is not None:
            writer.closing()
        super().stop_application_mode()

    def close(self) -> None:
        """Stop the writer (bounded); a terminal that did not take the last bytes, or is gone,
        is noted on the App (``terminal_unusable``): nothing more is printed to it."""
        writer = self.writer
        super().close()
        if writer is not None and (writer.gone is not None or writer.backlog):
            with contextlib.suppress(Exception):
                self._app.terminal_unusable = True  # type: ignore[attr-defined]

    def _call_on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop  # Textual's Driver keeps the App's loop
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback, *args)

    def _request_repaint(self) -> None:
        def repaint() -> None:
            with contextlib.suppress(Exception):  # no screen yet / any more
                self._app.refresh()

        self._call_on_loop(repaint)

    def _gone(self, error: OSError) -> None:
        with self._gone_lock:
            if self._gone_reported:
                return
            self._gone_reported = True
        callback = getattr(self._app, "terminal_gone", None)
        if callback is not None:  # thread-safe by contract: it starts the exit deadline at once
            try:
                callback(error)
            except Exception:
                log.exception("terminal-gone callback failed")

    def _run_input_thread(self) -> None:
        """Textual's, except that a read error (EIO: the pty is gone) is the terminal going
        away, not a crash with a traceback."""
        while True:
            try:
                self.run_input_thread()
                return
            except BlockingIOError:  # a descriptor left non-blocking elsewhere: read on
                continue
            except OSError as e:
                writer = self.writer
                if writer is not None:
                    with writer._cond:
                        writer.gone = writer.gone or e
                self._gone(e)
                return
            except BaseException:
                import rich.traceback

                self._app.call_later(self._app.panic, rich.traceback.Traceback())
                return
