"""The download service: an asyncio queue of files, progress events, cancel, verify, publish.

Threading model: everything here runs on ONE asyncio event loop (the TUI's App loop, or the
loop ``asyncio.run`` creates in the CLI). ``enqueue``/``cancel``/``subscribe`` must be called
from that loop's thread; subscriber callbacks are invoked on it too (so a Textual widget may
update itself directly, or ``post_message``). Blocking work (hashing, fsync) runs in worker
threads via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from distill_tui.downloads.errors import DownloadError
from distill_tui.downloads.events import (
    COMPONENTS_ORDER,
    FINAL_STATES,
    DownloadEvent,
    DownloadState,
    PlanItem,
)
from distill_tui.downloads.fetch import ChecksumMismatch, FetchConfig, Fetcher, Progress, Restart
from distill_tui.downloads.hub import HubMeta, head, new_client, repo_of, wait_note
from distill_tui.downloads.iothread import IOThread
from distill_tui.downloads.lock import DestLock
from distill_tui.downloads.lock import holder as lock_holder
from distill_tui.downloads.rate import (
    STALLED_AFTER,
    WINDOW,
    RateWindow,
    Retry,
    eta_for,
    stalled_text,
)
from distill_tui.downloads.sidecar import (
    lock_path,
    part_path,
    partial_allocated,
    partial_bytes,
    sidecar_path,
)
from distill_tui.hftoken import offline, offline_message, stall_window, token_to_send
from distill_tui.inventory import human_size
from distill_tui.listeners import Listeners
from distill_tui.redact import redact

if TYPE_CHECKING:
    from distill_tui.catalog import Catalog, CatalogFile
    from distill_tui.inventory import Inventory
    from distill_tui.settings import SettingsStore

log = logging.getLogger(__name__)

#: the note of a published file nothing could be checked against (no sha256 anywhere)
UNVERIFIED = "unverified (no reference hash)"
_UNSET = object()


@dataclass(eq=False)
class _Job:
    key: str
    model_id: str
    component: str
    quant_id: str | None
    file: CatalogFile
    state: DownloadState = DownloadState.QUEUED
    progress: Progress | None = None
    task: asyncio.Task | None = None
    stop_reason: str | None = None
    final: DownloadEvent | None = None
    finished_event: asyncio.Event = field(default_factory=asyncio.Event)
    speed: float = 0.0
    rate: RateWindow | None = None  #: bytes received in this run, over the last seconds
    retry: Retry | None = None  #: a failed attempt that will be retried (Hub or connection)
    stalled: float | None = None  #: seconds without a byte while downloading
    error: str | None = None
    error_kind: str | None = None
    resumable: bool = False
    note: str | None = None
    source_idx: int = 0  #: index into ``file.sources`` of the source in use
    #: (source label, why it was left) for each source given up on, in order
    source_errors: list[tuple[str, DownloadError]] = field(default_factory=list)
    reuse: str | None = None  #: see DownloadEvent.reuse

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def source(self) -> str | None:
        sources = self.file.sources
        if len(sources) < 2:
            return None
        return source_label(sources[min(self.source_idx, len(sources) - 1)])


def source_label(url: str) -> str:
    """``owner/name`` of a Hub resolve URL, else the host."""
    from urllib.parse import urlsplit

    return repo_of(url) or urlsplit(url).netloc


def os_error_message(e: OSError, key: str, models_dir: Path) -> str:
    """A failure of the models dir itself, in words a person can act on."""
    import errno as _errno

    where = e.filename or models_dir / key
    code = e.errno
    if code in (_errno.EACCES, _errno.EPERM):
        return (
            f"{key}: permission denied writing {where}: this user (uid {os.getuid()}) may not "
            f"write there. Fix the permissions of {models_dir} (a shared models dir?) or set "
            "model_base_path to a directory you own"
        )
    if code == _errno.ENAMETOOLONG:
        name = max(Path(str(where)).parts, key=lambda p: len(p.encode()), default="")
        return (
            f"{key[:60]}…: file name too long for this filesystem ({len(name.encode())} bytes in "
            "one name; most filesystems allow 255); the catalog entry needs a shorter file name"
        )
    if code in (_errno.ENOTDIR, _errno.EEXIST):
        return (
            f"{key}: cannot create the folder for it: {where} (or a folder above it) is a file, "
            f"not a directory ({e.strerror}); move that file away and retry"
        )
    if code == _errno.EROFS:
        return f"{key}: {models_dir} is on a read-only filesystem; set model_base_path elsewhere"
    if code in (_errno.ENOSPC, _errno.EDQUOT):
        return f"{key}: disk full in {models_dir}; free some space and retry"
    return f"{key}: cannot write {where}: {e.strerror or e}"


def sha256_file(path: Path, block: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def offline_error(key: str) -> DownloadError:
    """``HF_HUB_OFFLINE`` and ``key`` is nowhere on this machine (not in the HF cache, not in
    an import folder): one line that says how to bring it (issue 23.3)."""
    return DownloadError(
        "offline",
        offline_message(f"{key} is not on this machine")
        + ", or bring the file with `distill models import PATH` (a file or folder holding it)",
    )


class DownloadManager:
    """Owns the queue of file downloads. One instance per process (the App owns the TUI's).

    - ``enqueue`` adds one catalog file; the same file (same key) twice is one download.
    - ``concurrency`` files run at once (default: settings.download_concurrency, 1);
      each file uses ``connections`` parallel Range segments (settings.connections_per_file, 8).
    - On success the file is published (size + sha256 verified, fsync, os.replace), recorded
      in the Inventory, and if the model had no selection for that component the downloaded
      quant becomes the selection.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: SettingsStore,
        inventory: Inventory,
        *,
        token: str | None | object = _UNSET,
        concurrency: int | None = None,
        connections: int | None = None,
        stall_timeout: float | None = None,
        retries: int = 6,
        backoff: float = 1.0,
        disk_margin: int | None = None,
        wait_for_lock: bool = True,
        fetch_overrides: dict[str, Any] | None = None,
        io_thread: bool = True,
        stalled_after: float = STALLED_AFTER,
        rate_window: float = WINDOW,
    ):
        self.catalog = catalog
        self.settings = settings
        self.inventory = inventory
        #: without an explicit token it is re-read before every Hub request (``_hub_token``), so
        #: `hf auth login` (or a new HF_TOKEN file) after a gated error works on retry
        self._token_explicit = token is not _UNSET
        self.token: str | None = token_to_send() if token is _UNSET else token  # type: ignore[assignment]
        self._old_tokens: set[str] = set()  # tokens replaced by a re-read: still redacted
        s = settings.settings
        self.concurrency = max(1, concurrency or s.download_concurrency)
        self.connections = max(1, connections or s.connections_per_file)
        #: a connection under 1 KiB/s over this window is cut (fetch.py): 3 x
        #: HF_HUB_DOWNLOAD_TIMEOUT (30 s by default), the variable that bounds a silent server
        self.stall_timeout = stall_timeout if stall_timeout is not None else stall_window()
        self.retries = retries
        self.backoff = backoff
        self.disk_margin = disk_margin
        self.wait_for_lock = wait_for_lock
        self.fetch_overrides = dict(fetch_overrides or {})  # FetchConfig fields (tests, bench)
        self.stalled_after = stalled_after  #: no byte for this long: the event says "stalled"
        self.rate_window = rate_window  #: seconds the speed is averaged over
        self._subscribers: Listeners[DownloadEvent] = Listeners("download")
        self._events: dict[str, DownloadEvent] = {}
        self._jobs: dict[str, _Job] = {}
        self._queue: asyncio.Queue[str] | None = None
        self._workers: list[asyncio.Task] = []
        self._ticker: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        self._meta_cache: dict[str, tuple[HubMeta, float]] = {}
        self._source_idx: dict[str, int] = {}  #: key -> the source its cached meta came from
        self._source_errs: dict[str, list[tuple[str, DownloadError]]] = {}  #: sources left, why
        self._closing = False
        #: the bytes move on a thread of their own (see iothread.py) so the caller's loop —
        #: the TUI's — stays free for keys and repaints; False runs them on the caller's loop
        self._io: IOThread | None = (
            IOThread(lambda: new_client(self.stall_timeout, self.connections))
            if io_thread
            else None
        )

    # ---- events ----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[DownloadEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on the loop thread for every snapshot; returns unsubscribe.

        Progress is throttled to ~10 events/s per file; state changes and final states are
        always delivered.
        """
        return self._subscribers.subscribe(callback)

    def status(self, key: str) -> DownloadEvent | None:
        return self._events.get(key)

    def events(self) -> list[DownloadEvent]:
        """Latest snapshot of every key this manager has seen."""
        return list(self._events.values())

    # ---- queue -----------------------------------------------------------------------
    def key_for(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """The key (relative path) of a catalog file; raises DownloadError(not_found)."""
        return self._file(model_id, component, quant_id).file

    def enqueue(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        """Queue one file (must be called from the running loop). Returns its key.

        ``quant_id`` None means the model's recommended quant (ignored for the VAE). A key that
        is already queued or running is not queued again; a finished one is queued anew (a
        DONE file whose bytes are still present finishes at once without network).
        """
        asyncio.get_running_loop()  # raises RuntimeError outside the loop
        f = self._file(model_id, component, quant_id)
        qid = self._job_quant(model_id, component, quant_id)
        job = self._jobs.get(f.file)
        if job is not None and not job.finished:
            return f.file
        job = _Job(f.file, model_id, component, qid, f)
        self._jobs[f.file] = job
        self._emit(self._snapshot(job))
        self._ensure_running()
        assert self._queue is not None
        self._queue.put_nowait(f.file)
        return f.file

    async def preflight(self, items: Iterable[PlanItem]) -> list[DownloadEvent]:
        """HEAD every file of the plan concurrently; return FAILED events (gated, missing,
        upstream changed, network...). Files already downloaded are skipped. Nothing is written.
        """
        plan = self._resolve_plan(items)
        self._ensure_running()
        todo = [
            p
            for p in plan
            if not self.inventory.is_present(p.file.file) and not self._sure_local(p)
        ]

        async def one(p: _Job) -> DownloadEvent | None:
            try:
                if offline():  # nothing to ask, and no sure copy here (issue 23.3)
                    raise offline_error(p.key)
                self._check_size(p, await self._meta(p, fresh=True))
            except DownloadError as e:
                p.state = DownloadState.FAILED
                p.error, p.error_kind = str(e), e.kind
                ev = self._snapshot(p)
                active = self._jobs.get(p.key)
                if active is None or active.finished:
                    self._emit(ev)
                return ev
            return None

        results = await asyncio.gather(*(one(p) for p in todo))
        return [r for r in results if r is not None]

    async def download_plan(self, items: Iterable[PlanItem]) -> list[DownloadEvent]:
        """Preflight + disk check for the whole plan, then enqueue all and wait for them.

        If the preflight or the disk check fails nothing is downloaded and the failed events
        are returned. Otherwise returns the final event of every file (plan order).
        """
        failed, keys = await self.queue_plan(items)
        if failed:
            return failed
        return [await self.wait(k) for k in keys]

    async def queue_plan(self, items: Iterable[PlanItem]) -> tuple[list[DownloadEvent], list[str]]:
        """Preflight + disk check for the whole plan, then enqueue it (without waiting).

        Returns (failed events, []) when anything would fail — nothing is queued then, so a
        gated VAE or a missing file stops the plan before the other files move — else
        ([], the queued keys)."""
        plan = self._resolve_plan(items)
        failed = await self.preflight([(p.model_id, p.component, p.quant_id) for p in plan])
        if failed:
            return failed, []
        need = 0
        for p in plan:
            if self.inventory.is_present(p.key) or p.key not in self._meta_cache:
                continue  # (not in the cache: a sure local copy, not asked about; _sure_local)
            meta = self._meta_cache[p.key][0]
            need += self._need(self.inventory.abs_path(p.key), meta.size)
        problem = self._disk_problem(need)
        if problem:
            out = []
            for p in plan:
                p.state, p.error, p.error_kind = DownloadState.FAILED, problem, "disk"
                ev = self._snapshot(p)
                self._emit(ev)
                out.append(ev)
            return out, []
        return [], [self.enqueue(p.model_id, p.component, p.quant_id) for p in plan]

    def cancel(self, key: str) -> bool:
        """Stop one file; its partial stays resumable; state CANCELLED. False if not active."""
        return self._stop(key, "cancelled")

    def unfinished(self) -> list[PlanItem]:
        """(model, component, quant) of every file queued or in progress (a hand-off's plan)."""
        return [
            (j.model_id, j.component, j.quant_id) for j in self._jobs.values() if not j.finished
        ]

    def pause_all(self) -> int:
        """Stop every queued/running file as PAUSED (resumable). Returns how many."""
        return sum(self._stop(k, "paused") for k in list(self._jobs))

    async def wait(self, key: str) -> DownloadEvent:
        """Wait until ``key`` reaches a final state and return that event."""
        job = self._jobs.get(key)
        if job is None:
            ev = self._events.get(key)
            if ev is None:
                raise KeyError(key)
            return ev
        await job.finished_event.wait()
        assert job.final is not None
        return job.final

    async def aclose(self) -> None:
        """Stop every worker; running files end PAUSED with a resumable partial."""
        self._closing = True
        self.pause_all()
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for t in [*self._workers, *([self._ticker] if self._ticker else [])]:
            t.cancel()
        for t in [*self._workers, *([self._ticker] if self._ticker else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._workers.clear()
        self._ticker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._io is not None:
            await self._io.close()

    # ---- machinery -------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._client is None:
            self._client = new_client(self.stall_timeout, self.connections)
            if self._io is not None:
                self._io.warm()  # overlaps with the Hub's HEAD of the first file
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < self.concurrency:
            self._workers.append(asyncio.create_task(self._worker_loop(), name="distill-dl"))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick_loop(), name="distill-dl-tick")

    async def _worker_loop(self) -> None:
        assert self._queue is not None
        while True:
            key = await self._queue.get()
            job = self._jobs.get(key)
            if job is None or job.finished or job.task is not None:
                continue
            job.task = asyncio.create_task(self._run_job(job), name=f"distill-dl:{key}")
            try:
                await asyncio.shield(job.task)
            except asyncio.CancelledError:
                job.stop_reason = job.stop_reason or "paused"
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task
                raise

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for job in list(self._jobs.values()):
                if job.state == DownloadState.PREFLIGHT and job.retry is not None:
                    self._emit(self._snapshot(job))  # the Hub's retry: "next in" counts down
                    continue
                if job.state not in (DownloadState.DOWNLOADING, DownloadState.VERIFYING):
                    continue
                pr = job.progress
                if pr is None:
                    continue
                job.note = pr.note  # e.g. the server asked to wait (Retry-After)
                if pr.phase == "verifying" and job.state != DownloadState.VERIFYING:
                    job.state = DownloadState.VERIFYING
                self._measure(job, pr, now)
                self._emit(self._snapshot(job))

    def _measure(self, job: _Job, pr: Progress, now: float) -> None:
        """Speed over the last seconds from the bytes received in this run (never the bytes a
        resumed partial already had), a pending retry while nothing moves, or "stalled"."""
        if job.rate is None:
            job.rate = RateWindow(self.rate_window)
        job.rate.add(pr.fetched, now)
        job.speed = job.rate.rate(now) or 0.0
        idle = job.rate.idle(now)
        downloading = job.state == DownloadState.DOWNLOADING
        # one connection's retry while the others deliver is no news: shown once nothing moves
        job.retry = pr.retry if downloading and idle >= 0.5 else None
        # no byte, or a trickle under SLOW_RATE (issue 19.9: a byte every 2 s is stalled too)
        still = max(idle, job.rate.slow(now))
        if downloading and job.retry is None and not job.note and still >= self.stalled_after:
            job.stalled = still
        else:
            job.stalled = None

    def _stop(self, key: str, reason: str) -> bool:
        job = self._jobs.get(key)
        if job is None or job.finished:
            return False
        job.stop_reason = reason
        if job.task is not None and not job.task.done():
            job.task.cancel()
        else:
            state = DownloadState.CANCELLED if reason == "cancelled" else DownloadState.PAUSED
            self._finish(job, state, resumable=self._has_partial(job))
        return True

    async def _run_job(self, job: _Job) -> None:
        try:
            await self._run_job_finally(job)
        finally:
            if not job.finished_event.is_set():  # the error path itself failed: never hang
                self._finish(
                    job, DownloadState.FAILED, error="internal error (see the log)", kind="internal"
                )

    async def _run_job_finally(self, job: _Job) -> None:
        try:
            await self._run_job_inner(job)
        except asyncio.CancelledError:
            state = (
                DownloadState.CANCELLED if job.stop_reason == "cancelled" else DownloadState.PAUSED
            )
            self._finish(job, state, resumable=self._has_partial(job))
        except DownloadError as e:
            self._finish(
                job,
                DownloadState.FAILED,
                error=str(e),
                kind=e.kind,
                resumable=e.resumable and self._has_partial(job),
            )
        except OSError as e:  # the models dir: permissions, a name too long, a file for a dir
            log.warning("download of %s failed: %s", job.key, e)
            self._finish(
                job,
                DownloadState.FAILED,
                error=os_error_message(e, job.key, self.inventory.models_dir),
                kind="disk",
                resumable=self._has_partial(job),
            )
        except Exception as e:  # a bug must not kill the queue; the message is redacted
            log.exception("download of %s failed", job.key)
            self._finish(
                job,
                DownloadState.FAILED,
                error=redact(f"unexpected error: {type(e).__name__}: {e}", self._secrets),
                kind="internal",
                resumable=self._has_partial(job),
            )

    async def _run_job_inner(self, job: _Job) -> None:
        dest = self.inventory.abs_path(job.key)
        lock = DestLock(lock_path(dest))
        waited = False
        while not lock.try_acquire():
            if not self.wait_for_lock:
                raise DownloadError(
                    "locked",
                    f"{job.key} is being downloaded by another distill process (pid "
                    f"{lock.holder_pid() or '?'}); wait for it to finish or stop it",
                )
            other = lock_holder(lock.path)
            if other is not None and other.stalled:  # stopped or hung: never waited for forever
                raise DownloadError(
                    "locked",
                    f"{job.key} is held by another distill process ({other.who()}) that has not "
                    f"progressed for {int(other.quiet_for)} s"
                    + (" (it is stopped)" if other.stopped else "")
                    + f"; stopped waiting for it. {other.advice()[0].upper()}"
                    + f"{other.advice()[1:]}, then rerun",
                )
            if not waited:
                waited = True
                job.note = f"waiting for another distill process (pid {lock.holder_pid() or '?'})"
                self._emit(self._snapshot(job))
            await asyncio.sleep(0.25)
        job.note = None
        try:
            self.inventory.refresh()
            if self.inventory.is_present(job.key):
                rec = self.inventory.get(job.key)
                job.progress = Progress(rec.size if rec else 0)
                job.progress.done = job.progress.total
                self._maybe_select(job)
                self._finish(job, DownloadState.DONE)
                return
            if await self._reuse(job, dest):  # the same bytes already on this machine
                return
            if offline():  # HF_HUB_OFFLINE and no copy on this machine: one line, no request
                raise offline_error(job.key)
            self._set_state(job, DownloadState.PREFLIGHT)
            meta = self._check_size(job, await self._meta(job))
            expected = job.file.sha256 or meta.sha256
            if dest.exists() and expected and await self._adopt(job, dest, meta, expected):
                return
            need = self._need(dest, meta.size)
            problem = self._disk_problem(need)
            if problem:
                raise DownloadError("disk", problem)
            scratch_retry = False
            restarts = 0
            while True:
                job.progress = Progress(meta.size)
                # a resume starts at its partial's percentage, not at 0% for a tick (the fetcher
                # sets the exact figure once it has opened the partial)
                job.progress.done = partial_bytes(dest, meta.size)
                job.rate, job.retry, job.stalled = RateWindow(self.rate_window), None, None
                self._set_state(job, DownloadState.DOWNLOADING)
                try:
                    sha = await self._fetch(job, dest, meta, expected)
                    break
                except ChecksumMismatch as e:
                    if self._has_next_source(job):
                        why = f"served other bytes (sha256 {e.actual[:12]}…)"
                        meta = await self._next_source(job, DownloadError("checksum", why))
                        expected = job.file.sha256 or meta.sha256
                        continue
                    if scratch_retry:
                        raise self._all_sources_failed(
                            job,
                            DownloadError(
                                "checksum",
                                f"{job.key}: sha256 mismatch twice (expected {e.expected[:12]}…, "
                                f"got {e.actual[:12]}…); the bad bytes were deleted and nothing "
                                "was published. The server or a proxy is corrupting the file; "
                                "try later",
                            ),
                        ) from None
                    log.warning("%s: %s; deleted, downloading once more from scratch", job.key, e)
                    scratch_retry = True
                except Restart as e:
                    restarts += 1
                    if restarts > 2:
                        raise DownloadError("upstream_changed", str(e)) from None
                    log.warning("%s; starting over", e)
                    for p in (part_path(dest), sidecar_path(dest)):
                        with contextlib.suppress(FileNotFoundError):
                            p.unlink()
                    meta = await self._meta(job, fresh=True)
                    expected = job.file.sha256 or meta.sha256
                except DownloadError as e:
                    if e.kind == "disk":  # this machine's disk, not a source's fault: as it is
                        raise
                    if e.kind == "checksum" or not self._has_next_source(job):
                        raise self._all_sources_failed(job, e) from None
                    meta = await self._next_source(job, e)
                    expected = job.file.sha256 or meta.sha256
            self._set_state(job, DownloadState.VERIFYING)
            self.inventory.record(
                job.key,
                meta.size,
                sha,
                source_url=meta.resolve_url,
                revision=meta.revision,
                unverified=not expected,  # neither the catalog nor the Hub gave a sha256
            )
            self._maybe_select(job)
            job.note = None if expected else UNVERIFIED
            self._finish(job, DownloadState.DONE)
        finally:
            lock.release(unlink=True)

    async def _fetch(self, job: _Job, dest: Path, meta: HubMeta, expected: str | None) -> str:
        """Move the bytes of one file (on the I/O thread unless it is disabled)."""
        cfg, progress, token = self._fetch_cfg(), job.progress, self.token
        assert progress is not None  # set by the caller before each try

        def fetcher(client: httpx.AsyncClient, refresh: Any) -> Fetcher:
            return Fetcher(
                client,
                dest,
                meta,
                expected_sha=expected,
                token=token,
                cfg=cfg,
                refresh=refresh,
                progress=progress,
                label=job.key,
            )

        io = self._io
        if io is None:
            self._ensure_running()
            return await fetcher(self._client, lambda: self._meta(job, fresh=True)).run()  # type: ignore[arg-type]
        home = asyncio.get_running_loop()

        def refresh() -> Any:  # called on the I/O loop; the Hub is asked from the home loop
            return io.call_back(home, lambda: self._meta(job, fresh=True))

        return await io.run(lambda: fetcher(io.client(), refresh).run())

    def _sure_local(self, job: _Job) -> bool:
        """The HF cache holds this exact file: a blob named by the catalog's sha256, of the
        catalog's exact size (a few stats). The preflight does not ask the Hub about it."""
        f = job.file
        if f.sha256 is None:
            return False
        from distill_tui.downloads import localreuse as lr

        # a blob named by the catalog's sha256 is that file whatever the catalog's size
        # estimate says (linking hashes it): the Hub is not asked (issue 23.6)
        return any(
            c.sha256 == f.sha256 and (f.size_estimated or c.size == f.size)
            for c in lr.hf_candidates(f)
        )

    async def _reuse(self, job: _Job, dest: Path) -> bool:
        """Before any byte moves: the same bytes in the HF cache or a folder of
        ``import_dirs`` (downloads/localreuse.py) are linked into place, recorded and selected
        as a download would be. True when the job is done so. The Hub is asked only when the
        catalog lacks the exact size or the sha256 to judge a candidate by."""
        from distill_tui.downloads import localreuse as lr

        f = job.file
        dirs = tuple(self.settings.settings.import_dirs)
        size = None if f.size_estimated else f.size
        skip = self.inventory.models_dir
        cands = await asyncio.to_thread(
            lambda: lr.find(
                f, size=size, import_dirs=dirs, dest=dest,
                index=lr.FolderIndex(dirs, skip=skip) if dirs else None,
            )
        )  # fmt: skip
        if not cands and (size is not None or not dirs):
            return False  # (an estimated size: a folder file is looked for by the Hub's size)
        expected, meta = f.sha256, None
        # an HF cache blob named by the catalog's sha256 needs no size from the Hub: hashing it
        # where it is linked decides (issue 23.6: zero Hub requests, as offline)
        named = expected is not None and any(c.sha256 == expected for c in cands)
        if (expected is None or size is None) and not named:
            try:
                meta = self._check_size(job, await self._meta(job))
            except DownloadError as e:  # offline, gated...: judged on what the disk says
                log.info("%s: the Hub was not asked about local copies: %s", job.key, e)
            if meta is not None:
                expected = expected or meta.sha256
                if size is None:
                    size = meta.size
                    cands = await asyncio.to_thread(
                        lambda: lr.find(
                            f, size=size, import_dirs=dirs, dest=dest,
                            index=lr.FolderIndex(dirs, skip=skip) if dirs else None,
                        )
                    )  # fmt: skip
        for cand in cands:
            if size is not None and cand.size != size:
                continue
            job.progress = Progress(cand.size)
            progress = job.progress
            # the bytes are read (hashed where they are linked, issue 19.3): say so, with progress
            job.note = f"checking a copy in {cand.label}"
            self._set_state(job, DownloadState.VERIFYING)

            def on_bytes(n: int, progress: Progress = progress) -> None:
                progress.done = n  # an int store: read by the ticker on the loop

            res = await asyncio.to_thread(lr.link_checked, cand, dest, size, expected, on_bytes)
            if not res.ok:
                job.reuse = f"not reused: {cand.shown or cand.path} in {cand.label}: {res.why}"
                log.warning("%s: %s", job.key, job.reuse)
                job.note = None
                self._emit(self._snapshot(job))
                continue
            lr.clear_partial(dest)
            progress.done = cand.size
            self.inventory.record(
                job.key,
                cand.size,
                res.sha256,
                source_url=meta.resolve_url if meta else f.download_url,
                revision=cand.revision or (meta.revision if meta else None),
                unverified=res.unverified,  # no reference sha256: as for a download
            )
            job.reuse = lr.how_words(res.how or lr.HARD, cand, res.link_why)
            job.note = UNVERIFIED if res.unverified else None
            log.info("%s: %s", job.key, job.reuse)
            self._maybe_select(job)
            self._finish(job, DownloadState.DONE)
            return True
        job.note = None
        return False

    async def _adopt(self, job: _Job, dest: Path, meta: HubMeta, expected: str) -> bool:
        """A file under the final name the inventory doesn't know: verify before it counts."""
        try:
            if dest.stat().st_size != meta.size:
                return False
        except OSError:
            return False
        job.progress = Progress(meta.size)
        self._set_state(job, DownloadState.VERIFYING)
        digest = await asyncio.to_thread(sha256_file, dest)
        if digest != expected:
            log.warning("%s exists but its sha256 does not match; downloading it again", job.key)
            return False
        job.progress.done = meta.size
        self.inventory.record(
            job.key, meta.size, digest, source_url=meta.resolve_url, revision=meta.revision
        )
        self._maybe_select(job)
        self._finish(job, DownloadState.DONE)
        return True

    async def _meta(self, job: _Job, fresh: bool = False) -> HubMeta:
        """What the Hub says about the job's file, from the first source that serves it.

        Sources are the catalog URL then its ``mirrors``. A source that refuses (401/403/404),
        keeps failing, or announces other bytes than the catalog's sha256 is left for the next
        one; when none is left the error names every source and why it was left."""
        cached = self._meta_cache.get(job.key)
        if cached and not fresh and time.monotonic() - cached[1] < 300:
            job.source_idx = self._source_idx.get(job.key, 0)
            job.source_errors = list(self._source_errs.get(job.key, ()))
            return cached[0]
        self._ensure_running()
        sources = job.file.sources
        start = min(max(job.source_idx, self._source_idx.get(job.key, 0)), len(sources) - 1)
        for i in range(start, len(sources)):
            job.source_idx = i
            if i > start:
                self._emit(self._snapshot(job))  # the UI says which source it now asks
            assert self._client is not None  # _ensure_running made it
            try:
                meta = await head(
                    self._client,
                    sources[i],
                    self._hub_token(),  # type: ignore[arg-type]
                    hub=sources[0],  # the token: the Hub's origin only, never a mirror's
                    retries=min(self.retries, 4),
                    backoff=self.backoff,
                    on_wait=functools.partial(self._waiting, job),
                    on_retry=functools.partial(self._retrying, job),
                )
            except DownloadError as e:
                job.retry = None
                if i + 1 < len(sources):
                    job.source_errors.append((source_label(sources[i]), e))
                    continue
                raise self._all_sources_failed(job, e) from None
            job.retry = None
            cat = job.file.sha256
            if cat and meta.sha256 and cat != meta.sha256:
                if len(sources) > 1:
                    why = (
                        f"serves other bytes (sha256 {meta.sha256[:12]}…, the catalog expects "
                        f"{cat[:12]}…)"
                    )
                    if i + 1 < len(sources):
                        job.source_errors.append(
                            (source_label(sources[i]), DownloadError("upstream_changed", why))
                        )
                        continue
                    raise self._all_sources_failed(job, DownloadError("upstream_changed", why))
                repo = job.file.repo_id or "the repository"
                raise DownloadError(
                    "upstream_changed",
                    f"upstream file changed: {job.key} in {repo} now has sha256 "
                    f"{meta.sha256[:12]}… but the catalog expects {cat[:12]}…; nothing was "
                    "downloaded. Update distill (or the catalog entry) to get the new file",
                )
            f = job.file
            if len(sources) > 1 and not f.size_estimated and meta.size != f.size:
                # a mirror announcing another size serves other bytes: the next source
                other_size = DownloadError(
                    "upstream_changed",
                    f"announces {meta.size} bytes, the catalog expects {f.size}",
                )
                if i + 1 < len(sources):
                    job.source_errors.append((source_label(sources[i]), other_size))
                    continue
                raise self._all_sources_failed(job, other_size)
            self._meta_cache[job.key] = (meta, time.monotonic())
            self._source_idx[job.key] = i
            self._source_errs[job.key] = list(job.source_errors)
            return meta
        raise AssertionError("unreachable: a catalog file has at least one source")

    def _has_next_source(self, job: _Job) -> bool:
        return job.source_idx + 1 < len(job.file.sources)

    async def _next_source(self, job: _Job, why: DownloadError) -> HubMeta:
        """Leave the current source (``why``) and ask the next one."""
        job.source_errors.append((job.source or "", why))
        job.source_idx += 1
        self._source_idx[job.key] = job.source_idx
        log.warning("%s: source %d failed (%s); trying the next one", job.key, job.source_idx, why)
        return await self._meta(job, fresh=True)

    def _all_sources_failed(self, job: _Job, last: DownloadError) -> DownloadError:
        """``last`` as is for a single-source file; else one message naming every source."""
        if len(job.file.sources) < 2:
            return last
        tried = [*job.source_errors, (source_label(job.file.sources[job.source_idx]), last)]
        seen: dict[str, DownloadError] = {}
        for label, why in tried:
            seen.setdefault(label, why)
        parts = "; ".join(f"{label}: {why}" for label, why in seen.items())
        kinds = {e.kind for e in seen.values()}
        # every source said the same (all gated: the token hint applies), else "sources"
        kind = kinds.pop() if len(kinds) == 1 else "sources"
        return DownloadError(
            kind,
            f"no source could serve {job.key} ({len(seen)} tried) — {parts}",
            resumable=last.resumable,
        )

    def _hub_token(self) -> str | None:
        """The token for the next Hub request. Unless one was given explicitly it is read again
        (HF_TOKEN, else the hf CLI's token file): a user who runs `hf auth login` after a gated
        error can retry in the TUI without restarting it."""
        if not self._token_explicit:
            fresh = token_to_send()
            if fresh != self.token:
                if self.token:
                    self._old_tokens.add(self.token)
                self.token = fresh
        return self.token

    def _fetch_cfg(self) -> FetchConfig:
        cfg = FetchConfig(
            connections=self.connections,
            stall_timeout=self.stall_timeout,
            retries=self.retries,
            backoff=self.backoff,
        )
        for k, v in self.fetch_overrides.items():
            setattr(cfg, k, v)
        return cfg

    @staticmethod
    def _need(dest: Path, size: int) -> int:
        """Bytes of new disk space a download still needs (blocks of a partial are reused)."""
        have = max(partial_bytes(dest, size), partial_allocated(dest))
        return max(0, size - have)

    def _disk_problem(self, need: int) -> str | None:
        margin = self.disk_margin if self.disk_margin is not None else max(100_000_000, need // 50)
        try:
            free = self.inventory.free_bytes()
        except OSError:
            return None
        if need + margin > free:
            return (
                f"not enough disk space in {self.inventory.models_dir}: need {human_size(need)} "
                f"(+ {human_size(margin)} margin), {human_size(free)} free; free some space or "
                "set model_base_path to a bigger disk"
            )
        return None

    def _resolve_plan(self, items: Iterable[PlanItem]) -> list[_Job]:
        seen: dict[str, _Job] = {}
        for model_id, component, quant_id in items:
            f = self._file(model_id, component, quant_id)
            qid = self._job_quant(model_id, component, quant_id)
            if f.file not in seen:
                seen[f.file] = _Job(f.file, model_id, component, qid, f)
        return list(seen.values())

    def _default_quant(self, model_id: str, component: str) -> str:
        return self.catalog.require(model_id).default_quant(component)

    def _job_quant(self, model_id: str, component: str, quant_id: str | None) -> str | None:
        """The quant a job fetches: None for a component that is one file (a VAE, an
        upscaler), else ``quant_id`` or the recommended one."""
        comp = self.catalog.require(model_id).component(component)
        if comp is None or not comp.has_quants:
            return None
        return quant_id or self._default_quant(model_id, component)

    def _maybe_select(self, job: _Job) -> None:
        """The first downloaded quant of a component becomes its selection - for every model
        that has the file as that component (Klein 4B's Qwen3-4B quant is Z-Image-Turbo's
        too), as ``models import`` does."""
        if not job.quant_id:  # one file: nothing to choose
            return
        users = [(job.model_id, job.component, job.quant_id)]
        for m in self.catalog.users_of(job.key):
            users += [(m.id, role, qid) for role, qid, f in m.files() if f.file == job.key and qid]
        for model_id, role, qid in dict.fromkeys(users):
            if self.settings.selection(model_id).get(role) is None:
                self.settings.set_quant(model_id, role, qid)

    def _check_size(self, job: _Job, meta: HubMeta) -> HubMeta:
        """The Hub's size must be the catalog's exact one (unless the catalog only estimates
        it): without a reference sha256 the size is all that tells the bytes are the right
        ones, and with one a mismatch would only fail after the whole download."""
        f = job.file
        if not f.size_estimated and meta.size != f.size:
            raise DownloadError(
                "upstream_changed",
                f"{job.key}: the Hub says {meta.size} bytes but the catalog expects {f.size}; "
                "nothing was downloaded. Update distill (or the catalog entry)",
            )
        return meta

    def _retrying(self, job: _Job, retry: Retry) -> None:
        """The Hub's answer will be retried (HEAD): say so on the file's event."""
        job.retry = retry
        active = self._jobs.get(job.key)
        if active is None or active is job or active.finished:
            self._emit(self._snapshot(job))

    def _waiting(self, job: _Job, seconds: float) -> None:
        """The Hub asked to wait (Retry-After): say so on the file's event (0: it is over)."""
        job.note = wait_note(seconds) if seconds > 0 else None
        active = self._jobs.get(job.key)
        if active is None or active is job or active.finished:
            self._emit(self._snapshot(job))

    def _has_partial(self, job: _Job) -> bool:
        """Never raises: it runs on the error path (a name too long, a denied directory)."""
        try:
            dest = self.inventory.abs_path(job.key)
            return part_path(dest).exists() and sidecar_path(dest).exists()
        except (OSError, ValueError):
            return False

    def _set_state(self, job: _Job, state: DownloadState) -> None:
        job.state = state
        self._emit(self._snapshot(job))

    def _finish(
        self,
        job: _Job,
        state: DownloadState,
        *,
        error: str | None = None,
        kind: str | None = None,
        resumable: bool = False,
    ) -> None:
        job.state = state
        try:
            job.error = redact(error, self._secrets) if error else None
            job.error_kind = kind
            job.resumable = resumable
            job.speed = 0.0
            ev = self._snapshot(job)
            job.final = ev
            self._emit(ev)
        finally:  # whatever happens above, a waiter (the CLI, the TUI) is released
            if job.final is None or job.final.state != state:
                job.final = DownloadEvent(
                    job.key, job.model_id, job.component, job.quant_id, state, 0, 0, 0.0, None,
                    error=error, error_kind=kind,
                )  # fmt: skip
            job.finished_event.set()

    @property
    def _secrets(self) -> tuple[str, ...]:
        return tuple(t for t in (self.token, *self._old_tokens) if t)

    def _snapshot(self, job: _Job) -> DownloadEvent:
        pr = job.progress
        total = pr.total if pr else (job.file.size or 0)
        done = pr.done if pr else 0
        if job.state == DownloadState.DONE:
            done = total
        moving = (
            job.state == DownloadState.DOWNLOADING and job.stalled is None and job.retry is None
        )
        speed = job.speed if moving else 0.0
        eta = eta_for(total - done, speed) if moving and total > done else None
        retry = job.retry if not job.finished and job.state != DownloadState.VERIFYING else None
        stalled = job.stalled if job.state == DownloadState.DOWNLOADING else None
        return DownloadEvent(
            key=job.key,
            model_id=job.model_id,
            component=job.component,
            quant_id=job.quant_id,
            state=job.state,
            bytes_done=done,
            total=total,
            speed=speed,
            eta=eta,
            error=job.error,
            error_kind=job.error_kind,
            resumable=job.resumable,
            note=job.note,
            retry=retry,
            stalled=stalled,
            activity=(
                retry.text()
                if retry
                else stalled_text(stalled, job.rate.idle() if job.rate else None)
                if stalled is not None
                else None
            ),
            source=job.source,
            reuse=job.reuse,
        )

    # ---- helpers ---------------------------------------------------------------------
    def _file(self, model_id: str, component: str, quant_id: str | None) -> CatalogFile:
        model = self.catalog.get(model_id)
        if model is None:
            raise DownloadError("not_found", f"unknown model {model_id!r}")
        comp = model.component(component)
        if comp is None:
            raise DownloadError(
                "not_found",
                f"{model_id} has no {component!r} component; its components: "
                f"{', '.join(model.roles)}",
            )
        if comp.file is not None:  # one file (a VAE, an upscaler)
            return comp.file
        qid = quant_id or model.default_quant(component)
        q = comp.get(qid)
        if q is None:
            raise DownloadError(
                "not_found",
                f"unknown {component} quant {qid!r} for {model_id}; valid: {', '.join(comp.ids)}",
            )
        return q

    def _emit(self, event: DownloadEvent) -> None:
        self._events[event.key] = event
        self._subscribers.publish(event)


__all__ = [
    "COMPONENTS_ORDER",
    "DownloadEvent",
    "DownloadManager",
    "DownloadState",
    "PlanItem",
    "sha256_file",
]
