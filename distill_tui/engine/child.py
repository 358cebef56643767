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
* Seeds: ``-1`` becomes a random 31-bit seed chosen here (the wrapper would only pick
  0..10000); image *i* of a batch uses seed + i.
"""

from __future__ import annotations

import os
import sys


def _setup_fds():
    """Protocol on a dup of fd 1; fd 1 (and sys.stdout) -> stderr. Must run before imports."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    return os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")


def main() -> int:  # noqa: C901 - one loop, kept flat
    proto = _setup_fds()

    import collections
    import ctypes
    import gc
    import threading
    import time

    from distill_tui.engine.protocol import (
        DoneEvent,
        ErrorEvent,
        GenerateRequest,
        ImageEvent,
        LoadedEvent,
        LoadRequest,
        PhaseEvent,
        PreviewEvent,
        ProgressEvent,
        ProtocolError,
        ReadyEvent,
        ShutdownRequest,
        Timings,
        UnloadedEvent,
        UnloadRequest,
        dumps,
        parse_request,
    )

    lock = threading.Lock()

    def emit(ev) -> None:
        data = dumps(ev)
        with lock:
            proto.write(data)
            proto.flush()

    def errlog(msg: str) -> None:
        sys.stderr.write(f"[engine] {msg}\n")
        sys.stderr.flush()

    try:
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp
        from stable_diffusion_cpp import StableDiffusion
        from stable_diffusion_cpp.stable_diffusion import PREVIEW_MAP

        from distill_tui.engine import backend as backend_mod
        from distill_tui.engine import preflight
        from distill_tui.outputs import save_png
    except Exception as e:  # noqa: BLE001
        emit(ErrorEvent(kind="load", message=f"cannot import stable_diffusion_cpp: {e}"))
        return 2

    # ---- shared state read by the native callbacks ---------------------------------------
    class State:
        phase = "loading"
        req_id = ""
        image_index = 0
        preview = False
        t_encode_done = 0.0
        t_decode_start = 0.0
        model_version = ""

    st = State()
    tail: collections.deque[str] = collections.deque(maxlen=60)
    errors: list[str] = []
    levels = {0: "DEBUG", 1: "INFO", 2: "WARN", 3: "ERROR"}

    def on_log(level: int, text: bytes, _data) -> None:
        try:
            msg = text.decode("utf-8", "replace").rstrip("\n") if text else ""
            lvl = levels.get(level, str(level))
            if level >= 1:
                tail.append(f"{lvl} {msg}")
                sys.stderr.write(f"{lvl} {msg}\n")
            if level >= 3:
                errors.append(msg.split(" - ", 1)[-1].strip())
            body = msg.split(" - ", 1)[-1]
            if "get_learned_condition completed" in body:
                st.t_encode_done = time.monotonic()
            elif body.startswith("generating image: "):
                # "generating image: 1/2 - seed 7"
                try:
                    st.image_index = int(body.split(":", 1)[1].split("/", 1)[0]) - 1
                except ValueError:
                    pass
                if st.phase != "loading":
                    st.phase = "sampling"
                    emit(PhaseEvent(id=st.req_id, phase="sampling", image_index=st.image_index))
            elif body.startswith("decoding ") and "latent" in body:
                st.t_decode_start = time.monotonic()
                st.phase = "decoding"
                emit(PhaseEvent(id=st.req_id, phase="decoding", image_index=st.image_index))
            elif body.startswith("Version: "):
                st.model_version = body[len("Version: ") :].strip()
        except Exception:  # noqa: BLE001 - never raise into native code
            pass

    def on_progress(step: int, steps: int, seconds: float, _data) -> None:
        try:
            emit(
                ProgressEvent(
                    id=st.req_id,
                    phase=st.phase,  # type: ignore[arg-type]  # one of PHASES
                    step=step,
                    steps=steps,
                    seconds_per_step=round(float(seconds), 5),
                    image_index=st.image_index,
                )
            )
        except Exception:  # noqa: BLE001
            pass

    def on_preview(step: int, count: int, frames, _noisy: bool, _data) -> None:
        if not st.preview or count < 1 or not frames:
            return
        try:
            import base64
            import io

            from PIL import Image

            f = frames[0]
            w, h, c = int(f.width), int(f.height), int(f.channel)
            raw = ctypes.string_at(f.data, w * h * c)
            mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(c, "RGB")
            im = Image.frombytes(mode, (w, h), raw)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            emit(
                PreviewEvent(
                    id=st.req_id,
                    step=step,
                    width=w,
                    height=h,
                    png_b64=base64.b64encode(buf.getvalue()).decode("ascii"),
                    image_index=st.image_index,
                )
            )
        except Exception as e:  # noqa: BLE001
            errlog(f"preview failed: {e}")

    # Module-lifetime references (the C side keeps only the raw pointers).
    global _CALLBACKS
    log_cb = sd_cpp.sd_log_callback(on_log)
    progress_cb = sd_cpp.sd_progress_callback(on_progress)
    preview_cb = sd_cpp.sd_preview_callback(on_preview)
    _CALLBACKS = (log_cb, progress_cb, preview_cb)
    sd_cpp.sd_set_log_callback(log_cb, ctypes.c_void_p(0))
    sd_cpp.sd_set_progress_callback(progress_cb, ctypes.c_void_p(0))

    def set_preview(on: bool, interval: int = 1) -> None:
        mode = PREVIEW_MAP["proj"] if on else PREVIEW_MAP["none"]
        sd_cpp.sd_set_preview_callback(
            preview_cb, int(mode), int(interval), True, False, ctypes.c_void_p(0)
        )

    set_preview(False)

    try:
        info = backend_mod.probe(sd_cpp._lib)
    except Exception as e:  # noqa: BLE001
        info = {"backend": "unknown", "devices": []}
        errlog(f"backend probe failed: {e}")
    try:
        sysinfo = " ".join(sd_cpp.sd_get_system_info().decode("utf-8", "replace").split())
    except Exception:  # noqa: BLE001
        sysinfo = ""
    emit(
        ReadyEvent(
            version=backend_mod.library_version(),
            backend=info["backend"],
            devices=info["devices"],
            system_info=sysinfo,
            pid=os.getpid(),
        )
    )

    sd = None
    loaded_key: tuple | None = None
    vae_decode_only = True

    def free_model() -> None:
        nonlocal sd, loaded_key
        if sd is not None:
            try:
                sd._model.close()
            except Exception as e:  # noqa: BLE001
                errlog(f"free failed: {e}")
            sd = None
            gc.collect()
        loaded_key = None

    def handle_load(req: LoadRequest) -> None:
        nonlocal sd, loaded_key, vae_decode_only
        if sd is not None and loaded_key == req.key():
            emit(LoadedEvent(seconds=0.0, reused=True, model_version=st.model_version))
            return
        free_model()
        st.req_id = ""
        try:
            if os.environ.get("DISTILL_ENGINE_SKIP_PREFLIGHT") == "1":  # tests/debugging only
                raise _Skip
            preflight.check_load(
                req.diffusion_model_path,
                req.llm_path,
                req.vae_path,
                need_vae_encoder=not req.vae_decode_only,
            )
        except preflight.PreflightError as e:
            emit(ErrorEvent(kind=e.kind, message=e.message))  # type: ignore[arg-type]
            return
        except _Skip:
            pass
        st.phase = "loading"
        st.model_version = ""
        emit(PhaseEvent(phase="loading"))
        errors.clear()
        threads = req.n_threads
        if threads <= 0:  # the wrapper would use cpu_count()//2; sd.cpp's CLI uses physical cores
            try:
                threads = int(sd_cpp.sd_get_num_physical_cores())
            except Exception:  # noqa: BLE001
                threads = 0
            aff = getattr(os, "sched_getaffinity", None)
            usable = len(aff(0)) if aff else (os.cpu_count() or 1)
            threads = max(1, min(threads or usable, usable))
        t0 = time.monotonic()
        try:
            model = StableDiffusion(
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
                verbose=True,
            )
        except Exception as e:  # noqa: BLE001
            emit(ErrorEvent(kind="load", message=f"load failed: {e}", log_tail=list(tail)[-20:]))
            return
        if not model._model.model:  # NULL context: the load failed inside the library
            model._model.model = None  # the wrapper would free_sd_ctx(NULL) -> segfault
            reasons = [e for e in errors if e] or ["the library could not load the files"]
            shown = "; ".join(dict.fromkeys(reasons[:4]))
            emit(
                ErrorEvent(
                    kind="load",
                    message=f"the model could not be loaded: {shown}",
                    log_tail=list(tail)[-20:],
                )
            )
            return
        sd = model
        loaded_key = req.key()
        vae_decode_only = req.vae_decode_only
        st.phase = "encoding"
        emit(
            LoadedEvent(
                seconds=round(time.monotonic() - t0, 4),
                reused=False,
                model_version=st.model_version,
            )
        )

    def output_target(req: GenerateRequest, i: int):
        from pathlib import Path

        if req.output_file:
            p = Path(req.output_file)
            if req.batch_count > 1:
                p = p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}")
            return p, True
        return Path(req.output_dir or "."), False

    def handle_generate(req: GenerateRequest) -> None:
        import random

        if sd is None:
            emit(ErrorEvent(id=req.id, kind="not_loaded", message="no model is loaded"))
            return
        if not req.output_file and not req.output_dir:
            emit(ErrorEvent(id=req.id, kind="bad_request", message="no output_dir/output_file"))
            return
        for r in req.ref_images:
            if not os.path.isfile(r):
                emit(
                    ErrorEvent(
                        id=req.id, kind="missing_file", message=f"reference image not found: {r}"
                    )
                )
                return
        for what, path in [("init image", req.init_image or "")] + [
            (f"LoRA {lo.name}", lo.path) for lo in req.loras
        ]:
            if path and not os.path.isfile(path):
                emit(
                    ErrorEvent(id=req.id, kind="missing_file", message=f"{what} not found: {path}")
                )
                return
        if (req.ref_images or req.init_image) and vae_decode_only:
            emit(
                ErrorEvent(
                    id=req.id,
                    kind="bad_request",
                    message="reference and init images need the model loaded with "
                    "vae_decode_only=False",
                )
            )
            return
        # LoRAs reach the library as prompt tags (its API); the recorded prompt stays as typed
        prompt = req.prompt + "".join(f"<lora:{lo.path}:{lo.weight:g}>" for lo in req.loras)
        seed = req.seed if req.seed >= 0 else random.randint(0, 2**31 - 1 - req.batch_count)
        st.req_id = req.id
        st.image_index = 0
        st.preview = req.preview
        st.t_encode_done = 0.0
        st.t_decode_start = 0.0
        set_preview(req.preview, req.preview_interval)
        st.phase = "encoding"
        emit(PhaseEvent(id=req.id, phase="encoding"))
        errors.clear()
        t0 = time.monotonic()
        try:
            extra = (
                {"init_image": req.init_image, "strength": req.strength} if req.init_image else {}
            )
            images = sd.generate_image(
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
        except ValueError as e:
            emit(ErrorEvent(id=req.id, kind="bad_request", message=str(e)))
            return
        except Exception as e:  # noqa: BLE001
            emit(
                ErrorEvent(
                    id=req.id,
                    kind="generate",
                    message=f"generation failed: {e}",
                    log_tail=list(tail)[-20:],
                )
            )
            return
        finally:
            st.preview = False
        t_gen = time.monotonic()
        if not images:
            msg = "; ".join(errors[:3]) or "the library returned no image"
            emit(ErrorEvent(id=req.id, kind="generate", message=msg, log_tail=list(tail)[-20:]))
            return
        st.phase = "saving"
        emit(PhaseEvent(id=req.id, phase="saving"))
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
                    "ref_images": list(req.ref_images),
                    **knob_params(req),
                }
                target, exact = output_target(req, i)
                saved = save_png(img, target, params, index=i, exact=exact)
                ev = ImageEvent(
                    id=req.id, path=str(saved), seed=seed + i, width=w, height=h, index=i
                )
                out.append(ev)
                emit(ev)
        except OSError as e:
            emit(ErrorEvent(id=req.id, kind="generate", message=f"cannot save the image: {e}"))
            return
        t_end = time.monotonic()
        enc_end = st.t_encode_done or t0
        dec_start = st.t_decode_start or t_gen
        timings = Timings(
            encode=round(enc_end - t0, 4),
            sample=round(max(0.0, dec_start - enc_end), 4),
            decode=round(max(0.0, t_gen - dec_start), 4),
            save=round(t_end - t_gen, 4),
            total=round(t_end - t0, 4),
        )
        st.phase = "encoding"
        emit(DoneEvent(id=req.id, seed=seed, timings=timings, images=out))

    def orphan_watch(parent: int) -> None:
        # The parent died (kill -9, dropped SSH session...): stdin EOF would only be seen
        # after the running generation, so end now instead of computing for nobody.
        while True:
            time.sleep(0.25)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=orphan_watch, args=(os.getppid(),), daemon=True).start()

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break  # parent went away: exit quietly
        if not line.strip():
            continue
        try:
            req = parse_request(line)
        except ProtocolError as e:
            emit(ErrorEvent(kind="bad_request", message=str(e)))
            continue
        try:
            if isinstance(req, LoadRequest):
                handle_load(req)
            elif isinstance(req, GenerateRequest):
                handle_generate(req)
            elif isinstance(req, UnloadRequest):
                free_model()
                emit(UnloadedEvent())
            elif isinstance(req, ShutdownRequest):
                break
        except Exception as e:  # noqa: BLE001 - report and keep serving
            import traceback

            traceback.print_exc()
            emit(
                ErrorEvent(
                    id=getattr(req, "id", ""),
                    kind="generate",
                    message=f"{type(e).__name__}: {e}",
                    log_tail=list(tail)[-20:],
                )
            )
    free_model()
    proto.flush()
    return 0


_CALLBACKS: tuple = ()


def knob_params(req) -> dict:
    """The engine knobs, img2img and LoRAs of a generate request, for the PNG parameters
    (only what is set: an older client's request records what it sent)."""
    out: dict = {"vae_tiling": req.vae_tiling}
    for key in ("flash_attn", "offload_to_cpu", "keep_clip_on_cpu", "keep_vae_on_cpu"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    if req.n_threads is not None:
        out["n_threads"] = req.n_threads
    if req.init_image:
        out["init_image"] = req.init_image
        out["strength"] = req.strength
    if req.loras:
        out["loras"] = [{"name": lo.name, "weight": lo.weight} for lo in req.loras]
    return out


class _Skip(Exception):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
