"""``distill doctor``: what a bug report needs, never a secret."""

from __future__ import annotations

import argparse
import json
import os
import sys

from distill_tui import __version__, hftoken
from distill_tui.catalog import UnknownModelError
from distill_tui.context import CoreContext
from distill_tui.formatting import human_size
from distill_tui.hftoken import token_source
from distill_tui.redact import redact_url
from distill_tui.textsafe import visible


def engine_info(timeout: float = 30.0) -> dict:
    """Ask a short-lived child for the backend (keeps the native library out of this process)."""
    from distill_tui.devices import probe_engine

    return probe_engine(timeout)


def _model_ready(ctx: CoreContext) -> str:
    """The "model ready" row; an active model the catalog does not know is a row, not a
    traceback (a hand-edited settings file, a model removed from the user catalog)."""
    try:
        if ctx.resolver.is_model_ready():
            return "yes"
        return "no: " + "; ".join(ctx.resolver.missing())
    except UnknownModelError:
        valid = ", ".join(ctx.catalog.ids) or "(none)"
        return f"no: the active model is not in the catalog (valid ids: {valid})"


def _token_row() -> str:
    src = token_source()
    if not src:
        return "no"
    if hftoken.implicit_token_disabled():
        return f"yes (from {src}), not sent: HF_HUB_DISABLE_IMPLICIT_TOKEN"
    return f"yes (from {src})"


def _endpoint() -> str | None:
    """HF_ENDPOINT as shown: never its userinfo or query (a token may sit there)."""
    value = os.environ.get("HF_ENDPOINT")
    return redact_url(value) if value else None


def _typed_fields(ctx: CoreContext) -> dict:
    """``doctor --json``'s ``fields``: each row's fact typed (bytes, booleans, seconds)."""
    p = ctx.paths
    src = token_source()
    try:
        ready: bool | None = ctx.resolver.is_model_ready()
        missing = [] if ready else list(ctx.resolver.missing())
    except UnknownModelError:
        ready, missing = None, ["the active model is not in the catalog"]
    return {
        "distillVersion": __version__,
        "pythonVersion": sys.version.split()[0],
        "configDir": str(p.config_dir),
        "dataDir": str(p.data_dir),
        "modelsDir": str(ctx.inventory.models_dir),
        "outputsDir": str(ctx.settings.outputs_dir),
        "logFile": str(p.log_file),
        "freeDiskBytes": ctx.inventory.free_bytes(),
        "hfToken": {
            "present": bool(src),
            "source": src or None,
            "sent": bool(src) and not hftoken.implicit_token_disabled(),
        },
        "hfEndpoint": _endpoint(),
        "hfOffline": bool(hftoken.offline()),
        "hfCache": str(hftoken.hub_cache_dir()),
        "hfTimeouts": {"etag": hftoken.etag_timeout(), "download": hftoken.download_timeout()},
        "activeModel": ctx.settings.settings.active_model_id,
        "modelReady": ready,
        "missing": missing,
    }


def run_doctor(args: argparse.Namespace, ctx: CoreContext) -> int:
    p = ctx.paths
    rows = [
        ("distill", __version__),
        ("python", sys.version.split()[0]),
        ("config dir", str(p.config_dir)),
        ("data dir", str(p.data_dir)),
        ("models dir", str(ctx.inventory.models_dir)),
        ("outputs dir", str(ctx.settings.outputs_dir)),
        ("log file", str(p.log_file)),
        ("free disk (models)", human_size(ctx.inventory.free_bytes())),
        ("HF token", _token_row()),
        ("HF_ENDPOINT", _endpoint() or "(default) https://huggingface.co"),
        ("HF offline", "yes (HF_HUB_OFFLINE: downloads refused)" if hftoken.offline() else "no"),
        ("HF cache", str(hftoken.hub_cache_dir())),
        (
            "HF timeouts",
            f"HEAD {hftoken.etag_timeout():g} s (HF_HUB_ETAG_TIMEOUT), download "
            f"{hftoken.download_timeout():g} s (HF_HUB_DOWNLOAD_TIMEOUT)",
        ),
        ("active model", ctx.settings.settings.active_model_id),
        ("model ready", _model_ready(ctx)),
    ]
    rows += _display_rows(ctx)
    from distill_tui.devices import detect_machine

    machine = detect_machine(probe=engine_info)
    if getattr(args, "json", False):
        doc = {
            "version": 1,
            "rows": dict(rows),  # the display text, as printed
            "fields": _typed_fields(ctx),  # the same facts as numbers, booleans and paths
            "machine": machine.to_json(),
        }
        print(json.dumps(doc, indent=2))
        return 0
    rows += machine_rows(machine)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {visible(v)}")  # paths, ids and probe text come from outside
    advice = machine.rebuild
    if advice:
        print()
        print(f"warning: {visible(advice['reason'])}. Rebuild the engine with CUDA:")
        print(f"  {advice['command']}")
        print("  needs: " + "; ".join(advice["prerequisites"]))
        found = advice.get("nvcc")
        print(f"  nvcc: {visible(found) if found else 'not found on PATH'}")
    return 0


def _mem(total: int | None, free: int | None) -> str:
    if not total:
        return "memory unknown"
    return f"{human_size(total)} total" + (f", {human_size(free)} free" if free else "")


def _display_rows(ctx: CoreContext) -> list[tuple[str, str]]:
    """Colour depth and image renderer, each with why (issue 22.8). On a terminal it is asked
    as the TUI asks it (<= 0.3 s); piped, the renderer is left to the TUI's start."""
    from distill_tui import image_probe

    setting = ctx.settings.settings.image_renderer
    if sys.stdout.isatty() and sys.stdin.isatty():
        image_probe.start()
        image_probe.finish(2.0)
        return image_probe.display_rows(setting)
    rows = image_probe.display_rows(setting)
    if setting == "auto":
        rows[-1] = ("image renderer", "auto: asked of the terminal when distill starts in one")
    return rows


def machine_rows(machine) -> list[tuple[str, str]]:
    """The engine build, its devices, NVIDIA cards, CPU and RAM (see distill_tui.devices)."""
    rows: list[tuple[str, str]] = []
    if machine.engine_error:
        rows.append(("engine", f"unavailable: {machine.engine_error}"))
    else:
        version = f"stable-diffusion-cpp-python {machine.build_version or '?'}"
        rows.append(("engine", version + (" (faked)" if machine.build_faked else "")))
    uses = "uses the GPU" if machine.build_uses_gpu else "CPU only"
    rows.append(("engine backend", f"{machine.build_backend} ({uses})"))
    for d in machine.engine_devices:
        rows.append(("  device", f"{d.name} [{d.backend}] {_mem(d.total, d.free)}"))
    if machine.nvml_devices:
        for d in machine.nvml_devices:
            faked = " (faked)" if d.source == "fake" else ""
            rows.append(("NVIDIA card", f"{d.name} {_mem(d.total, d.free)}{faked}"))
        if machine.driver_version:
            rows.append(("NVIDIA driver", machine.driver_version))
    else:
        rows.append(("NVIDIA card", f"none ({machine.nvml_error or 'NVML reports none'})"))
    rows.append(("CPU", f"{machine.cpu_name or '?'} ({machine.cpu_count} usable)"))
    ram = _mem(machine.ram_total, None)
    if machine.ram_available:
        ram += f", {human_size(machine.ram_available)} available"
    rows.append(("RAM", ram))
    gpu = machine.gpu
    if gpu is not None:
        after = "" if machine.build_uses_gpu else " (after the rebuild below)"
        rows.append(("sets fit against", f"{gpu.name}, {human_size(gpu.total or 0)}{after}"))
    else:
        rows.append(("sets fit against", "RAM (no GPU): distill models recommend"))
    return rows
