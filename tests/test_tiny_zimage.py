"""Z-Image through the REAL engine child and the REAL stable-diffusion.cpp (issue 21.5, 21.2).

The set is ``tests.tinymodels.make_zimage_set``: sd.cpp fixes the Z-Image DiT at its full 6B
shape, so the DiT is a sparse 1.5 GB file of TQ2_0 zeros and one 64x64 step costs ~15-35 s on
2 CPU cores (marked slow). The preflight refusals never reach the library and take
milliseconds: they run on the same files.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.engine.client import EngineClient, EngineError
from distill_tui.engine.protocol import GenerateRequest, LoadRequest, PhaseEvent
from distill_tui.outputs import parse_parameters, read_parameters
from tests import tinymodels

#: a generation of the Z-Image set is bounded by this (2 steps measured 30-75 s on 2 busy cores)
GEN_BOUND_S = 420.0


@pytest.fixture(scope="session")
def tiny_zimage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tinymodels.make_zimage_set(tmp_path_factory.mktemp("tiny_zimage"))


def zload(models: dict[str, Path], family: str = "z-image", **kw) -> LoadRequest:
    return LoadRequest(
        diffusion_model_path=str(models["diffusion"]),
        llm_path=str(models["text_encoder"]),
        vae_path=str(models["vae"]),
        n_threads=2,
        family=family,
        **kw,
    )


def zgen(out: Path, **kw) -> GenerateRequest:
    base = dict(
        prompt="a lighthouse at dusk",
        width=64,
        height=64,
        steps=2,
        cfg_scale=1.0,
        seed=7,
        output_dir=str(out),
        model_id="tiny-zimage",
        diffusion_quant="TQ2_0",
        text_encoder_quant="TQ2_0",
    )
    base.update(kw)
    return GenerateRequest(**base)


def test_the_zimage_set_is_sparse_and_quick_to_write(tmp_path):
    t0 = time.monotonic()
    paths = tinymodels.make_zimage_set(tmp_path)
    took = time.monotonic() - t0
    dit = paths["diffusion"]
    assert dit.stat().st_size > 1_500_000_000  # sd.cpp's fixed 6B shape, TQ2_0
    assert dit.stat().st_blocks * 512 < 50_000_000  # ... as holes
    assert took < 10.0, took
    copy = tinymodels.sparse_copy(dit, tmp_path / "copy.gguf")
    assert copy.read_bytes()[:4096] == dit.read_bytes()[:4096]
    assert copy.stat().st_size == dit.stat().st_size
    assert copy.stat().st_blocks * 512 < 50_000_000


async def test_zimage_refusals_name_the_file_before_the_library_loads(
    tiny_zimage, tiny_models, tmp_path
):
    """Each wrong pairing is one line naming the file and what it is; nothing reaches
    sd.cpp (no loading phase), the child survives and then runs a Klein generation."""
    events: list = []
    client = EngineClient(on_event=events.append)
    z, k = tiny_zimage, tiny_models
    cases = [
        # (files, family, kind, words that must be in the line)
        (dict(z, vae=k["vae"]), "z-image", "bad_file", ["vae.safetensors", "FLUX.2 VAE", "32"]),
        (k, "z-image", "bad_file", ["dit.gguf", "FLUX.2 Klein", "not a Z-Image"]),
        (z, "flux2-klein", "bad_file", ["zimage-dit.gguf", "Z-Image", "not a FLUX.2 Klein"]),
        (
            dict(z, text_encoder=k["text_encoder"]),
            "z-image",
            "mismatch",
            ["llm.gguf", "32-wide", "expects 2560", "Qwen3-4B"],
        ),
        (dict(k, vae=z["vae"]), "flux2-klein", "bad_file", ["flux1-vae", "FLUX.1 VAE", "16"]),
        (z, "sdxl", "bad_request", ["sdxl", "z-image", "flux2-klein"]),
    ]
    try:
        for files, family, kind, words in cases:
            events.clear()
            with pytest.raises(EngineError) as ei:
                await asyncio.wait_for(client.load(zload(files, family)), 30)
            e = ei.value
            assert e.kind == kind, (family, e.kind, e.message)
            assert "\n" not in e.message and len(e.message) < 300, e.message
            for w in words:
                assert w in e.message, (w, e.message)
            loading = [ev for ev in events if isinstance(ev, PhaseEvent) and ev.phase == "loading"]
            assert not loading, e.message  # refused before the library saw the files
        pid = client.pid
        assert pid is not None
        res = await asyncio.wait_for(
            client.generate(
                zload(k, "flux2-klein"),
                zgen(tmp_path, model_id="tiny-klein", diffusion_quant="F16"),
            ),
            120,
        )
        assert len(res.images) == 1 and client.pid == pid
    finally:
        await client.shutdown()


def test_family_defaults_to_klein_and_keys_the_loaded_context(tiny_models):
    plain = LoadRequest(
        diffusion_model_path=str(tiny_models["diffusion"]),
        llm_path=str(tiny_models["text_encoder"]),
        vae_path=str(tiny_models["vae"]),
    )
    assert plain.family == "flux2-klein"
    assert plain.model_copy(update={"family": "z-image"}).key() != plain.key()


@pytest.mark.slow
async def test_zimage_loads_and_generates_a_64px_png(tiny_zimage, tmp_path):
    """The whole Z-Image path of sd.cpp for real: version detection, Qwen3 (2560) encoding,
    the Z-Image DiT, the FLUX.1 VAE decode; a 64x64 PNG with its parameters."""
    log = tmp_path / "engine.log"
    client = EngineClient(log_file=log)
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(
            client.generate(zload(tiny_zimage), zgen(tmp_path)), GEN_BOUND_S
        )
        took = time.monotonic() - t0
        assert res.loaded is not None and res.loaded.model_version == "Z-Image"
        [img] = res.images
        with Image.open(img.path) as im:
            assert im.size == (64, 64)
            extrema = im.convert("RGB").getextrema()
            assert any(lo != hi for lo, hi in extrema)  # not one flat colour
        parsed = parse_parameters(read_parameters(img.path) or "")
        assert parsed["Size"] == "64x64" and parsed["Model"] == "tiny-zimage"
    finally:
        await client.shutdown()
    print(f"\nz-image 64x64 2 steps: {took:.1f} s wall; {res.timings}")
    # the engine log names the detected pipeline (sd.cpp's INFO lines reach it)
    assert "Z-Image" in log.read_text("utf-8")
