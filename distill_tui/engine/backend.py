"""Which ggml backend the installed stable-diffusion.cpp was built with, and its devices.

``sd_get_system_info()`` only lists CPU SIMD flags, so this asks ggml's device registry,
whose functions ``libstable-diffusion.so`` exports (ggml is linked statically into it),
through ctypes on the library ``stable_diffusion_cpp`` already loaded. A CPU build lists one
``CPU`` device; a CUDA build registers a ``CUDA`` backend with ``CUDA0``... GPU devices
(device type 1), whose memory is reported for display.

``python -m distill_tui.engine.backend`` prints ONE JSON line on stdout for ``distill doctor``:
``{"ok": true, "version": "0.4.7", "backend": "CPU", "devices": [...]}``. Like the engine child
it points fd 1 at stderr before importing the native library and writes the JSON to a
duplicate of the original stdout, so native ``printf`` output can never corrupt it.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL"}


def _fn(lib: Any, name: str, restype: Any, argtypes: list[Any]) -> Any:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


def _s(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def probe(lib: Any | None = None) -> dict[str, Any]:
    """Backend name, registry names and devices of the loaded library (imports it if needed)."""
    if lib is None:
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp

        lib = sd_cpp._lib
    vp = ctypes.c_void_p
    reg_count = _fn(lib, "ggml_backend_reg_count", ctypes.c_size_t, [])
    reg_get = _fn(lib, "ggml_backend_reg_get", vp, [ctypes.c_size_t])
    reg_name = _fn(lib, "ggml_backend_reg_name", ctypes.c_char_p, [vp])
    dev_count = _fn(lib, "ggml_backend_dev_count", ctypes.c_size_t, [])
    dev_get = _fn(lib, "ggml_backend_dev_get", vp, [ctypes.c_size_t])
    dev_name = _fn(lib, "ggml_backend_dev_name", ctypes.c_char_p, [vp])
    dev_desc = _fn(lib, "ggml_backend_dev_description", ctypes.c_char_p, [vp])
    dev_type = _fn(lib, "ggml_backend_dev_type", ctypes.c_int, [vp])
    try:
        dev_mem = _fn(
            lib,
            "ggml_backend_dev_memory",
            None,
            [vp, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)],
        )
    except AttributeError:  # pragma: no cover - older ggml
        dev_mem = None

    regs = [_s(reg_name(reg_get(i))) for i in range(reg_count())]
    devices = []
    for i in range(dev_count()):
        d = dev_get(i)
        kind = DEVICE_TYPES.get(dev_type(d), str(dev_type(d)))
        info: dict[str, Any] = {
            "name": _s(dev_name(d)),
            "description": _s(dev_desc(d)).strip(),
            "type": kind,
            "memory_total": None,
            "memory_free": None,
        }
        if dev_mem is not None and kind != "CPU":
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            dev_mem(d, ctypes.byref(free), ctypes.byref(total))
            info["memory_total"] = int(total.value) or None
            info["memory_free"] = int(free.value) or None
        devices.append(info)
    backend = next((r for r in regs if r.upper() != "CPU"), "CPU") if regs else "unknown"
    return {"backend": backend, "registries": regs, "devices": devices}


def library_version() -> str:
    try:
        from importlib.metadata import version

        return version("stable-diffusion-cpp-python")
    except Exception:  # pragma: no cover
        import stable_diffusion_cpp

        return str(getattr(stable_diffusion_cpp, "__version__", "unknown"))


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    try:
        info = probe()
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp

        sysinfo = _s(sd_cpp.sd_get_system_info()).split()
        result = {
            "ok": True,
            "version": library_version(),
            **info,
            "system_info": " ".join(sysinfo),
        }
    except Exception as e:  # noqa: BLE001 - report, never traceback into doctor
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
