"""``EngineClient``: the App-owned handle on the engine child process (no textual import).

Usage (any asyncio loop; in a Textual app, the App's loop)::

    client = EngineClient(on_event=handle, history=History(paths.history_file))
    result = await client.generate(load_request, generate_request)   # raises EngineError
    await client.cancel()          # from another task: ends the child within ~1 s
    await client.shutdown()        # on exit

Threading: every coroutine must run on ONE event loop (the loop that first started the
child); ``on_event`` and ``on_state`` are called synchronously on that loop's thread, from
the task that reads the child's stdout. In Textual, call ``client.generate`` from an async
worker (``run_worker(coro)``, not ``thread=True``) or any handler of the App; callbacks may
then touch widgets / ``post_message`` directly. Keep callbacks fast and never raise (an
exception in one is logged and ignored).

Decisions:

* The child is started lazily by the first request and kept for later ones; the loaded model
  stays loaded in it. The child compares load options (:meth:`LoadRequest.key`) and reuses
  the context when they are equal, so ``generate`` always sends ``load`` first.
* One generation at a time: a request while busy raises :class:`EngineBusy` (never queued,
  never interleaved). ``cancel()`` ends the child (SIGTERM, then SIGKILL after 0.5 s;
  stable-diffusion.cpp has no cancel API); the pending ``generate`` raises
  ``EngineError("cancelled")`` and the next request starts a fresh child.
* A child that dies on its own (segfault, abort, OOM kill, ``kill -9``) turns into
  ``EngineError("crash")`` carrying the last lines of its stderr; the state becomes
  ``failed`` and the next request starts a new child.
* The child writes PNGs; when ``history`` is given, the client appends the history record
  after ``done``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from distill_tui.engine.protocol import (
    DoneEvent,
    EngineEvent,
    ErrorEvent,
    GenerateRequest,
    ImageEvent,
    LoadedEvent,
    LoadRequest,
    ProtocolError,
    ReadyEvent,
    ShutdownRequest,
    Timings,
    UnloadedEvent,
    UnloadRequest,
    UpscaledEvent,
    UpscaleRequest,
    dumps,
    parse_event,
)

log = logging.getLogger(__name__)

EngineState = Literal["not_started", "starting", "loading", "ready", "busy", "failed"]

LOG_TAIL_LINES = 200
ERROR_TAIL_LINES = 30
#: seconds a fresh child has to send its ``ready`` event
READY_TIMEOUT = 60.0


class EngineError(Exception):
    def __init__(self, kind: str, message: str, log_tail: list[str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log_tail = list(log_tail or [])

    def __str__(self) -> str:
        return self.message


class EngineBusy(EngineError):
    def __init__(self, message: str = "a generation is already running"):
        super().__init__("busy", message)


@dataclass
class GenerationResult:
    id: str
    seed: int
    images: list[ImageEvent]
    timings: Timings
    loaded: LoadedEvent | None = None  # how the load went (reused or seconds)
    history_id: str | None = None
    paths: list[str] = field(default_factory=list)
    wall: float = 0.0  # client side: request to result, load and IPC included


class _Exited:
    def __init__(self, returncode: int | None):
        self.returncode = returncode


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "the engine stopped responding"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"the engine process was killed by {name}"
    return f"the engine process exited with code {rc}"


class EngineClient:
    def __init__(
        self,
        on_event: Callable[[EngineEvent], None] | None = None,
        *,
        on_state: Callable[[EngineState], None] | None = None,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        history: object | None = None,  # outputs.History (kept untyped: optional import)
        log_file: str | os.PathLike[str] | None = None,
        recycle_after_bytes: int = 1 << 30,
    ):
        self._on_event = on_event
        self._on_state = on_state
        self._env = dict(env) if env is not None else None
        self._python = python or sys.executable
        self._history = history
        self._log_file = log_file
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._proc: asyncio.subprocess.Process | None = None
        self._queue: asyncio.Queue[EngineEvent | _Exited] | None = None
        self._tasks: list[asyncio.Task] = []
        self._state: EngineState = "not_started"
        self._busy = False
        self._cancelling = False
        self._loaded_key: tuple | None = None
        self._loaded_model: str | None = None
        self.ready_event: ReadyEvent | None = None
        self._seq = 0
        # stable-diffusion-cpp-python never frees the native image buffers (w*h*3 bytes per
        # image); the child is restarted before a generation once this much has leaked.
        self._recycle_after = recycle_after_bytes
        self._leaked = 0

    # ---- public state ----------------------------------------------------------------
    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def loaded_model(self) -> str | None:
        """The model id (or DiT path) of the loaded context, None when nothing is loaded."""
        return self._loaded_model

    @property
    def backend(self) -> ReadyEvent | None:
        """Backend info from the child's ``ready`` event (None before the first start)."""
        return self.ready_event

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    @property
    def log_tail(self) -> list[str]:
        return list(self._tail)

    def _set_state(self, state: EngineState) -> None:
        if state != self._state:
            self._state = state
            if self._on_state:
                try:
                    self._on_state(state)
                except Exception:  # pragma: no cover - a UI bug must not break the engine
                    log.exception("on_state callback failed")

    def _emit(self, ev: EngineEvent) -> None:
        if self._on_event:
            try:
                self._on_event(ev)
            except Exception:  # pragma: no cover
                log.exception("on_event callback failed")

    # ---- child lifecycle -------------------------------------------------------------
    def _alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> ReadyEvent:
        """Start the child if needed and wait for its ``ready`` event."""
        if self._alive() and self.ready_event is not None:
            return self.ready_event
        await self._reap()
        self._set_state("starting")
        env = dict(self._env if self._env is not None else os.environ)
        env.setdefault("GGML_NO_BACKTRACE", "1")
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "distill_tui.engine.child",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=16 * 1024 * 1024,
                start_new_session=True,  # a terminal Ctrl-C goes to us, not straight to it
            )
        except OSError as e:
            self._set_state("failed")
            raise EngineError("start", f"cannot start the engine: {e}") from e
        self._queue = asyncio.Queue()
        self._cancelling = False
        self._loaded_key = None
        self._loaded_model = None
        self._tasks = [
            asyncio.create_task(self._read_stdout(self._proc, self._queue)),
            asyncio.create_task(self._read_stderr(self._proc)),
        ]
        try:
            ev = await asyncio.wait_for(self._next(), READY_TIMEOUT)
        except TimeoutError:
            await self._kill()
            self._set_state("failed")
            raise EngineError("start", "the engine did not become ready", self.log_tail) from None
        except EngineError as e:
            if e.kind != "cancelled":
                self._set_state("failed")
            raise
        if not isinstance(ev, ReadyEvent):
            await self._kill()
            self._set_state("failed")
            if isinstance(ev, ErrorEvent):  # e.g. the native library failed to import
                raise EngineError("start", ev.message, ev.log_tail or self._error_tail())
            raise EngineError("protocol", f"expected 'ready', got {ev.type!r}", self.log_tail)
        self.ready_event = ev
        self._set_state("ready")
        return ev

    async def _read_stdout(self, proc: asyncio.subprocess.Process, q: asyncio.Queue) -> None:
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                try:
                    ev = parse_event(line)
                except ProtocolError as e:
                    # Never expected (the child keeps native output off this fd); keep going.
                    self._tail.append(f"[protocol] {e}")
                    log.warning("engine protocol: %s", e)
                    continue
                self._emit(ev)
                q.put_nowait(ev)
        except asyncio.CancelledError:
            # the loop is going away without shutdown(): never leave the child behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        rc = await proc.wait()
        q.put_nowait(_Exited(rc))

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        fh = None
        if self._log_file:
            with contextlib.suppress(OSError):
                from distill_tui.atomic import private_opener

                fh = open(self._log_file, "a", encoding="utf-8", opener=private_opener)  # noqa: SIM115
        try:
            while True:
                line = await proc.stderr.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                # progress bars use \r; keep the last segment
                text = text.rsplit("\r", 1)[-1]
                if text.strip():
                    self._tail.append(text)
                    if fh:
                        fh.write(text + "\n")
        finally:
            if fh:
                fh.close()

    async def _next(self) -> EngineEvent:
        assert self._queue is not None
        item = await self._queue.get()
        if isinstance(item, _Exited):
            # wait briefly for the stderr task so the tail holds the last words
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*self._tasks[1:]), 1.0)
            self._loaded_key = None
            self._loaded_model = None
            if self._cancelling:
                self._set_state("not_started")
                raise EngineError("cancelled", "generation cancelled")
            self._set_state("failed")
            err = EngineError("crash", _describe_exit(item.returncode), self._error_tail())
            self._emit(ErrorEvent(kind="crash", message=err.message, log_tail=err.log_tail))
            raise err
        return item

    def _error_tail(self) -> list[str]:
        return list(self._tail)[-ERROR_TAIL_LINES:]

    async def _send(self, msg) -> None:
        if not self._alive() or self._proc is None or self._proc.stdin is None:
            raise EngineError("crash", "the engine is not running", self._error_tail())
        try:
            self._proc.stdin.write(dumps(msg).encode("utf-8"))
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            # the exit sentinel will follow; _next() raises the right error
            pass

    async def _kill(self, grace: float = 0.5) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)

    async def _reap(self) -> None:
        """Forget a dead child (and its reader tasks)."""
        if self._proc is not None and self._proc.returncode is None:
            return
        for t in self._tasks:
            if not t.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(t, 1.0)
        self._tasks = []
        self._proc = None
        self._queue = None

    # ---- requests --------------------------------------------------------------------
    async def load(self, req: LoadRequest, model_id: str | None = None) -> LoadedEvent:
        """Load (or keep) a model. Raises EngineBusy / EngineError."""
        if self._busy:
            raise EngineBusy()
        self._busy = True
        try:
            return await self._load(req, model_id)
        finally:
            self._busy = False
            if self._state in ("loading", "busy"):
                self._set_state("ready")

    async def _load(self, req: LoadRequest, model_id: str | None) -> LoadedEvent:
        await self.start()
        self._set_state("loading")
        await self._send(req)
        while True:
            ev = await self._next()
            if isinstance(ev, LoadedEvent):
                self._loaded_key = req.key()
                self._loaded_model = model_id or req.diffusion_model_path
                return ev
            if isinstance(ev, ErrorEvent):
                self._loaded_key = None
                self._loaded_model = None
                self._set_state("ready")
                raise EngineError(ev.kind, ev.message, ev.log_tail or self._error_tail())

    async def generate(self, load: LoadRequest, gen: GenerateRequest) -> GenerationResult:
        """Load if needed, then generate. Raises EngineBusy at once if one is running."""
        if self._busy:
            raise EngineBusy()
        self._busy = True
        t0 = time.monotonic()
        try:
            if (gen.ref_images or gen.init_image) and load.vae_decode_only:
                # edits need the VAE encoder: load with it (the child refuses a decoder-only VAE)
                load = load.model_copy(update={"vae_decode_only": False})
            # the image records the load options it was made with (PNG parameters, history)
            # (every load-side row of recipe.PARAMS)
            from distill_tui.recipe import knob_values

            gen = gen.model_copy(update=knob_values(load))
            if self._leaked >= self._recycle_after and self._alive():
                log.info(
                    "recycling the engine child after ~%d MB of native leaks", self._leaked >> 20
                )
                await self._stop_child()
            if not gen.id:
                self._seq += 1
                gen = gen.model_copy(update={"id": f"g{os.getpid()}-{self._seq}"})
            loaded = await self._load(load, gen.model_id or None)
            self._set_state("busy")
            await self._send(gen)
            images: list[ImageEvent] = []
            while True:
                ev = await self._next()
                if isinstance(ev, ImageEvent):
                    images.append(ev)
                elif isinstance(ev, DoneEvent):
                    timings = ev.timings.model_copy(
                        update={"load": 0.0 if loaded.reused else loaded.seconds}
                    )
                    res = GenerationResult(
                        id=gen.id,
                        seed=ev.seed,
                        images=ev.images or images,
                        timings=timings,
                        loaded=loaded,
                        paths=[i.path for i in (ev.images or images)],
                    )
                    res.wall = round(time.monotonic() - t0, 4)
                    self._leaked += sum(i.width * i.height * 3 for i in res.images)
                    self._record(gen, res)
                    self._set_state("ready")
                    return res
                elif isinstance(ev, ErrorEvent):
                    self._set_state("ready")
                    raise EngineError(ev.kind, ev.message, ev.log_tail or self._error_tail())
        finally:
            self._busy = False
            if self._state in ("loading", "busy"):
                self._set_state("ready" if self._alive() else "not_started")

    async def upscale(self, req: UpscaleRequest) -> UpscaledEvent:
        """Upscale one image in the child (the generation model stays loaded; the upscaler
        context is kept for the next one). Raises EngineBusy at once if one is running;
        ``cancel()`` ends it as it ends a generation. The caller writes the history record
        (``distill_tui.upscale``)."""
        if self._busy:
            raise EngineBusy()
        self._busy = True
        try:
            if self._leaked >= self._recycle_after and self._alive():
                await self._stop_child()
            if not req.id:
                self._seq += 1
                req = req.model_copy(update={"id": f"u{os.getpid()}-{self._seq}"})
            await self.start()
            self._set_state("busy")
            await self._send(req)
            while True:
                ev = await self._next()
                if isinstance(ev, UpscaledEvent):
                    # the wrapper never frees the native result (and its float copy)
                    self._leaked += ev.width * ev.height * 3
                    self._set_state("ready")
                    return ev
                if isinstance(ev, ErrorEvent):
                    self._set_state("ready")
                    raise EngineError(ev.kind, ev.message, ev.log_tail or self._error_tail())
        finally:
            self._busy = False
            if self._state in ("loading", "busy"):
                self._set_state("ready" if self._alive() else "not_started")

    def _record(self, gen: GenerateRequest, res: GenerationResult) -> None:
        if self._history is None or not res.paths:
            return
        from distill_tui.outputs import HistoryRecord

        params = gen.model_dump(exclude={"v", "type", "id", "preview", "preview_interval"})
        rec = HistoryRecord(
            model_id=gen.model_id,
            diffusion_quant=gen.diffusion_quant,
            text_encoder_quant=gen.text_encoder_quant,
            params=params,
            seed=res.seed,
            images=res.paths,
            timings={**res.timings.model_dump(), "wall": res.wall},
            backend=self.ready_event.backend if self.ready_event else "",
        )
        try:
            self._history.add(rec)  # type: ignore[attr-defined]
            res.history_id = rec.id
        except OSError as e:  # pragma: no cover - a full disk must not lose the images
            log.warning("history not written: %s", e)

    async def cancel(self) -> bool:
        """End a running load/generation by ending the child. True if something was running."""
        if not self._alive():
            return False
        was_busy = self._busy
        if was_busy:
            self._cancelling = True
        await self._kill()
        if not was_busy:
            self._loaded_key = None
            self._loaded_model = None
            self._set_state("not_started")
        return was_busy

    async def unload(self) -> None:
        """Free the model (keeps the child). No-op if nothing is loaded."""
        if self._busy:
            raise EngineBusy()
        if not self._alive():
            return
        self._busy = True
        try:
            await self._send(UnloadRequest())
            while True:
                ev = await self._next()
                if isinstance(ev, UnloadedEvent):
                    break
            self._loaded_key = None
            self._loaded_model = None
        finally:
            self._busy = False

    async def _stop_child(self, timeout: float = 3.0) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if self._busy and self._state in ("busy", "loading"):
                self._cancelling = True
                await self._kill()
            else:
                await self._send(ShutdownRequest())
                with contextlib.suppress(Exception):
                    if proc.stdin:
                        proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    await self._kill()
        await self._reap()
        self._loaded_key = None
        self._loaded_model = None
        self._leaked = 0

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Ask the child to exit; kill it if it does not within ``timeout``."""
        await self._stop_child(timeout)
        self._set_state("not_started")
