"""``distill doctor``: what a bug report needs, never a secret."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

from distill_tui import __version__
from distill_tui.catalog import UnknownModelError
from distill_tui.context import CoreContext
from distill_tui.hftoken import token_source
from distill_tui.inventory import human_size
from distill_tui.textsafe import visible


def engine_info(timeout: float = 30.0) -> dict:
    """Ask a short-lived child for the backend (keeps the native library out of this process)."""
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
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (out.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"engine probe failed (rc {out.returncode}): {tail[0]}"}


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
        ("HF token", f"yes (from {token_source()})" if token_source() else "no"),
        ("HF_ENDPOINT", os.environ.get("HF_ENDPOINT") or "(default) https://huggingface.co"),
        ("active model", ctx.settings.settings.active_model_id),
        ("model ready", _model_ready(ctx)),
    ]
    info = engine_info()
    if info.get("ok"):
        rows.append(("engine", f"stable-diffusion-cpp-python {info.get('version')}"))
        rows.append(("engine backend", info.get("backend", "?")))
        for d in info.get("devices", []):
            mem = f", {human_size(d['memory_total'])}" if d.get("memory_total") else ""
            rows.append(("  device", f"{d.get('name')} ({d.get('description')}{mem})"))
    else:
        rows.append(("engine", f"unavailable: {info.get('error')}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {visible(v)}")  # paths, ids and probe text come from outside
    return 0
