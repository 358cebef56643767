"""Our PNG, JPEG and WebP outputs read by the tools people use to read A1111 parameters
(issue 23.1): sd-parsers and sd-prompt-reader's ImageDataReader (the library behind its CLI
and GUI), plus piexif as A1111's own reader uses it. The images come from `distill generate`
with the real engine on the tiny model, with a negative prompt and a LoRA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_engine_knobs import write_tiny_lora

ROOT = Path(__file__).resolve().parent.parent

piexif = pytest.importorskip("piexif")
piexif_helper = pytest.importorskip("piexif.helper")
sd_parsers = pytest.importorskip("sd_parsers")
image_data_reader = pytest.importorskip("sd_prompt_reader.image_data_reader")


def _generate(tmp_path: Path, ext: str) -> Path:
    lora_dir = tmp_path / "loras"
    if not lora_dir.exists():
        write_tiny_lora(lora_dir / "ink-style.safetensors")
    out = tmp_path / f"fox.{ext}"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "distill_tui",
            "generate",
            "a red fox in snow",
            "--negative",
            "blurry, lowres",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "1234",
            "--sampler",
            "euler",
            "--lora",
            "ink-style:0.7",
            "--lora-dir",
            str(lora_dir),
            "-o",
            str(out),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["paths"] == [str(out)]
    return out


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_a1111_readers_read_our_outputs(tiny_ready_model, tmp_path, ext):
    path = _generate(tmp_path, ext)

    # sd-parsers: generator, prompt, negative, sampler with seed/steps, model, the LoRA text
    info = sd_parsers.ParserManager().parse(str(path))
    assert info is not None, f"sd-parsers found nothing in {ext}"
    assert info.generator.name == "AUTOMATIC1111"
    assert info.full_prompt == "a red fox in snow <lora:ink-style:0.7>"  # as A1111 writes it
    assert info.full_negative_prompt == "blurry, lowres"
    (sampler,) = info.samplers
    assert sampler.name == "euler"
    assert sampler.parameters["seed"] == "1234" and sampler.parameters["steps"] == "2"
    assert {m.name for m in info.models} == {"tiny-klein"}
    assert info.metadata["LoRAs"] == "ink-style (0.7)"
    assert "64x64" in json.dumps(info.metadata, default=str)

    # sd-prompt-reader: what its CLI prints (-r: raw) and its parsed fields
    r = image_data_reader.ImageDataReader(str(path))
    assert r.tool == "A1111 webUI", (ext, r.tool)
    assert r.positive == "a red fox in snow <lora:ink-style:0.7>"
    assert r.negative == "blurry, lowres"
    assert r.parameter["seed"] == "1234" and r.parameter["steps"] == "2"
    assert r.parameter["sampler"] == "euler" and r.parameter["size"] == "64x64"
    assert r.parameter["model"]
    assert "LoRAs: ink-style (0.7)" in r.raw

    # A1111's own JPEG/WebP path: piexif, then UserComment.load (a tuple crashed `.decode`)
    if ext != "png":
        exif = piexif.load(str(path))
        raw = exif["Exif"][piexif.ExifIFD.UserComment]
        assert isinstance(raw, bytes), type(raw)
        text = piexif_helper.UserComment.load(raw)
        assert text.startswith("a red fox in snow <lora:ink-style:0.7>\nNegative prompt: blurry")
