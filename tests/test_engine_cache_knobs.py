"""The engine knobs of issue 20.4, for real on the tiny FLUX.2 Klein set: the step cache
(``cache_mode`` easycache / ucache / spectrum + ``cache_threshold``), ``flow_shift``,
``max_vram``, ``diffusion_conv_direct`` / ``vae_conv_direct``. Each reaches the engine (its
log says so, or the pixels), is recorded in the PNG parameters and the history, and a bad
value is refused in one line before the engine loads. What each does on the tiny set:
``bench/engine_knobs.py`` (numbers in the README)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distill_tui.engine.protocol import GenerateRequest, LoadRequest
from distill_tui.outputs import History, parse_parameters, read_parameters
from tests.test_generate_cli import distill

SMALL = {"width": 64, "height": 64, "steps": 6, "seed": 3}


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _load(models: dict[str, Path], **kw) -> LoadRequest:
    return LoadRequest(
        diffusion_model_path=str(models["diffusion"]),
        llm_path=str(models["text_encoder"]),
        vae_path=str(models["vae"]),
        n_threads=2,
        **kw,
    )


def _run(models, tmp_path, variants):
    """Generate each (load options, generate options) with one client; returns, per variant,
    (image path, the engine's log lines of that generation, history record params)."""
    from distill_tui.engine.client import EngineClient

    history = History(tmp_path / "history.jsonl")

    async def go():
        client = EngineClient(history=history)
        out = []
        try:
            for load_kw, gen_kw in variants:
                client._tail.clear()
                gen = GenerateRequest(prompt="a cat", output_dir=str(tmp_path), **SMALL, **gen_kw)
                res = await client.generate(_load(models, **load_kw), gen)
                out.append((res.paths[0], client.log_tail, history.get(res.history_id).params))
        finally:
            await client.shutdown()
        return out

    return asyncio.run(go())


@pytest.mark.slow
def test_step_cache_skips_steps_and_is_recorded(tiny_models, tmp_path):
    (plain, plain_log, _), (cached, log, rec), (strict, strict_log, _), (spec, spec_log, _) = _run(
        tiny_models,
        tmp_path,
        [
            ({}, {}),
            ({}, {"cache_mode": "easycache"}),
            ({}, {"cache_mode": "easycache", "cache_threshold": 0.0}),
            ({}, {"cache_mode": "spectrum"}),
        ],
    )
    assert not any("skipped" in ln for ln in plain_log)
    skipped = [ln for ln in log if "EasyCache skipped" in ln]
    assert skipped, log  # "EasyCache skipped 2/6 steps (1.50x estimated speedup)"
    assert any("EasyCache enabled - threshold: 0.200" in ln for ln in log)  # the default
    assert any("EasyCache enabled - threshold: 0.000" in ln for ln in strict_log)
    assert any("Spectrum skipped" in ln for ln in spec_log), spec_log
    # a skipped step is an approximation: other pixels
    assert np.abs(pixels(cached) - pixels(plain)).mean() > 0
    params = parse_parameters(read_parameters(cached) or "")
    assert params["Step cache"] == "easycache" and "Cache threshold" not in params
    assert "Step cache" not in parse_parameters(read_parameters(plain) or "")
    assert rec["cache_mode"] == "easycache" and rec["cache_threshold"] is None
    strict_params = parse_parameters(read_parameters(strict) or "")
    assert strict_params["Cache threshold"] == "0.0"


@pytest.mark.slow
def test_load_knobs_and_flow_shift_reach_engine_and_are_recorded(tiny_models, tmp_path):
    (plain, _, _), (knobs, log, rec) = _run(
        tiny_models,
        tmp_path,
        [
            ({}, {}),
            (
                {"vae_conv_direct": True, "diffusion_conv_direct": True, "max_vram": 0.5},
                {"flow_shift": 3.0, "cache_mode": "ucache", "cache_threshold": 1.0},
            ),
        ],
    )
    assert any("Using Conv2d direct in the vae model" in ln for ln in log), log
    # FLUX.2 picks its own shift (from size and steps) and ucache is for UNET models: the
    # engine says so, and on CPU max_vram splits nothing - the same pixels
    assert any("UCache requested but not supported" in ln for ln in log)
    assert np.array_equal(pixels(plain), pixels(knobs))
    params = parse_parameters(read_parameters(knobs) or "")
    assert params["Conv direct (VAE)"] == "on" and params["Conv direct (DiT)"] == "on"
    assert params["Max VRAM (GiB)"] == "0.5" and params["Flow shift"] == "3.0"
    assert params["Step cache"] == "ucache" and params["Cache threshold"] == "1.0"
    assert rec["vae_conv_direct"] is True and rec["diffusion_conv_direct"] is True
    assert rec["max_vram"] == 0.5 and rec["flow_shift"] == 3.0
    assert rec["cache_mode"] == "ucache" and rec["cache_threshold"] == 1.0


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"cache_mode": "dbcache"}, "cache mode 'dbcache': one of disabled, easycache, ucache"),
        ({"cache_threshold": 0.3}, "a cache threshold needs cache mode easycache or ucache"),
        (
            {"cache_mode": "spectrum", "cache_threshold": 0.3},
            "a cache threshold needs cache mode easycache or ucache (not spectrum)",
        ),
        ({"cache_mode": "easycache", "cache_threshold": float("inf")}, "between 0 and 10"),
        ({"flow_shift": 0.0}, "flow_shift 0: between 0.1 and 100"),
        ({"flow_shift": float("nan")}, "between 0.1 and 100"),
    ],
)
def test_protocol_refuses_bad_generate_knobs(kw, words):
    with pytest.raises(ValueError, match=None) as e:
        GenerateRequest(prompt="x", **kw)
    assert words in str(e.value)


def test_protocol_refuses_bad_max_vram(tmp_path):
    for bad in (-1.0, float("inf"), 5000.0):
        with pytest.raises(ValueError) as e:
            LoadRequest(diffusion_model_path="a", llm_path="b", vae_path="c", max_vram=bad)
        assert "max_vram" in str(e.value) and "between 0 and 1024" in str(e.value)


# ---- the CLI: one PARAMS row each (flag, bound, PNG label, record, --reuse) ------------------

GEN = ("--steps", "6", "--width", "64", "--height", "64", "--seed", "3")
KNOBS = (
    "--cache-mode",
    "easycache",
    "--cache-threshold",
    "1.0",
    "--flow-shift",
    "3",
    "--max-vram",
    "0.5",
    "--vae-conv-direct",
    "--diffusion-conv-direct",
)


def _knobs(rec_params: dict) -> dict:
    names = (
        "cache_mode",
        "cache_threshold",
        "flow_shift",
        "max_vram",
        "vae_conv_direct",
        "diffusion_conv_direct",
    )
    return {n: rec_params.get(n) for n in names}


@pytest.mark.slow
def test_cli_knob_flags_reach_engine_are_recorded_and_reused(tiny_ready_model, tmp_path):
    ctx = tiny_ready_model
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    p = distill("generate", "a lovely cat", *GEN, *KNOBS, "-o", str(first), "--json")
    assert p.returncode == 0, p.stderr
    import json

    knobs = json.loads(p.stdout)["knobs"]
    assert knobs["cacheMode"] == "easycache" and knobs["cacheThreshold"] == 1.0
    assert knobs["maxVram"] == 0.5 and knobs["vaeConvDirect"] is True
    log = (ctx.paths.log_dir / "engine.log").read_text("utf-8")
    # the threshold 1.0 reached the engine as typed (the wrapper reads 1.0 as "default 0.2")
    assert "EasyCache enabled - threshold: 1.000" in log and "EasyCache skipped" in log
    assert "Using Conv2d direct in the vae model" in log
    params = parse_parameters(read_parameters(first) or "")
    assert params["Step cache"] == "easycache" and params["Cache threshold"] == "1.0"
    assert params["Flow shift"] == "3.0" and params["Max VRAM (GiB)"] == "0.5"
    assert params["Conv direct (VAE)"] == "on" and params["Conv direct (DiT)"] == "on"
    records = {r.images[0]: r for r in History(ctx.paths.history_file).records()}
    made = _knobs(records[str(first)].params)
    assert made == {
        "cache_mode": "easycache",
        "cache_threshold": 1.0,
        "flow_shift": 3.0,
        "max_vram": 0.5,
        "vae_conv_direct": True,
        "diffusion_conv_direct": True,
    }
    p = distill("generate", "--reuse", "last", "-o", str(again))
    assert p.returncode == 0, p.stderr
    records = {r.images[0]: r for r in History(ctx.paths.history_file).records()}
    assert _knobs(records[str(again)].params) == made
    assert np.array_equal(pixels(first), pixels(again))  # the same picture, cache and all
    assert log.count("EasyCache skipped") < (ctx.paths.log_dir / "engine.log").read_text(
        "utf-8"
    ).count("EasyCache skipped")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("--cache-threshold", "0.3"),
            "--cache-threshold 0.3: needs --cache-mode easycache or ucache (not disabled)",
        ),
        (("--cache-mode", "spectrum", "--cache-threshold", "0.3"), "(not spectrum)"),
        (
            ("--cache-mode", "easycache", "--cache-threshold", "inf"),
            "--cache-threshold inf: between 0 and 10",
        ),
        (("--max-vram", "-1"), "--max-vram -1: between 0 and 1024"),
        (("--flow-shift", "0"), "--flow-shift 0: between 0.1 and 100"),
        (("--flow-shift", "nan"), "--flow-shift nan: between 0.1 and 100"),
    ],
)
def test_cli_refuses_bad_knob_values_before_the_engine(tiny_ready_model, tmp_path, args, words):
    ctx = tiny_ready_model
    p = distill("generate", "a cat", *GEN, *args, "-o", str(tmp_path / "x.png"))
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not (ctx.paths.log_dir / "engine.log").exists()  # the engine never started


def test_cli_refuses_a_cache_mode_the_engine_does_not_offer(tiny_ready_model, tmp_path):
    p = distill("generate", "a cat", *GEN, "--cache-mode", "dbcache", "-o", str(tmp_path / "x"))
    assert p.returncode == 2 and "invalid choice: 'dbcache'" in p.stderr
    assert "easycache" in distill("generate", "--help").stdout
