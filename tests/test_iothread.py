"""The I/O thread that moves download bytes off the caller's (the TUI's) event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import pytest

from distill_tui.downloads.iothread import IOThread
from distill_tui.downloads.service import DownloadState
from tests.test_downloads import DIFF, TE, VAE, big, published, rel_of, run_plan  # noqa: F401


def _io() -> IOThread:
    return IOThread(lambda: httpx.AsyncClient())


async def test_result_and_exception_cross_the_threads():
    io = _io()
    caller = threading.get_ident()
    try:

        async def where() -> int:
            await asyncio.sleep(0)
            return threading.get_ident()

        assert await io.run(where) != caller

        async def boom() -> None:
            raise ValueError("from the I/O loop")

        with pytest.raises(ValueError, match="from the I/O loop"):
            await io.run(boom)
    finally:
        await io.close()
    assert not io.running


async def test_cancel_waits_until_the_coroutine_has_wound_down():
    io = _io()
    started, wound_down = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.2)  # e.g. saving the sidecar
            wound_down.set()

    task = asyncio.create_task(io.run(slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wound_down.is_set(), "CancelledError arrived before the remote side finished"
    await io.close()


async def test_cancel_before_the_coroutine_starts_does_not_hang():
    io = _io()
    ran = threading.Event()

    async def never() -> None:
        ran.set()

    for _ in range(20):  # cancel at once, before the I/O loop picks it up
        task = asyncio.create_task(io.run(never))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    await io.close()


async def test_manager_writes_bytes_off_the_callers_thread(big, monkeypatch):  # noqa: F811
    """Every pwrite of a download happens on the I/O thread, never on the loop's thread."""
    writers: set[int] = set()
    real = os.pwrite

    def spy(fd, data, offset):
        writers.add(threading.get_ident())
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    res, _seen, _ = await run_plan(big, [DIFF, TE, VAE])
    assert [e.state for e in res] == [DownloadState.DONE] * 3
    assert published(big, rel_of(big, DIFF)) == big.payload(rel_of(big, DIFF))
    assert writers and threading.get_ident() not in writers
