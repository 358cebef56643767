"""The whole path for real: tiny Klein set downloaded by the REAL downloader from a loopback
fake Hub, selected with ``distill models use``, then ``distill generate`` through the REAL
engine child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from distill_tui.outputs import parse_parameters, read_parameters
from tests.engine_fixtures import TINY_MODEL_ID, TINY_QUANT, write_tiny_catalog

ROOT = Path(__file__).resolve().parent.parent
REPO = "test/tiny-klein"


def distill(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )


def test_download_from_fake_hub_select_and_generate(fake_hub, app_paths, tiny_models, tmp_path):
    entry = write_tiny_catalog(
        app_paths, tiny_models, base_url=fake_hub.resolve_url(REPO, "").rstrip("/")
    )
    for comp, spec in (
        ("diffusion", entry["diffusion"]["quants"][0]),
        ("text_encoder", entry["textEncoder"]["quants"][0]),
        ("vae", entry["vae"]),
    ):
        fake_hub.add_file(REPO, spec["file"], Path(tiny_models[comp]))

    p = distill("generate", "a lovely cat")  # nothing downloaded yet, other model active
    assert p.returncode == 1 and "not ready" in p.stderr

    p = distill(
        "models", "download", TINY_MODEL_ID, "--diffusion", TINY_QUANT, "--text-encoder", TINY_QUANT
    )
    assert p.returncode == 0, p.stderr + p.stdout
    assert fake_hub.bytes_served() >= sum(Path(v).stat().st_size for v in tiny_models.values())
    p = distill(
        "models", "use", TINY_MODEL_ID, "--diffusion", TINY_QUANT, "--text-encoder", TINY_QUANT
    )
    assert p.returncode == 0, p.stderr + p.stdout

    out = tmp_path / "out.png"
    p = distill(
        "generate",
        "a lovely cat",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "-o",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out)
    with Image.open(out) as im:
        assert im.size == (64, 64)
    params = parse_parameters(read_parameters(out) or "")
    assert params["prompt"] == "a lovely cat" and params["Model"] == TINY_MODEL_ID
    assert params["Steps"] == "2" and params["Size"] == "64x64"
