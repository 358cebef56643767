"""`distill models list|use`, `distill --version`, `distill doctor` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_tui import __version__
from distill_tui.context import CoreContext

ROOT = Path(__file__).resolve().parent.parent


def distill(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env or os.environ.copy(),
        timeout=120,
    )


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_version():
    out = distill("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"distill {__version__}"


def test_list_json_first_run_seeds_only_inside_xdg(isolated_dirs, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = all_files(tmp_path)
    out = distill("models", "list", "--json", cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["version"] == 1
    gen = ["flux2-klein-4b", "flux2-klein-9b", "z-image-turbo", "flux2-klein-base-4b"]
    ups = ["realesrgan-x4plus", "realesrgan-x4plus-anime"]
    assert [m["id"] for m in data["models"]] == gen + ups
    for m in data["models"][:2]:
        assert len(m["components"]["diffusion"]["quants"]) == 5
        assert len(m["components"]["textEncoder"]["quants"]) == 5
        assert m["components"]["vae"]["file"] == "vae/flux2-vae.safetensors"
        assert m["ready"] is False and m["missing"]
    assert data["models"][0]["active"] is True
    new = all_files(tmp_path) - before
    assert all(str(p).startswith(str(tmp_path / "xdg")) for p in new), new
    assert any(p.name == "model-catalog.json" for p in new)  # seeded
    assert out.stderr == ""


def test_list_table_is_readable():
    out = distill("models", "list")
    assert out.returncode == 0
    assert "FLUX.2 Klein 4B (flux2-klein-4b)  [Setup Required]" in out.stdout
    assert "Text Encoder (Qwen3-8B)" in out.stdout
    assert "Q4_K_S" in out.stdout and "~2.6 GB" in out.stdout  # an estimate says so
    assert " 3.1 GB" in out.stdout  # Q5_K_M: exact (3,073,368,640 B)


def test_list_does_not_import_textual_or_engine():
    code = (
        "import sys; from distill_tui.cli import main; "
        "import io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['models', 'list'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'stable_diffusion_cpp')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_use_refuses_a_quant_that_is_not_downloaded(app_paths):
    out = distill("models", "use", "flux2-klein-4b", "--diffusion", "Q4_K_S")
    assert out.returncode != 0
    assert out.stderr.strip() == (
        "distill: flux2-klein-4b Q4_K_S is not downloaded; run: distill models download "
        "flux2-klein-4b --diffusion Q4_K_S"
    )
    assert not app_paths.settings_file.exists()


@pytest.mark.parametrize(
    "args, expect",
    [
        (
            ["flux9", "--diffusion", "Q4_K_S"],
            "unknown model 'flux9'; valid ids: flux2-klein-4b, flux2-klein-9b, z-image-turbo, "
            "flux2-klein-base-4b, realesrgan-x4plus, realesrgan-x4plus-anime",
        ),
        (
            ["flux2-klein-4b", "--text-encoder", "Q2"],
            "unknown text encoder quant 'Q2' for flux2-klein-4b; valid: Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, Q8_0",
        ),
    ],
)
def test_use_unknown_ids_list_the_valid_ones(args, expect):
    out = distill("models", "use", *args)
    assert out.returncode != 0
    assert out.stderr.strip() == f"distill: {expect}"


def test_use_downloaded_quants_selects_and_activates(app_paths):
    ctx = CoreContext.build(app_paths)
    m = ctx.catalog.require("flux2-klein-9b")
    for f in (m.diffusion.get("Q3_K_M"), m.text_encoder.get("Q8_0")):
        p = ctx.inventory.abs_path(f.file)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            fh.truncate(f.size)
        ctx.inventory.record(f.file, f.size, "1" * 64)
    out = distill(
        "models", "use", "flux2-klein-9b", "--diffusion", "Q3_K_M", "--text-encoder", "Q8_0"
    )
    assert out.returncode == 0, out.stderr
    assert "not ready: VAE is not downloaded" in out.stdout
    saved = json.loads(app_paths.settings_file.read_text())
    assert saved["active_model_id"] == "flux2-klein-9b"
    assert saved["model_quant_selections"]["flux2-klein-9b"] == {
        "diffusionQuant": "Q3_K_M",
        "textEncoderQuant": "Q8_0",
    }
    listed = json.loads(distill("models", "list", "--json").stdout)
    nine = listed["models"][1]
    assert nine["active"] and nine["selection"] == {"diffusion": "Q3_K_M", "textEncoder": "Q8_0"}
    assert [q["downloaded"] for q in nine["components"]["textEncoder"]["quants"]] == [False] * 4 + [
        True
    ]


def test_corrupt_settings_and_catalog_one_warning_each(app_paths):
    app_paths.config_dir.mkdir(parents=True, exist_ok=True)
    app_paths.settings_file.write_bytes(b"\x00\x01garbage")
    app_paths.user_catalog_file.write_text("[]")
    out = distill("models", "list")
    assert out.returncode == 0
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out.stderr
    assert "settings.json" in warnings[0] and "moved aside to settings.json.corrupt-" in warnings[0]
    assert "model-catalog.json" in warnings[1] and "moved aside" in warnings[1]
    assert "FLUX.2 Klein 4B" in out.stdout


def test_doctor_never_prints_the_token(monkeypatch):
    secret = "hf_abcdefghijklmnopqrstuvwxyz123456"
    env = os.environ.copy()
    env["HF_TOKEN"] = secret
    out = distill("doctor", env=env)
    assert out.returncode == 0, out.stderr
    assert "HF token" in out.stdout and "yes (from HF_TOKEN)" in out.stdout
    assert secret not in out.stdout + out.stderr
    assert "models dir" in out.stdout and "free disk" in out.stdout


def test_use_without_quants_activates_the_model_as_selected(app_paths):
    """`distill models use MODEL` (no --quant): a downloaded model becomes the active one with
    its selection; one that is not downloaded is one line naming what is missing."""
    out = distill("models", "use", "flux2-klein-4b")
    assert (
        out.returncode != 0
        and "flux2-klein-4b is not downloaded (Diffusion Model Q4_K_S" in out.stderr
    )
    assert "run: distill models download flux2-klein-4b" in out.stderr
    assert not app_paths.settings_file.exists()
    ctx = CoreContext.build(app_paths)
    m = ctx.catalog.require("flux2-klein-4b")
    for f in (m.diffusion.get(m.default_quant("diffusion")), m.text_encoder.get("Q4_K_M"), m.vae):
        p = ctx.inventory.abs_path(f.file)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            fh.truncate(f.size)
        ctx.inventory.record(f.file, f.size, "1" * 64)
    out = distill("models", "use", "flux2-klein-4b")
    assert out.returncode == 0, out.stderr
    assert "(ready)" in out.stdout
    assert json.loads(app_paths.settings_file.read_text())["active_model_id"] == "flux2-klein-4b"
