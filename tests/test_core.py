"""Inventory, resolver, the UI-free core contract and packaging of bundled data."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from distill_tui.catalog import UnknownModelError, UnknownQuantError
from distill_tui.context import CoreContext
from distill_tui.inventory import Inventory, human_size
from distill_tui.resolver import ModelNotReadyError

ROOT = Path(__file__).resolve().parent.parent

CORE_MODULES = [
    "distill_tui.atomic",
    "distill_tui.catalog",
    "distill_tui.settings",
    "distill_tui.paths",
    "distill_tui.resolver",
    "distill_tui.inventory",
    "distill_tui.redact",
    "distill_tui.hftoken",
    "distill_tui.context",
    "distill_tui.cli",
    "distill_tui.cli.models",
    "distill_tui.cli.downloads",
    "distill_tui.cli.generate",
    "distill_tui.cli.doctor",
    "distill_tui.downloads",
    "distill_tui.downloads.service",
    "distill_tui.downloads.fetch",
    "distill_tui.downloads.hub",
    "distill_tui.downloads.sidecar",
    "distill_tui.downloads.lock",
    "distill_tui.engine.protocol",
    "distill_tui.engine.child",
    "distill_tui.engine.client",
    "distill_tui.engine.preflight",
    "distill_tui.engine.backend",
    "distill_tui.outputs",
    "distill_tui.generation",
]


def test_core_modules_never_import_textual():
    code = (
        "import importlib, sys\n"
        f"mods = {CORE_MODULES!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k == 'textual' or k.startswith('textual.'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, f"core imported textual: {out.stdout}{out.stderr}"


def _fake_install(ctx: CoreContext, rel: str, size: int) -> None:
    p = ctx.inventory.abs_path(rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:
        fh.truncate(size)  # sparse: sizes only matter here
    ctx.inventory.record(rel, size, "0" * 64, "https://huggingface.co/x/y/resolve/main/z?sig=1")


@pytest.fixture
def ctx(app_paths):
    return CoreContext.build(app_paths)


def test_resolver_readiness_and_paths(ctx):
    m = ctx.catalog.require("flux2-klein-4b")
    res = ctx.resolver
    assert not res.is_model_ready(m.id)
    assert res.missing(m.id) == [
        "no Diffusion Model quant selected",
        "no Text Encoder (Qwen3-4B) quant selected",
        "VAE is not downloaded (vae/flux2-vae.safetensors)",
    ]
    q4 = m.diffusion.get("Q4_K_S")
    q3 = m.text_encoder.get("Q3_K_M")
    for f in (q4, q3, m.vae):
        _fake_install(ctx, f.file, f.size)
    assert res.is_file_downloaded(m.id, "diffusion", "Q4_K_S")
    assert not res.is_file_downloaded(m.id, "diffusion", "Q8_0")
    ctx.settings.set_quant(m.id, "diffusion", "Q4_K_S")
    assert res.missing(m.id) == ["no Text Encoder (Qwen3-4B) quant selected"]
    with pytest.raises(ModelNotReadyError, match="Text Encoder"):
        res.active_paths(m.id)
    ctx.settings.set_quant(m.id, "textEncoder", "Q3_K_M")
    assert res.is_model_ready(m.id)
    paths = res.active_paths()
    assert paths.diffusion == (ctx.inventory.models_dir / q4.file).resolve()
    assert paths.text_encoder.name == "Qwen3-4B-Q3_K_M.gguf"
    assert paths.vae.is_absolute() and paths.vae.name == "flux2-vae.safetensors"
    # the file vanished outside the app: no longer ready
    ctx.inventory.abs_path(q3.file).unlink()
    assert res.missing(m.id) == [
        "Text Encoder (Qwen3-4B) Q3_K_M is not downloaded (text_encoders/Qwen3-4B-Q3_K_M.gguf)"
    ]


def test_resolver_errors_name_the_unknown(ctx):
    with pytest.raises(UnknownModelError) as ei:
        ctx.resolver.file_for("flux3", "diffusion", "Q4_K_S")
    assert "flux3" in str(ei.value) and "flux2-klein-4b, flux2-klein-9b" in str(ei.value)
    with pytest.raises(UnknownQuantError) as ei2:
        ctx.resolver.file_for("flux2-klein-4b", "textEncoder", "Q2_K")
    assert "'Q2_K'" in str(ei2.value) and "Q3_K_M" in str(ei2.value)


def test_inventory_records_usage_and_redacts(ctx):
    m = ctx.catalog.require("flux2-klein-9b")
    _fake_install(ctx, m.vae.file, m.vae.size)
    _fake_install(ctx, m.diffusion.get("Q3_K_M").file, m.diffusion.get("Q3_K_M").size)
    inv = Inventory(ctx.inventory.models_dir).load()  # another process' view
    assert inv.model_usage(m) == m.vae.size + m.diffusion.get("Q3_K_M").size
    assert inv.total_usage() == inv.model_usage(m)
    assert inv.free_bytes() > 0
    raw = json.loads(inv.path.read_text())
    rec = raw["files"]["vae/flux2-vae.safetensors"]
    assert rec["source_url"] == "https://huggingface.co/x/y/resolve/main/z?<redacted>"
    assert rec["sha256"] == "0" * 64 and rec["downloaded_at"] and rec["verified_at"]
    inv.forget("vae/flux2-vae.safetensors")
    ctx.inventory.refresh()
    assert ctx.inventory.get("vae/flux2-vae.safetensors") is None


def test_inventory_size_mismatch_is_not_present(ctx):
    _fake_install(ctx, "vae/flux2-vae.safetensors", 1000)
    with open(ctx.inventory.abs_path("vae/flux2-vae.safetensors"), "ab") as fh:
        fh.write(b"x")
    assert not ctx.inventory.is_present("vae/flux2-vae.safetensors")


def test_corrupt_inventory_is_moved_aside(ctx):
    ctx.inventory.models_dir.mkdir(parents=True, exist_ok=True)
    ctx.inventory.path.write_text("{oops")
    inv = Inventory(ctx.inventory.models_dir).load()
    assert inv.records() == {}
    assert inv.warnings and "moved aside" in inv.warnings[0]
    assert list(ctx.inventory.models_dir.glob("installed.json.corrupt-*"))


def test_human_size():
    assert human_size(2_600_000_000) == "2.6 GB"
    assert human_size(999) == "999 B"
    assert human_size(336_213_556) == "336.2 MB"


def test_wheel_carries_catalog_and_styles(tmp_path):
    """`pip install .` from elsewhere must find catalog/ and styles/ inside the package."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("distill_tui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "distill_tui/_data/catalog/model-catalog.json" in names
    assert "distill_tui/_data/styles/app.tcss" in names
    assert any(n.endswith("entry_points.txt") for n in names)
