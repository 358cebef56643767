"""When a long batch of downloads ends, one message for the person who went elsewhere.

:class:`FinishWatch` is fed every :class:`~distill_tui.downloads.DownloadEvent` of a manager.
A batch starts with the first active event (queued, checking, downloading) while nothing was
active, and ends when its last file reaches a final state. If the batch took at least
``after`` seconds and a file finished or failed in it (not only stopped by the person), it
returns the words to show: "distill: download finished (flux-2-klein-4b-Q4_K_S.gguf)",
"distill: 2 downloads finished, 1 failed". The TUI rings the bell and sends the terminal
notification that a finished generation sends (download_notice.py).

No textual: pure bookkeeping, with an injectable clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: a batch shorter than this needs no bell: the person is likely still watching
NOTIFY_AFTER = 30.0


class FinishWatch:
    def __init__(self, after: float = NOTIFY_AFTER, clock: Callable[[], float] = time.monotonic):
        self.after = after
        self.clock = clock
        self._active: set[str] = set()
        self._start: float | None = None
        self._done: list[str] = []
        self._failed: list[str] = []

    def event(self, ev: Any) -> str | None:
        """Feed one event; the message when a long batch just ended (with a file done or
        failed), else None."""
        now = self.clock()
        if not ev.finished:
            if not self._active:
                self._start, self._done, self._failed = now, [], []
            self._active.add(ev.key)
            return None
        if ev.key not in self._active:
            return None  # a preflight failure of a file that never started: already on screen
        self._active.discard(ev.key)
        state = str(getattr(ev.state, "value", ev.state))
        if state == "done":
            self._done.append(ev.key)
        elif state == "failed":
            self._failed.append(ev.key)
        if self._active:
            return None
        took = now - (self._start if self._start is not None else now)
        done, failed = self._done, self._failed
        self._start, self._done, self._failed = None, [], []
        if took < self.after or not (done or failed):
            return None
        return message(done, failed)


def message(done: list[str], failed: list[str]) -> str:
    def name(key: str) -> str:
        return key.rsplit("/", 1)[-1]

    if not failed:
        if len(done) == 1:
            return f"distill: download finished ({name(done[0])})"
        return f"distill: {len(done)} downloads finished"
    if not done:
        if len(failed) == 1:
            return f"distill: download failed ({name(failed[0])})"
        return f"distill: {len(failed)} downloads failed"
    return f"distill: {len(done)} download(s) finished, {len(failed)} failed"
