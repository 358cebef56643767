"""What this machine can run on: the engine build's own devices, NVIDIA cards, CPU and RAM.

No textual import here: ``distill doctor``, ``distill models recommend`` and the TUI share it.

Two independent views, so a CPU-only build on a GPU box is caught:

* **The engine build** (what stable-diffusion.cpp can actually use): ggml's device registry,
  asked through ctypes in a short-lived child (``python -m distill_tui.engine.backend``; the
  native library never loads into the caller). A CPU build lists one ``CPU`` device; a CUDA
  build a ``CUDA`` registry with ``CUDA0``... GPU devices and their total/free memory.
* **NVML** (``nvidia-ml-py``, imported lazily): the NVIDIA cards the driver sees, with total
  and free memory, whatever the engine was built with.

When NVML sees a card and the build has no CUDA device, :attr:`Machine.rebuild` carries the
exact command that rebuilds the engine with CUDA and its prerequisites.

The card the memory model fits against (:attr:`Machine.gpu`): the largest GPU the build can
use, else the largest NVML card (what the set will need once the engine is rebuilt, which the
advice asks for). A machine with no GPU at all has ``gpu = None``: generation then runs on the
CPU from RAM, and the UI shows no fit marks (RAM is the limit; ``distill models recommend``
fits against the RAM instead).

Injection for tests and demos (no GPU needed):

* ``DISTILL_FAKE_DEVICES='[{"name": "NVIDIA RTX 4060", "backend": "cuda", "total": 8e9,
  "free": 7.5e9}]'``: these cards replace what NVML reports (``[]``: no card).
* ``DISTILL_FAKE_BUILD=cpu|cuda|vulkan|metal``: replaces the engine probe. A GPU build
  uses the fake cards of its backend as its devices. Without it the real build is probed.

or the same as parameters of :func:`detect_machine`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

FAKE_DEVICES_ENV = "DISTILL_FAKE_DEVICES"
FAKE_BUILD_ENV = "DISTILL_FAKE_BUILD"

#: the command that rebuilds stable-diffusion-cpp-python with CUDA (sd.cpp's own README)
CUDA_REBUILD_COMMAND = (
    'CMAKE_ARGS="-DSD_CUDA=ON" pip install --force-reinstall --no-cache-dir '
    "stable-diffusion-cpp-python"
)
CUDA_PREREQUISITES = (
    "the CUDA toolkit with nvcc on PATH (check: nvcc --version; or set "
    "CUDACXX=/usr/local/cuda/bin/nvcc)",
    "a C/C++ compiler and CMake (the package compiles from source, several minutes)",
    "run it with the pip of the environment distill is installed in",
)


@dataclass(frozen=True)
class Device:
    """One accelerator. ``backend`` is lower case: cuda, vulkan, metal, rocm, sycl, cpu."""

    name: str
    backend: str
    total: int | None = None
    free: int | None = None
    source: str = "engine"  # engine | nvml | fake

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Machine:
    build_backend: str = "unknown"  # CPU, CUDA, Vulkan, ... as the engine's registry names it
    build_version: str | None = None
    engine_devices: list[Device] = field(default_factory=list)  # GPUs the build can use
    nvml_devices: list[Device] = field(default_factory=list)  # NVIDIA cards the driver sees
    cpu_name: str = ""
    cpu_count: int = 0
    ram_total: int | None = None
    ram_available: int | None = None
    engine_error: str | None = None
    nvml_error: str | None = None
    driver_version: str | None = None
    build_faked: bool = False  # the build came from DISTILL_FAKE_BUILD / fake_build

    @property
    def build_uses_gpu(self) -> bool:
        return bool(self.engine_devices)

    @property
    def gpu(self) -> Device | None:
        """The card sets are fitted against (see the module docstring), or None."""
        pool = self.engine_devices or self.nvml_devices
        sized = [d for d in pool if d.total]
        return max(sized, key=lambda d: d.total or 0) if sized else None

    @property
    def rebuild(self) -> dict[str, Any] | None:
        """Advice when NVML sees an NVIDIA card the build cannot use, else None."""
        if not self.nvml_devices:
            return None
        if any(d.backend == "cuda" for d in self.engine_devices):
            return None
        nvcc = shutil.which("nvcc")
        card = self.nvml_devices[0].name
        return {
            "reason": (
                f"the engine is a {self.build_backend} build: it cannot use the {card} "
                "that the NVIDIA driver reports"
            ),
            "command": CUDA_REBUILD_COMMAND,
            "prerequisites": list(CUDA_PREREQUISITES),
            "nvcc": nvcc,
        }

    def to_json(self) -> dict[str, Any]:
        gpu = self.gpu
        return {
            "build": {
                "backend": self.build_backend,
                "version": self.build_version,
                "uses_gpu": self.build_uses_gpu,
                "error": self.engine_error,
            },
            "engine_devices": [d.to_json() for d in self.engine_devices],
            "nvidia": {
                "devices": [d.to_json() for d in self.nvml_devices],
                "driver_version": self.driver_version,
                "error": self.nvml_error,
            },
            "cpu": {"name": self.cpu_name, "count": self.cpu_count},
            "ram": {"total": self.ram_total, "available": self.ram_available},
            "fit_device": gpu.to_json() if gpu else None,
            "rebuild": self.rebuild,
            "build_faked": self.build_faked,
        }


# ---- CPU / RAM ---------------------------------------------------------------------------
def cpu_info() -> tuple[str, int]:
    name = ""
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh,
    ):
        for line in fh:
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    aff = getattr(os, "sched_getaffinity", None)
    count = len(aff(0)) if aff else (os.cpu_count() or 0)
    return name or (os.uname().machine if hasattr(os, "uname") else ""), count


def ram_info() -> tuple[int | None, int | None]:
    total = avail = None
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/meminfo", encoding="ascii", errors="replace") as fh,
    ):
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                value = int(rest.split()[0]) * 1024
                if key == "MemTotal":
                    total = value
                else:
                    avail = value
    if total is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total, avail


# ---- the engine build ----------------------------------------------------------------------
def probe_engine(timeout: float = 30.0) -> dict[str, Any]:
    """Ask a short-lived child for the build's registry (keeps the native library out)."""
    if importlib.util.find_spec("stable_diffusion_cpp") is None:
        return {"ok": False, "error": "stable_diffusion_cpp is not installed"}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "distill_tui.engine.backend"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "engine probe timed out"}
    except OSError as e:
        return {"ok": False, "error": f"engine probe could not start: {e}"}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (out.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"engine probe failed (rc {out.returncode}): {tail[0]}"}


def engine_gpus(info: dict[str, Any]) -> list[Device]:
    """The non-CPU devices of a probe result (engine/backend.py's JSON)."""
    regs = [r for r in info.get("registries", []) if str(r).upper() != "CPU"]
    backend = (regs[0] if regs else info.get("backend", "")).lower()
    out = []
    for d in info.get("devices", []):
        if d.get("type") == "CPU":
            continue
        name = d.get("description") or d.get("name") or "GPU"
        out.append(
            Device(
                name=str(name),
                backend=backend or "gpu",
                total=d.get("memory_total"),
                free=d.get("memory_free"),
                source="engine",
            )
        )
    return out


# ---- NVML ------------------------------------------------------------------------------------
def nvml_devices() -> tuple[list[Device], str | None, str | None]:
    """(cards, driver version, why none) from NVML; never raises."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return [], None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - no driver / no library: no NVIDIA card to use
        return [], None, f"no NVIDIA driver ({type(e).__name__})"
    cards: list[Device] = []
    driver = None
    try:
        with contextlib.suppress(Exception):
            raw = pynvml.nvmlSystemGetDriverVersion()
            driver = raw.decode() if isinstance(raw, bytes) else str(raw)
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            total = free = None
            with contextlib.suppress(Exception):
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                total, free = int(mem.total), int(mem.free)
            cards.append(Device(name=name, backend="cuda", total=total, free=free, source="nvml"))
    except Exception as e:  # noqa: BLE001
        return cards, driver, f"NVML failed: {type(e).__name__}: {e}"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return cards, driver, None


def parse_fake_devices(text: str) -> list[Device]:
    """``DISTILL_FAKE_DEVICES`` JSON -> devices (a bad value raises ValueError)."""
    raw = json.loads(text)
    if not isinstance(raw, list):
        raise ValueError(f"{FAKE_DEVICES_ENV} must be a JSON list of devices")
    out = []
    for d in raw:
        if not isinstance(d, dict) or "name" not in d:
            raise ValueError(f"{FAKE_DEVICES_ENV}: each device needs at least a name")
        total = d.get("total")
        free = d.get("free", total)
        out.append(
            Device(
                name=str(d["name"]),
                backend=str(d.get("backend", "cuda")).lower(),
                total=int(total) if total is not None else None,
                free=int(free) if free is not None else None,
                source="fake",
            )
        )
    return out


def detect_machine(
    *,
    fake_devices: list[Device] | str | None = None,
    fake_build: str | None = None,
    probe: Callable[[], dict[str, Any]] | None = None,
) -> Machine:
    """Everything above in one value. Parameters win over the environment variables;
    ``probe`` replaces :func:`probe_engine` (the engine/backend.py JSON) where the build is
    not faked."""
    if fake_devices is None:
        fake_devices = os.environ.get(FAKE_DEVICES_ENV)
    if fake_build is None:
        fake_build = os.environ.get(FAKE_BUILD_ENV) or None
    if isinstance(fake_devices, str):
        fake_devices = parse_fake_devices(fake_devices) if fake_devices.strip() else []
    cpu_name, cpu_count = cpu_info()
    ram_total, ram_avail = ram_info()
    m = Machine(
        cpu_name=cpu_name, cpu_count=cpu_count, ram_total=ram_total, ram_available=ram_avail
    )
    # NVIDIA cards
    if fake_devices is not None:
        m.nvml_devices = [d for d in fake_devices if d.backend == "cuda"]
    else:
        m.nvml_devices, m.driver_version, m.nvml_error = nvml_devices()
    # the engine build
    if fake_build:
        m.build_faked = True
        b = fake_build.strip().lower()
        m.build_backend = {"cpu": "CPU", "cuda": "CUDA", "metal": "Metal"}.get(b, b.capitalize())
        if b != "cpu":
            m.engine_devices = [
                Device(d.name, d.backend, d.total, d.free, "fake")
                for d in (fake_devices or [])
                if d.backend == b
            ]
    else:
        info = (probe or probe_engine)()
        if info.get("ok"):
            m.build_backend = str(info.get("backend") or "unknown")
            m.build_version = info.get("version")
            m.engine_devices = engine_gpus(info)
        else:
            m.engine_error = str(info.get("error") or "unknown error")
    return m


def rebuild_notice(machine: Machine) -> str | None:
    """One message for the TUI's status line, or None."""
    advice = machine.rebuild
    if not advice:
        return None
    return (
        f"{advice['reason'][0].upper()}{advice['reason'][1:]}. Rebuild it with CUDA "
        f"(needs the CUDA toolkit/nvcc, then restart distill):\n{advice['command']}"
    )
