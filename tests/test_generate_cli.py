"""``distill generate`` end to end: real CLI process, real engine child, tiny ready model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from distill_tui.outputs import History, parse_parameters, read_parameters
from tests.engine_fixtures import TINY_MODEL_ID, install_tiny_model

ROOT = Path(__file__).resolve().parent.parent


def distill(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def test_generate_to_file_with_parameters_and_history(tiny_ready_model, tmp_path):
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
        "--seed",
        "7",
        "-o",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [str(out)]
    with Image.open(out) as im:
        assert im.size == (64, 64)
    params = parse_parameters(read_parameters(out) or "")
    assert params["prompt"] == "a lovely cat"
    assert params["Steps"] == "2" and params["Seed"] == "7" and params["Size"] == "64x64"
    assert params["Model"] == TINY_MODEL_ID
    assert params["Diffusion quant"] == "F16" and params["Text encoder quant"] == "F16"
    # progress went to stderr: phases and steps
    assert "encoding prompt" in p.stderr and "sampling" in p.stderr and "step 2/2" in p.stderr
    [rec] = History(tiny_ready_model.paths.history_file).records()
    assert rec.images == [str(out)] and rec.seed == 7 and rec.model_id == TINY_MODEL_ID
    assert rec.params["steps"] == 2 and rec.timings["total"] > 0


def test_defaults_from_catalog_and_settings_batch_out_dir(tiny_ready_model, tmp_path):
    # settings override the catalog's recommended values; flags override both
    ctx = tiny_ready_model
    gen = ctx.settings.settings.generation.model_copy(update={"steps": 1})
    ctx.settings.update(generation=gen.model_dump())
    out_dir = tmp_path / "imgs"
    p = distill("generate", "a lovely cat", "--batch", "2", "--out-dir", str(out_dir))
    assert p.returncode == 0, p.stderr
    paths = p.stdout.strip().splitlines()
    assert len(paths) == 2 and all(Path(x).parent == out_dir for x in paths)
    for x in paths:
        with Image.open(x) as im:
            assert im.size == (64, 64)  # the tiny catalog entry recommends 64x64
        params = parse_parameters(read_parameters(x) or "")
        assert params["Steps"] == "1"  # from settings.generation
    seeds = [int(parse_parameters(read_parameters(x) or "")["Seed"]) for x in paths]
    assert seeds[1] == seeds[0] + 1
    # default output dir = settings outputs dir; a size that is no multiple of 16 is refused
    # with the form's words (issue 19.12: it used to be rounded up silently by the engine)
    p = distill("generate", "a lovely cat", "--width", "72", "--height", "64")
    assert p.returncode == 1 and "--width 72: a multiple of 16 (try 64 or 80)" in p.stderr
    p = distill("generate", "a lovely cat", "--width", "80", "--height", "64")
    assert p.returncode == 0, p.stderr
    [one] = p.stdout.strip().splitlines()
    assert Path(one).parent == ctx.settings.outputs_dir
    with Image.open(one) as im:
        assert im.size == (80, 64)


def test_not_ready_names_what_is_missing(app_paths):
    p = distill("generate", "a lovely cat")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "flux2-klein-4b is not ready" in lines[0] and "not downloaded" in lines[0]
    assert p.stdout == ""


def test_unknown_model_and_bad_values(tiny_ready_model):
    p = distill("generate", "x", "--model", "nope")
    assert p.returncode == 1 and "nope" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = distill("generate", "x", "--steps", "0")
    assert p.returncode == 1 and "steps" in p.stderr


def test_engine_failure_is_one_line(tiny_ready_model):
    ctx = tiny_ready_model
    paths = ctx.resolver.active_paths()
    size = paths.diffusion.stat().st_size
    paths.diffusion.write_bytes(b"\0" * size)  # same size: the inventory still says present
    p = distill("generate", "a lovely cat")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("distill: engine bad_file:"), p.stderr
    assert p.stdout == ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ctrl_c_ends_the_child_cleanly(app_paths, tiny_models_slow, tmp_path):
    install_tiny_model(app_paths, tiny_models_slow)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill_tui", "generate", "a lovely cat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        seen.append(line)
        if "encoding prompt" in line or time.monotonic() > deadline:
            break
    assert any("encoding prompt" in s for s in seen), seen
    kids = _children(proc.pid)
    assert kids, "the engine child should be running"
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert "interrupted" in err.strip().splitlines()[-1]
    assert out == ""
    assert elapsed < 3.0, elapsed
    for k in kids:
        assert not _alive(k), "the engine child outlived the CLI"
