"""The engine child: ``python -m distill_tui.engine.child`` (never imports textual).

Reads :mod:`~distill_tui.engine.protocol` requests on stdin, writes events on a DUPLICATE of
its original stdout. Traps of stable-diffusion-cpp-python 0.4.7 handled here (see
``shared/research/sdcpp-engine.md``):

* The native library ``printf``s progress bars and blank lines to fd 1 and the wrapper
  ``print()``s "System Info": before the library is imported, fd 1 is duplicated for the
  protocol and then pointed at stderr (``sys.stdout`` too), so the protocol stays pure JSON.
* The wrapper's import-time log callback is replaced by ours (kept referenced in a module
  global); it forwards INFO+ lines to stderr, keeps a tail for error reports and derives the
  phases (encoding -> sampling -> decoding) from the library's INFO lines.
* Progress and preview callbacks are registered ONCE for the process and never passed to
  ``generate_image`` (a callback registered by the wrapper dangles after the call and the
  next call without one segfaults). Preview on/off is switched by re-registering the same
  callback with mode ``proj`` or ``none``.
* A failed load returns a NULL context without raising; it is detected
  (``sd._model.model`` falsy), the pointer is set to None so the wrapper does not
  ``free_sd_ctx(NULL)`` (segfault), and the collected ERROR lines are reported.
* A text encoder that does not fit the DiT makes the library abort on the first
  generation: ``preflight.check_load`` refuses it from the GGUF headers before loading.
* ``GGML_NO_BACKTRACE=1`` so an abort never spawns gdb. (``DISTILL_ENGINE_SKIP_PREFLIGHT=1``
  turns the preflight off; only tests use it, to show an abort is still contained.)
* There is no cancel API: the parent ends this process; generation runs on the main
  thread and requests are handled strictly one after another. A watchdog thread exits the
  process when the parent dies (re-parenting), even in the middle of a generation.
* The loaded context is kept across generations and rebuilt only when the load request's
  paths/options differ (``LoadRequest.key()``).
* Threads: ``n_threads <= 0`` means the number of physical cores (capped by the CPU
  affinity), like sd.cpp's own CLI, not the wrapper's ``cpu_count() // 2``.
* Upscales (``upscale``): a standalone upscaler context (the wrapper's ``StableDiffusion``
  with ``upscaler_path`` only) kept beside the generation model, so a Gallery upscale does not
  cost the next generation a reload; it is rebuilt when the file or tile size changes and
  freed by ``unload`` and before a new generation model loads (the model gets the memory).
* Seeds: ``-1`` becomes a random 31-bit seed chosen here (the wrapper would only pick
  0..10000); image *i* of a batch uses seed + i.

:func:`main` only sets up the file descriptors and imports the library; :class:`EngineChild`
holds what the requests and the native callbacks share.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import ctypes
import gc
import io
import math
import os
import random
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from distill_tui.engine import backend, preflight
from distill_tui.engine.protocol import (
    DoneEvent,
    EngineRequest,
    ErrorEvent,
    GenerateRequest,
    ImageEvent,
    LoadedEvent,
    LoadRequest,
    Phase,
    PhaseEvent,
    PreviewEvent,
    ProgressEvent,
    ProtocolError,
    ReadyEvent,
    ShutdownRequest,
    Timings,
    UnloadedEvent,
    UnloadRequest,
    UpscaledEvent,
    UpscaleRequest,
    dumps,
    parse_request,
)
from distill_tui.loras import lora_file_problem

#: The ctypes callback objects, referenced for the life of the process: the C side keeps only
#: their raw pointers, and a callback object that is collected leaves them dangling.
_CALLBACKS: tuple = ()

_LEVELS = {0: "DEBUG", 1: "INFO", 2: "WARN", 3: "ERROR"}
_TAIL_IN_ERRORS = 20  # log lines attached to an error event
#: the library's count of one LoRA's tensors it applied (once per model part, per generation)
_LORA_APPLIED = re.compile(
    r"\((\d+) / (\d+)\) LoRA tensors have been applied, lora_file_path = (.+)$"
)
#: a LoRA file the library could not read (it then generates without it, silently)
_LORA_UNREADABLE = re.compile(r"init lora model loader from file failed: '(.+)'$")
#: the library opened a LoRA file (its count follows, unless no tensor was for this model)
_LORA_LOADING = re.compile(r"loading LoRA from '(.+)'$")


def _setup_fds() -> IO[str]:
    """Protocol on a dup of fd 1; fd 1 (and sys.stdout) -> stderr. Must run before the native
    library is imported: it writes to fd 1 from then on."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    return os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")


#: the main thread's stack the child asks for: stable-diffusion.cpp parses a prompt with a
#: recursive std::regex, ~320 bytes of stack per byte of prompt (an 8 MB stack died at ~26 KB);
#: with 64 MB the longest prompt distill accepts (bounds.MAX_PROMPT_BYTES) has a wide margin
#: even when the shell's ``ulimit -s`` is small (2 MB died at 8 KB)
STACK_BYTES = 64 << 20


def _raise_stack_limit() -> None:
    """Let the main thread's stack grow to :data:`STACK_BYTES` (Linux grows it on demand up
    to the soft limit read at fault time; the hard limit is never exceeded)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        want = STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: keep the limit
        pass


def _errlog(msg: str) -> None:
    sys.stderr.write(f"[engine] {msg}\n")
    sys.stderr.flush()


def _exit_when_orphaned(parent: int) -> None:
    """The parent died (kill -9, dropped SSH session...): stdin EOF would only be seen after
    the running generation, so end now instead of computing for nobody."""
    while True:
        time.sleep(0.25)
        if os.getppid() != parent:
            os._exit(0)


def _physical_threads(sd_cpp: Any) -> int:
    """sd.cpp's CLI uses the physical cores (the wrapper would use cpu_count()//2), capped by
    the CPU affinity a container or ``taskset`` gives this process."""
    try:
        threads = int(sd_cpp.sd_get_num_physical_cores())
    except Exception:  # noqa: BLE001
        threads = 0
    aff = getattr(os, "sched_getaffinity", None)
    usable = len(aff(0)) if aff else (os.cpu_count() or 1)
    return max(1, min(threads or usable, usable))


def _output_target(req: GenerateRequest, i: int) -> tuple[Path, bool]:
    """Where image ``i`` goes, and whether that path is exact (an output file) or a folder."""
    if req.output_file:
        p = Path(req.output_file)
        if req.batch_count > 1:
            p = p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}")
        return p, True
    return Path(req.output_dir or "."), False


def knob_params(req: GenerateRequest) -> dict:
    """The rows of the form's advanced section (``recipe.PARAMS`` placed ``advanced``: the
    engine knobs, flow shift, img2img, LoRAs) of a generate request, spelled as
    ``Recipe.record()`` spells them, for the PNG and the history (``_save`` writes the main
    rows). Only what is set: a row the request does not carry (an older client's) is left
    out, a row with no settings key (the engine's own knobs, img2img, LoRAs) only when it is
    not its default; the strength goes with an init image."""
    from distill_tui.recipe import PARAMS, Recipe

    sent = req.model_dump()
    recipe = Recipe.from_record(sent)
    record = recipe.record()
    out: dict = {}
    for p in PARAMS:
        if p.form == "main" or sent.get(p.name) is None:
            continue
        if p.name == "strength":
            kept = bool(recipe["init_image"])
        else:
            kept = p.setting is not None or recipe[p.name] != p.default
        if kept:
            out[p.name] = record[p.name]
    return out


class EngineChild:
    """One model context, the requests that use it and the native callbacks that report on it.

    The callbacks run inside the library's calls, so what they need (request id, phase,
    image index, preview switch) is kept here as attributes that a request sets before it
    calls the library. Every event goes through :meth:`emit`, under one lock, so that a line
    written from a callback never interleaves with another.
    """

    def __init__(
        self,
        proto: IO[str],
        *,
        sd_cpp: Any,
        model_class: Any,
        preview_modes: Mapping[str, Any],
        save_png: Callable[..., Path],
    ) -> None:
        self._proto = proto
        self._lock = threading.Lock()
        self._sd_cpp = sd_cpp  # the ctypes bindings (stable_diffusion_cpp.stable_diffusion_cpp)
        self._model_class = model_class  # the wrapper's StableDiffusion
        self._preview_modes = preview_modes
        self._save_png = save_png
        self._preview_cb: Any = None
        # read by the native callbacks
        self.phase: Phase = "loading"
        self.req_id = ""
        self.image_index = 0
        self.preview = False
        self.t_encode_done = 0.0
        self.t_decode_start = 0.0
        self.model_version = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.errors: list[str] = []  # ERROR lines since the last load/generate began
        #: per LoRA file of the running generation: [tensors applied, tensors in the file]
        self.lora_counts: dict[str, list[int]] = {}
        self.lora_unreadable: set[str] = set()
        self.lora_loading: set[str] = set()
        # the loaded context
        self._sd: Any = None
        self._loaded_key: tuple | None = None
        self._vae_decode_only = True
        # the upscaler context (see the module docstring)
        self._up: Any = None
        self._up_key: tuple | None = None

    # ---- events and native callbacks -----------------------------------------------------

    def emit(self, ev: BaseModel) -> None:
        data = dumps(ev)
        with self._lock:
            self._proto.write(data)
            self._proto.flush()

    def _log_tail(self) -> list[str]:
        return list(self.tail)[-_TAIL_IN_ERRORS:]

    def on_log(self, level: int, text: bytes | None, _data: Any) -> None:
        """The library's log line: to stderr and the tail; its INFO lines mark the phases."""
        try:
            msg = text.decode("utf-8", "replace").rstrip("\n") if text else ""
            lvl = _LEVELS.get(level, str(level))
            if level >= 1:
                self.tail.append(f"{lvl} {msg}")
                sys.stderr.write(f"{lvl} {msg}\n")
            if level >= 3:
                self.errors.append(msg.split(" - ", 1)[-1].strip())
            body = msg.split(" - ", 1)[-1]
            self._phase_from_log(body)
            if "LoRA" in body or "lora" in body:
                self._lora_from_log(body.strip())
        except Exception:  # noqa: BLE001 - never raise into native code
            pass

    def _phase_from_log(self, body: str) -> None:
        if "get_learned_condition completed" in body:
            self.t_encode_done = time.monotonic()
        elif body.startswith("generating image: "):
            # "generating image: 1/2 - seed 7"
            try:
                self.image_index = int(body.split(":", 1)[1].split("/", 1)[0]) - 1
            except ValueError:
                pass
            if self.phase != "loading":
                self.phase = "sampling"
                self.emit(
                    PhaseEvent(id=self.req_id, phase="sampling", image_index=self.image_index)
                )
        elif body.startswith("decoding ") and "latent" in body:
            self.t_decode_start = time.monotonic()
            self.phase = "decoding"
            self.emit(PhaseEvent(id=self.req_id, phase="decoding", image_index=self.image_index))
        elif body.startswith("Version: "):
            self.model_version = body[len("Version: ") :].strip()

    def _lora_from_log(self, body: str) -> None:
        """The library's own report of what each LoRA did (its ``lora_stat``)."""
        m = _LORA_APPLIED.search(body)
        if m:
            count = self.lora_counts.setdefault(os.path.normpath(m.group(3)), [0, 0])
            count[0] += int(m.group(1))
            count[1] += int(m.group(2))
            return
        m = _LORA_UNREADABLE.search(body)
        if m:
            self.lora_unreadable.add(os.path.normpath(m.group(1)))
            return
        m = _LORA_LOADING.search(body)
        if m:
            self.lora_loading.add(os.path.normpath(m.group(1)))

    def on_progress(self, step: int, steps: int, seconds: float, _data: Any) -> None:
        try:
            self.emit(
                ProgressEvent(
                    id=self.req_id,
                    phase=self.phase,
                    step=step,
                    steps=steps,
                    seconds_per_step=round(float(seconds), 5),
                    image_index=self.image_index,
                )
            )
        except Exception:  # noqa: BLE001 - never raise into native code
            pass

    def on_preview(self, step: int, count: int, frames: Any, _noisy: bool, _data: Any) -> None:
        """A ``proj`` preview frame, as a small PNG (only while the request asked for them)."""
        if not self.preview or count < 1 or not frames:
            return
        try:
            from PIL import Image

            f = frames[0]
            w, h, c = int(f.width), int(f.height), int(f.channel)
            raw = ctypes.string_at(f.data, w * h * c)
            mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(c, "RGB")
            im = Image.frombytes(mode, (w, h), raw)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            self.emit(
                PreviewEvent(
                    id=self.req_id,
                    step=step,
                    width=w,
                    height=h,
                    png_b64=base64.b64encode(buf.getvalue()).decode("ascii"),
                    image_index=self.image_index,
                )
            )
        except Exception as e:  # noqa: BLE001
            _errlog(f"preview failed: {e}")

    def _register_callbacks(self) -> None:
        """Once per process (see the module docstring: a per-call callback dangles)."""
        global _CALLBACKS
        sd_cpp = self._sd_cpp
        log_cb = sd_cpp.sd_log_callback(self.on_log)
        progress_cb = sd_cpp.sd_progress_callback(self.on_progress)
        self._preview_cb = sd_cpp.sd_preview_callback(self.on_preview)
        _CALLBACKS = (log_cb, progress_cb, self._preview_cb)
        sd_cpp.sd_set_log_callback(log_cb, ctypes.c_void_p(0))
        sd_cpp.sd_set_progress_callback(progress_cb, ctypes.c_void_p(0))
        self._set_preview(False)

    def _set_preview(self, on: bool, interval: int = 1) -> None:
        mode = self._preview_modes["proj"] if on else self._preview_modes["none"]
        self._sd_cpp.sd_set_preview_callback(
            self._preview_cb, int(mode), int(interval), True, False, ctypes.c_void_p(0)
        )

    def _announce(self) -> None:
        """The unprompted ``ready`` event: library version, backend and devices."""
        try:
            info = backend.probe(self._sd_cpp._lib)
        except Exception as e:  # noqa: BLE001
            info = {"backend": "unknown", "devices": []}
            _errlog(f"backend probe failed: {e}")
        try:
            sysinfo = " ".join(self._sd_cpp.sd_get_system_info().decode("utf-8", "replace").split())
        except Exception:  # noqa: BLE001
            sysinfo = ""
        self.emit(
            ReadyEvent(
                version=backend.library_version(),
                backend=info["backend"],
                devices=info["devices"],
                system_info=sysinfo,
                pid=os.getpid(),
            )
        )

    # ---- the request loop ------------------------------------------------------------------

    def run(self, stdin: IO[bytes]) -> int:
        """Serve requests one after another until ``shutdown`` or EOF; 0 when done."""
        self._register_callbacks()
        self._announce()
        threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
        while True:
            line = stdin.readline()
            if not line:
                break  # parent went away: exit quietly
            if not line.strip():
                continue
            try:
                req = parse_request(line)
            except ProtocolError as e:
                self.emit(ErrorEvent(kind="bad_request", message=str(e)))
                continue
            try:
                if not self.dispatch(req):
                    break
            except Exception as e:  # noqa: BLE001 - report and keep serving
                traceback.print_exc()
                self.emit(
                    ErrorEvent(
                        id=getattr(req, "id", ""),
                        kind="generate",
                        message=f"{type(e).__name__}: {e}",
                        log_tail=self._log_tail(),
                    )
                )
        self.free_model()
        self.free_upscaler()
        self._proto.flush()
        return 0

    def dispatch(self, req: EngineRequest) -> bool:
        """Handle one request; False for ``shutdown``."""
        if isinstance(req, LoadRequest):
            self.handle_load(req)
        elif isinstance(req, GenerateRequest):
            self.handle_generate(req)
        elif isinstance(req, UpscaleRequest):
            self.handle_upscale(req)
        elif isinstance(req, UnloadRequest):
            self.handle_unload()
        elif isinstance(req, ShutdownRequest):
            return False
        return True

    # ---- load / unload ---------------------------------------------------------------------

    def free_model(self) -> None:
        """Close the context, if any, and collect at once: its memory is back before the next
        load allocates."""
        if self._sd is not None:
            try:
                self._sd._model.close()
            except Exception as e:  # noqa: BLE001
                _errlog(f"free failed: {e}")
            self._sd = None
            gc.collect()
        self._loaded_key = None

    def free_upscaler(self) -> None:
        """Close the upscaler context, if any (its memory back at once)."""
        if self._up is not None:
            try:
                self._up._upscaler.close()
                self._up._model.close()
            except Exception as e:  # noqa: BLE001
                _errlog(f"free upscaler failed: {e}")
            self._up = None
            gc.collect()
        self._up_key = None

    def handle_unload(self) -> None:
        self.free_model()
        self.free_upscaler()
        self.emit(UnloadedEvent())

    def handle_load(self, req: LoadRequest) -> None:
        """Keep the loaded context if the request equals its key, else free it and load."""
        if self._sd is not None and self._loaded_key == req.key():
            self.emit(LoadedEvent(seconds=0.0, reused=True, model_version=self.model_version))
            return
        self.free_model()
        self.free_upscaler()
        self.req_id = ""
        if os.environ.get("DISTILL_ENGINE_SKIP_PREFLIGHT") != "1":  # tests/debugging only
            try:
                preflight.check_load(
                    req.diffusion_model_path,
                    req.llm_path,
                    req.vae_path,
                    need_vae_encoder=not req.vae_decode_only,
                    family=req.family,
                )
            except preflight.PreflightError as e:
                self.emit(ErrorEvent(kind=e.kind, message=e.message))  # type: ignore[arg-type]
                return
        self.phase = "loading"
        self.model_version = ""
        self.emit(PhaseEvent(phase="loading"))
        self.errors.clear()
        threads = req.n_threads if req.n_threads > 0 else _physical_threads(self._sd_cpp)
        t0 = time.monotonic()
        model = self._open(req, threads)
        if model is None:
            return
        self._sd = model
        self._loaded_key = req.key()
        self._vae_decode_only = req.vae_decode_only
        self.phase = "encoding"
        self.emit(
            LoadedEvent(
                seconds=round(time.monotonic() - t0, 4),
                reused=False,
                model_version=self.model_version,
            )
        )

    def _open(self, req: LoadRequest, threads: int) -> Any:
        """The library's context for ``req``, or None once the failure has been reported."""
        try:
            model = self._model_class(
                diffusion_model_path=req.diffusion_model_path,
                llm_path=req.llm_path,
                vae_path=req.vae_path,
                n_threads=threads,
                vae_decode_only=req.vae_decode_only,
                offload_params_to_cpu=req.offload_to_cpu,
                diffusion_flash_attn=req.flash_attn,
                flash_attn=req.flash_attn,
                keep_clip_on_cpu=req.keep_clip_on_cpu,
                keep_vae_on_cpu=req.keep_vae_on_cpu,
                enable_mmap=req.enable_mmap,
                wtype=req.wtype,
                lora_model_dir=req.lora_model_dir,
                lora_apply_mode=req.lora_apply_mode,
                max_vram=req.max_vram,
                diffusion_conv_direct=req.diffusion_conv_direct,
                vae_conv_direct=req.vae_conv_direct,
                verbose=True,
            )
        except Exception as e:  # noqa: BLE001
            self.emit(
                ErrorEvent(kind="load", message=f"load failed: {e}", log_tail=self._log_tail())
            )
            return None
        if not model._model.model:  # NULL context: the load failed inside the library
            model._model.model = None  # the wrapper would free_sd_ctx(NULL) -> segfault
            reasons = [e for e in self.errors if e] or ["the library could not load the files"]
            shown = "; ".join(dict.fromkeys(reasons[:4]))
            self.emit(
                ErrorEvent(
                    kind="load",
                    message=f"the model could not be loaded: {shown}",
                    log_tail=self._log_tail(),
                )
            )
            return None
        return model

    # ---- upscale ---------------------------------------------------------------------------

    def handle_upscale(self, req: UpscaleRequest) -> None:
        """Load (or keep) the upscaler, upscale the image, write it with ``req.texts``."""
        from distill_tui.upscale import UpscaleError, check_source, upscaler_file_problem

        self.req_id = req.id
        problem = upscaler_file_problem(req.upscaler_path)
        if problem is None and not req.output_file and not req.output_dir:
            problem = "no output_dir/output_file"
        if problem is not None:
            kind = "bad_request" if problem.startswith("no output") else "missing_file"
            self.emit(ErrorEvent(id=req.id, kind=kind, message=problem))  # type: ignore[arg-type]
            return
        if self._source_refused(req, check_source, UpscaleError, scale=1):
            return
        self.errors.clear()
        load_s = 0.0
        if self._up is None or self._up_key != req.key():
            self.free_upscaler()
            self.phase = "loading"
            self.emit(PhaseEvent(id=req.id, phase="loading"))
            t0 = time.monotonic()
            threads = req.n_threads if req.n_threads > 0 else _physical_threads(self._sd_cpp)
            try:
                self._up = self._model_class(
                    upscaler_path=req.upscaler_path,
                    upscale_tile_size=req.tile_size,
                    n_threads=threads,
                    offload_params_to_cpu=req.offload_to_cpu,
                    verbose=True,
                )
            except Exception as e:  # noqa: BLE001 - the wrapper raises ValueError on NULL
                reasons = [x for x in self.errors if x] or [str(e)]
                shown = "; ".join(dict.fromkeys(reasons[:4]))
                self.emit(
                    ErrorEvent(
                        id=req.id,
                        kind="load",
                        message=f"the upscaler could not be loaded: {shown}",
                        log_tail=self._log_tail(),
                    )
                )
                return
            if self.errors:  # the library logged a failed load and kept the context: its
                # upscale would segfault (e.g. a tensor of the wrong shape, RealESRGAN_x2plus)
                shown = "; ".join(dict.fromkeys(x for x in self.errors[:4] if x))
                # freeing that context segfaults too: forget it (the wrapper then skips the
                # free; its few MB stay with this process)
                with contextlib.suppress(Exception):
                    self._up._upscaler.upscaler = None
                self._up = None
                self._up_key = None
                self.emit(
                    ErrorEvent(
                        id=req.id,
                        kind="load",
                        message=f"the upscaler could not be loaded: {shown}",
                        log_tail=self._log_tail(),
                    )
                )
                return
            self._up_key = req.key()
            load_s = round(time.monotonic() - t0, 4)
        # the last guard (the parent checked it; the file may have changed since): the result
        # of the scale this file has must stay in bounds too
        try:
            scale = int(self._sd_cpp.get_upscale_factor(self._up.upscaler))
        except Exception:  # noqa: BLE001 - a wrapper without it: the largest sd.cpp has
            scale = 4
        if self._source_refused(req, check_source, UpscaleError, scale=max(1, scale)):
            return
        self._upscale_and_save(req, load_s)

    def _source_refused(self, req: UpscaleRequest, check: Any, error: Any, scale: int) -> bool:
        try:
            check(req.image, scale=scale, digest=False)
        except error as e:
            self.emit(ErrorEvent(id=req.id, kind="bad_request", message=e.message))
            return True
        return False

    def _upscale_and_save(self, req: UpscaleRequest, load_s: float) -> None:
        from PIL import Image, ImageOps

        try:
            with Image.open(req.image) as im:  # a camera JPEG upright, as viewers show it
                src = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError) as e:
            self.emit(ErrorEvent(id=req.id, kind="bad_file", message=f"{req.image}: {e}"))
            return
        self.phase = "upscaling"
        self.emit(PhaseEvent(id=req.id, phase="upscaling"))
        t1 = time.monotonic()
        try:
            images = self._up.upscale([src])
        except Exception as e:  # noqa: BLE001
            self.emit(
                ErrorEvent(
                    id=req.id,
                    kind="generate",
                    message=f"upscale failed: {e}",
                    log_tail=self._log_tail(),
                )
            )
            return
        t2 = time.monotonic()
        out = images[0] if images else None
        if out is None or out.width < src.width or out.width % src.width:
            msg = "; ".join(self.errors[:3]) or "the library returned no image"
            self.emit(
                ErrorEvent(id=req.id, kind="generate", message=msg, log_tail=self._log_tail())
            )
            return
        self.phase = "saving"
        self.emit(PhaseEvent(id=req.id, phase="saving"))
        try:
            if req.output_file:
                path = self._save_texts(
                    out, req.output_file, req.texts, exact=True, overwrite=req.output_overwrite
                )
            else:
                path = self._save_texts(out, req.output_dir or ".", req.texts, seed=req.seed)
        except OSError as e:
            self.emit(ErrorEvent(id=req.id, kind="generate", message=f"cannot save the image: {e}"))
            return
        self.phase = "encoding"
        self.emit(
            UpscaledEvent(
                id=req.id,
                path=str(path),
                width=out.width,
                height=out.height,
                scale=out.width // src.width,
                source_width=src.width,
                source_height=src.height,
                load_seconds=load_s,
                upscale_seconds=round(t2 - t1, 4),
                save_seconds=round(time.monotonic() - t2, 4),
            )
        )

    def _save_texts(self, image: Any, target: str, texts: dict[str, str], **kw: Any) -> Path:
        from distill_tui.outputs import save_texts_png

        return save_texts_png(image, target, texts, **kw)

    # ---- generate --------------------------------------------------------------------------

    def handle_generate(self, req: GenerateRequest) -> None:
        """Generate, save the PNGs and report each image, then ``done`` with the timings."""
        if self._refuse(req):
            return
        # LoRAs reach the library as prompt tags (its API); the recorded prompt stays as typed
        prompt = req.prompt + "".join(f"<lora:{lo.path}:{lo.weight:g}>" for lo in req.loras)
        seed = req.seed if req.seed >= 0 else random.randint(0, 2**31 - 1 - req.batch_count)
        self.req_id = req.id
        self.image_index = 0
        self.preview = req.preview
        self.t_encode_done = 0.0
        self.t_decode_start = 0.0
        self._set_preview(req.preview, req.preview_interval)
        self.phase = "encoding"
        self.emit(PhaseEvent(id=req.id, phase="encoding"))
        self.errors.clear()
        self.lora_counts.clear()
        self.lora_unreadable.clear()
        self.lora_loading.clear()
        t0 = time.monotonic()
        try:
            images = self._call_library(req, prompt, seed)
        except ValueError as e:
            self.emit(ErrorEvent(id=req.id, kind="bad_request", message=str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self.emit(
                ErrorEvent(
                    id=req.id,
                    kind="generate",
                    message=f"generation failed: {e}",
                    log_tail=self._log_tail(),
                )
            )
            return
        finally:
            self.preview = False
        t_gen = time.monotonic()
        if not images:
            msg = "; ".join(self.errors[:3]) or "the library returned no image"
            self.emit(
                ErrorEvent(id=req.id, kind="generate", message=msg, log_tail=self._log_tail())
            )
            return
        unapplied = self._unapplied_lora(req)
        if unapplied:  # the image is the one without it: not saved, never recorded as applied
            self.emit(
                ErrorEvent(id=req.id, kind="bad_file", message=unapplied, log_tail=self._log_tail())
            )
            return
        self.phase = "saving"
        self.emit(PhaseEvent(id=req.id, phase="saving"))
        out = self._save(req, images, seed)
        if out is None:
            return
        timings = self._timings(t0, t_gen, time.monotonic())
        self.phase = "encoding"
        self.emit(DoneEvent(id=req.id, seed=seed, timings=timings, images=out))

    def _unapplied_lora(self, req: GenerateRequest) -> str | None:
        """Why a LoRA of ``req`` did nothing, by the library's count of the tensors it applied
        (it generates without a LoRA it cannot use and says so only in its log), or None."""
        for lo in req.loras:
            key = os.path.normpath(lo.path)
            applied, total = self.lora_counts.get(key, [0, 0])
            if applied > 0 or key not in self.lora_loading | self.lora_counts.keys():
                continue  # applied, or a library that does not report LoRAs: no judgement
            if key in self.lora_unreadable:
                return f"LoRA {lo.name!r}: the engine could not read {lo.path}; nothing was saved"
            of = f"0 of {total} LoRA tensors applied" if total else "none of its tensors applied"
            return (
                f"LoRA {lo.name!r} matched no tensor of this model ({of}: made for another "
                "model?); nothing was saved"
            )
        return None

    def _call_library(self, req: GenerateRequest, prompt: str, seed: int) -> list:
        """The wrapper's ``generate_image`` for ``req`` (it raises ValueError for a parameter
        value it does not know, e.g. a sampler name)."""
        extra: dict[str, Any] = (
            {"init_image": req.init_image, "strength": req.strength} if req.init_image else {}
        )
        if req.cache_mode != "disabled":
            extra["cache_mode"] = req.cache_mode
            if req.cache_threshold is not None:  # else the wrapper's default for the mode
                t = req.cache_threshold
                if t == 1.0:  # the wrapper reads exactly 1.0 as "easycache's default, 0.2";
                    t = math.nextafter(1.0, 2.0)  # the C float rounds this back to 1.0
                extra["cache_reuse_threshold"] = t
        if req.flow_shift is not None:  # else inf: the engine picks it (auto)
            extra["flow_shift"] = req.flow_shift
        return self._sd.generate_image(
            prompt=prompt,
            negative_prompt=req.negative_prompt,
            width=req.width,
            height=req.height,
            sample_steps=req.steps,
            cfg_scale=req.cfg_scale,
            sample_method=req.sampler or "default",
            scheduler=req.scheduler or "default",
            seed=seed,
            batch_count=req.batch_count,
            ref_images=list(req.ref_images) or None,
            vae_tiling=req.vae_tiling,
            **extra,
        )

    def _refuse(self, req: GenerateRequest) -> bool:
        """Report why ``req`` cannot run (no model, no output, a missing file, an edit on a
        decode-only VAE) before the library sees it: True when refused."""
        if self._sd is None:
            self.emit(ErrorEvent(id=req.id, kind="not_loaded", message="no model is loaded"))
            return True
        if not req.output_file and not req.output_dir:
            self.emit(
                ErrorEvent(id=req.id, kind="bad_request", message="no output_dir/output_file")
            )
            return True
        for r in req.ref_images:
            if not os.path.isfile(r):
                msg = f"reference image not found: {r}"
                self.emit(ErrorEvent(id=req.id, kind="missing_file", message=msg))
                return True
        for what, path in [("init image", req.init_image or "")] + [
            (f"LoRA {lo.name}", lo.path) for lo in req.loras
        ]:
            if path and not os.path.isfile(path):
                msg = f"{what} not found: {path}"
                self.emit(ErrorEvent(id=req.id, kind="missing_file", message=msg))
                return True
        for lo in req.loras:  # the last guard: a file that is no LoRA never reaches the library
            why = lora_file_problem(Path(lo.path), lo.name)
            if why is not None:
                self.emit(ErrorEvent(id=req.id, kind="bad_file", message=why))
                return True
        if (req.ref_images or req.init_image) and self._vae_decode_only:
            msg = "reference and init images need the model loaded with vae_decode_only=False"
            self.emit(ErrorEvent(id=req.id, kind="bad_request", message=msg))
            return True
        return False

    def _save(self, req: GenerateRequest, images: list, seed: int) -> list[ImageEvent] | None:
        """Write each image with its ``parameters`` chunk and report it; None once a failed
        write has been reported."""
        out: list[ImageEvent] = []
        try:
            for i, img in enumerate(images):
                w, h = img.size
                params = {
                    "prompt": req.prompt,
                    "negative_prompt": req.negative_prompt,
                    "steps": req.steps,
                    "sampler": req.sampler,
                    "scheduler": req.scheduler,
                    "cfg_scale": req.cfg_scale,
                    "seed": seed + i,
                    "width": w,
                    "height": h,
                    "model_id": req.model_id,
                    "diffusion_quant": req.diffusion_quant,
                    "text_encoder_quant": req.text_encoder_quant,
                    "model_hash": req.model_hash or None,
                    "batch_count": req.batch_count,
                    "ref_images": list(req.ref_images),
                    **knob_params(req),
                }
                target, exact = _output_target(req, i)
                saved = self._save_png(
                    img, target, params, index=i, exact=exact, overwrite=req.output_overwrite
                )
                ev = ImageEvent(
                    id=req.id, path=str(saved), seed=seed + i, width=w, height=h, index=i
                )
                out.append(ev)
                self.emit(ev)
        except OSError as e:
            self.emit(ErrorEvent(id=req.id, kind="generate", message=f"cannot save the image: {e}"))
            return None
        return out

    def _timings(self, t0: float, t_gen: float, t_end: float) -> Timings:
        """Split the request at the log lines that marked the end of encoding and the start of
        decoding (either missing: that phase counts as empty)."""
        enc_end = self.t_encode_done or t0
        dec_start = self.t_decode_start or t_gen
        return Timings(
            encode=round(enc_end - t0, 4),
            sample=round(max(0.0, dec_start - enc_end), 4),
            decode=round(max(0.0, t_gen - dec_start), 4),
            save=round(t_end - t_gen, 4),
            total=round(t_end - t0, 4),
        )


def main() -> int:
    """The library writes to fd 1 from its import on, so it is imported only once
    :func:`_setup_fds` has moved fd 1; an import that fails is an error event the client
    reports, not a traceback."""
    proto = _setup_fds()
    _raise_stack_limit()
    try:
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp
        from stable_diffusion_cpp import StableDiffusion
        from stable_diffusion_cpp.stable_diffusion import PREVIEW_MAP

        from distill_tui.outputs import save_png
    except Exception as e:  # noqa: BLE001
        proto.write(
            dumps(ErrorEvent(kind="load", message=f"cannot import stable_diffusion_cpp: {e}"))
        )
        proto.flush()
        return 2
    child = EngineChild(
        proto,
        sd_cpp=sd_cpp,
        model_class=StableDiffusion,
        preview_modes=PREVIEW_MAP,
        save_png=save_png,
    )
    return child.run(sys.stdin.buffer)


if __name__ == "__main__":
    raise SystemExit(main())
