"""A thread with its own asyncio loop for the byte-moving half of downloads.

The DownloadManager (queue, states, events, inventory, settings) lives on the caller's loop —
the TUI's App loop. Moving bytes does not: parsing HTTP chunks for 8-16 connections and
``pwrite``-ing them is steady CPU work, and on the App loop every key press would queue
behind it. :meth:`IOThread.run` runs a coroutine on the I/O loop and awaits its result from
the caller's loop; cancelling the caller cancels the coroutine there and waits until it has
wound down (sidecar saved, file closed) before the CancelledError is re-raised, so a
cancelled download is never still writing when its lock is released.

The queue's own steps (the next file, the inventory record, the events) stay on the caller's
loop, so that loop must never block: the TUI's terminal driver (distill_tui/driver.py) drops
frames rather than wait for a terminal that does not read (issue 22.1: a pty nobody drained
blocked the App loop in Textual's writer queue, and the next file never started).

The thread owns one ``httpx.AsyncClient`` (clients are bound to the loop they were first
used on), created lazily and closed by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class IOThread:
    def __init__(self, client_factory: Callable[[], httpx.AsyncClient], name: str = "distill-io"):
        self._client_factory = client_factory
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self.running:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    loop.close()

            thread = threading.Thread(target=main, name=self._name, daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            return loop

    def warm(self) -> None:
        """Start the thread and build its client now (e.g. while the Hub is asked about the
        file), so the first GET does not wait for them."""
        loop = self._start()
        loop.call_soon_threadsafe(self.client)

    def client(self) -> httpx.AsyncClient:
        """The I/O loop's client (call on the I/O loop only)."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def close(self) -> None:
        """Close the client on the I/O loop, stop the loop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

        if thread.is_alive():
            try:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shutdown(), loop))
            finally:
                loop.call_soon_threadsafe(loop.stop)
                await asyncio.to_thread(thread.join, 10)
        self._loop = self._thread = None

    # ---- running work ----------------------------------------------------------------
    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` (a coroutine built on the I/O loop) there; return its result here.

        If the awaiting task is cancelled, the coroutine is cancelled on the I/O loop and this
        waits for it to finish before re-raising CancelledError (a second cancel while waiting
        does not cut the wait short)."""
        caller = asyncio.get_running_loop()
        loop = self._start()
        done: asyncio.Future[Any] = caller.create_future()

        def settle(result: Any, error: BaseException | None, cancelled: bool) -> None:
            if done.done():
                return
            if cancelled:
                done.cancel()
            elif error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

        # touched on the I/O loop only
        remote: dict[str, Any] = {"task": None, "started": False, "cancelled": False}

        async def runner() -> None:
            if remote["cancelled"]:  # cancelled before it started
                caller.call_soon_threadsafe(settle, None, None, True)
                return
            remote["started"] = True
            try:
                result = await make()
            except asyncio.CancelledError:
                caller.call_soon_threadsafe(settle, None, None, True)
                raise
            except BaseException as e:  # handed to the caller, who re-raises it
                caller.call_soon_threadsafe(settle, None, e, False)
            else:
                caller.call_soon_threadsafe(settle, result, None, False)

        def start() -> None:
            remote["task"] = loop.create_task(runner())  # strong ref: the loop keeps weak ones

        def cancel() -> None:
            remote["cancelled"] = True
            # A task cancelled before its first step never enters runner's try (and would
            # never settle): before it starts, the flag alone stops it.
            if remote["started"]:
                remote["task"].cancel()

        loop.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                loop.call_soon_threadsafe(cancel)
                while not done.done():
                    try:
                        await asyncio.shield(done)
                    except asyncio.CancelledError:
                        continue
            raise

    async def call_back(
        self, loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> T:
        """From the I/O loop: run ``make()`` on ``loop`` (the manager's) and await it here."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))
