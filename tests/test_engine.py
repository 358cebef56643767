"""The REAL engine child with the REAL stable-diffusion.cpp on tiny synthetic Klein weights."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.engine.client import EngineBusy, EngineClient, EngineError
from distill_tui.engine.protocol import (
    ErrorEvent,
    GenerateRequest,
    LoadRequest,
    PhaseEvent,
    PreviewEvent,
    ProgressEvent,
    dumps,
    parse_event,
)
from distill_tui.outputs import History, parse_parameters, read_parameters

ROOT = Path(__file__).resolve().parent.parent


def load_req(models: dict[str, Path], **kw) -> LoadRequest:
    return LoadRequest(
        diffusion_model_path=str(models["diffusion"]),
        llm_path=str(models["text_encoder"]),
        vae_path=str(models["vae"]),
        n_threads=2,
        **kw,
    )


def gen_req(out: Path, prompt: str = "a lovely cat", **kw) -> GenerateRequest:
    base = dict(
        prompt=prompt,
        width=64,
        height=64,
        steps=2,
        cfg_scale=1.0,
        seed=1,
        output_dir=str(out),
        model_id="tiny-klein",
        diffusion_quant="F16",
        text_encoder_quant="F16",
    )
    base.update(kw)
    return GenerateRequest(**base)


def pixels(path: str) -> str:
    with Image.open(path) as im:
        return hashlib.sha1(im.convert("RGB").tobytes()).hexdigest()


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.states: list[str] = []

    def __call__(self, ev) -> None:
        self.events.append(ev)

    def phases(self) -> list[str]:
        return [e.phase for e in self.events if isinstance(e, PhaseEvent)]

    def clear(self) -> None:
        self.events.clear()


async def wait_for_phase(rec: Recorder, phase: str, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while phase not in rec.phases():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no {phase!r} phase; got {rec.phases()}")
        await asyncio.sleep(0.01)


async def test_generate_png_parameters_determinism_reuse_batch_preview(tiny_models, tmp_path):
    rec = Recorder()
    history = History(tmp_path / "history.jsonl")
    client = EngineClient(on_event=rec, on_state=rec.states.append, history=history)
    load = load_req(tiny_models)
    try:
        r1 = await client.generate(load, gen_req(tmp_path, preview=True))
        assert client.backend is not None and client.backend.backend == "CPU"
        assert client.backend.version == "0.4.7"
        # phases in order, with a real load
        ph = rec.phases()
        assert ph[:2] == ["loading", "encoding"], ph
        assert ph.index("sampling") < ph.index("decoding") < ph.index("saving")
        assert r1.loaded is not None and not r1.loaded.reused and r1.timings.load > 0
        assert r1.loaded.model_version == "Flux.2 klein"
        steps = [
            (e.step, e.steps)
            for e in rec.events
            if isinstance(e, ProgressEvent) and e.phase == "sampling"
        ]
        assert steps == [(0, 2), (1, 2), (2, 2)]
        previews = [e for e in rec.events if isinstance(e, PreviewEvent)]
        assert [p.step for p in previews] == [1, 2]
        with Image.open(io.BytesIO(base64.b64decode(previews[0].png_b64))) as pim:
            assert pim.size == (8, 8)  # proj preview: W/8 x H/8
        # the PNG: right size, parameters chunk
        [img] = r1.images
        assert (img.width, img.height, img.seed) == (64, 64, 1)
        with Image.open(img.path) as im:
            assert im.size == (64, 64)
        params = read_parameters(img.path)
        assert params is not None
        parsed = parse_parameters(params)
        assert parsed["prompt"] == "a lovely cat"
        assert parsed["Steps"] == "2" and parsed["Seed"] == "1" and parsed["Size"] == "64x64"
        assert parsed["Model"] == "tiny-klein" and parsed["Diffusion quant"] == "F16"
        assert r1.timings.encode > 0 and r1.timings.sample > 0 and r1.timings.decode > 0
        assert r1.wall >= r1.timings.load + r1.timings.total > 0
        # history record
        [hrec] = history.records()
        assert hrec.images == [img.path] and hrec.seed == 1 and hrec.model_id == "tiny-klein"
        assert hrec.params["prompt"] == "a lovely cat" and hrec.timings["sample"] > 0
        assert hrec.timings["wall"] == r1.wall

        # same prompt + seed -> identical pixels; model kept loaded (no loading phase)
        pid = client.pid
        rec.clear()
        r2 = await client.generate(load, gen_req(tmp_path))
        assert "loading" not in rec.phases() and r2.loaded and r2.loaded.reused
        assert client.pid == pid
        assert pixels(r2.images[0].path) == pixels(img.path)
        assert r2.images[0].path != img.path  # never overwrites
        # different prompt / different seed -> different pixels
        r3 = await client.generate(load, gen_req(tmp_path, prompt="a dog on the moon"))
        r4 = await client.generate(load, gen_req(tmp_path, seed=2))
        assert pixels(r3.images[0].path) != pixels(img.path)
        assert pixels(r4.images[0].path) != pixels(img.path)
        # batch of 2, random seed reported
        rec.clear()
        r5 = await client.generate(load, gen_req(tmp_path, seed=-1, batch_count=2))
        assert len(r5.images) == 2 and r5.seed >= 0
        assert [i.seed for i in r5.images] == [r5.seed, r5.seed + 1]
        assert [i.index for i in r5.images] == [0, 1]
        assert pixels(r5.images[0].path) != pixels(r5.images[1].path)
        assert {e.image_index for e in rec.events if isinstance(e, ProgressEvent)} == {0, 1}
        # file names sort by time
        names = [Path(r.images[0].path).name for r in (r1, r2, r3, r4, r5)]
        assert names == sorted(names)
        # a changed load option reloads
        rec.clear()
        await client.generate(load_req(tiny_models, flash_attn=False), gen_req(tmp_path))
        assert "loading" in rec.phases()
        assert not any("[protocol]" in line for line in client.log_tail)
        assert client.state == "ready"
    finally:
        await client.shutdown()
    assert client.state == "not_started" and client.pid is None


async def test_busy_refused_never_interleaved(tiny_models, tmp_path):
    client = EngineClient()
    load = load_req(tiny_models)
    try:
        task = asyncio.create_task(client.generate(load, gen_req(tmp_path)))
        await asyncio.sleep(0)  # let it start
        with pytest.raises(EngineBusy):
            await client.generate(load, gen_req(tmp_path, seed=5))
        res = await task
        assert len(res.images) == 1
    finally:
        await client.shutdown()


async def test_cancel_during_text_encoding_is_fast_and_next_works(
    tiny_models_slow, tiny_models, tmp_path
):
    rec = Recorder()
    client = EngineClient(on_event=rec)
    try:
        task = asyncio.create_task(client.generate(load_req(tiny_models_slow), gen_req(tmp_path)))
        await wait_for_phase(rec, "encoding")
        await asyncio.sleep(0.3)  # inside the ~4 s silent 27-layer text-encoder pass
        assert "sampling" not in rec.phases()
        pid = client.pid
        t0 = time.monotonic()
        assert await client.cancel() is True
        with pytest.raises(EngineError) as ei:
            await task
        elapsed = time.monotonic() - t0
        assert ei.value.kind == "cancelled"
        assert elapsed < 1.0, elapsed
        assert pid is not None and not _alive(pid)
        assert client.state == "not_started" and client.loaded_model is None
        # the next request starts a fresh child and works
        res = await client.generate(load_req(tiny_models), gen_req(tmp_path))
        assert client.pid != pid and len(res.images) == 1
    finally:
        await client.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_kill_9_mid_generation_becomes_error_with_log_tail(
    tiny_models_slow, tiny_models, tmp_path
):
    rec = Recorder()
    client = EngineClient(on_event=rec)
    try:
        task = asyncio.create_task(client.generate(load_req(tiny_models_slow), gen_req(tmp_path)))
        await wait_for_phase(rec, "encoding")
        await asyncio.sleep(0.2)
        os.kill(client.pid, signal.SIGKILL)
        with pytest.raises(EngineError) as ei:
            await task
        err = ei.value
        assert err.kind == "crash" and "SIGKILL" in err.message
        assert err.log_tail and any("Flux.2 klein" in ln for ln in err.log_tail)
        crash_events = [e for e in rec.events if isinstance(e, ErrorEvent)]
        assert crash_events and crash_events[-1].kind == "crash" and crash_events[-1].log_tail
        assert client.state == "failed"
        res = await client.generate(load_req(tiny_models), gen_req(tmp_path))
        assert len(res.images) == 1 and client.state == "ready"
    finally:
        await client.shutdown()


async def test_bad_models_are_clear_errors_and_the_child_survives(
    tiny_models, tiny_mismatched_llm, tiny_broken_dit, tmp_path
):
    client = EngineClient()
    try:
        # mismatched text encoder: refused by the preflight (the library would SIGABRT)
        bad = dict(tiny_models, text_encoder=tiny_mismatched_llm)
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(bad), gen_req(tmp_path))
        assert ei.value.kind == "mismatch"
        assert "64-wide" in ei.value.message and "expects 32" in ei.value.message
        pid = client.pid
        assert pid is not None

        # missing file
        gone = dict(tiny_models, vae=tmp_path / "nope.safetensors")
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(gone), gen_req(tmp_path))
        assert ei.value.kind == "missing_file" and "nope.safetensors" in ei.value.message

        # truncated files (GGUF and safetensors)
        for comp in ("text_encoder", "vae", "diffusion"):
            src = tiny_models[comp]
            cut = tmp_path / f"cut-{src.name}"
            cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
            with pytest.raises(EngineError) as ei:
                await client.generate(load_req(dict(tiny_models, **{comp: cut})), gen_req(tmp_path))
            assert ei.value.kind == "bad_file" and "truncated" in ei.value.message, comp

        # not a model file at all
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(b"<html>Access denied</html>" * 10)
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(dict(tiny_models, diffusion=junk)), gen_req(tmp_path))
        assert ei.value.kind == "bad_file"

        # passes the header checks but the library refuses it: NULL context, reported
        broken = dict(tiny_models, diffusion=tiny_broken_dit)
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(broken), gen_req(tmp_path))
        assert ei.value.kind == "load"
        assert "single_blocks.0.linear2.weight" in ei.value.message
        assert ei.value.log_tail

        # decoder-only VAE cannot do edits
        ref = tmp_path / "ref.png"
        Image.new("RGB", (64, 64), (200, 30, 30)).save(ref)
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(tiny_models), gen_req(tmp_path, ref_images=[str(ref)]))
        assert ei.value.kind == "bad_file" and "decoder-only" in ei.value.message

        # bad sampler name
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(tiny_models), gen_req(tmp_path, sampler="nope"))
        assert ei.value.kind == "bad_request"

        # none of that killed the child, and it still generates
        assert client.pid == pid
        res = await client.generate(load_req(tiny_models), gen_req(tmp_path))
        assert len(res.images) == 1 and client.pid == pid
    finally:
        await client.shutdown()


async def test_reference_image_edit(tiny_models_edit, tmp_path):
    ref = tmp_path / "ref.png"
    Image.new("RGB", (64, 64), (10, 200, 90)).save(ref)
    client = EngineClient()
    try:
        res = await client.generate(
            load_req(tiny_models_edit), gen_req(tmp_path, ref_images=[str(ref)])
        )
        assert len(res.images) == 1
        log = "\n".join(client.log_tail)
        assert "EDIT mode" in log and "encode_first_stage completed" in log  # VAE encoder ran
        assert "Reference images: 1" in (read_parameters(res.images[0].path) or "")
    finally:
        await client.shutdown()


def test_child_stdout_is_pure_protocol(tiny_models, tmp_path):
    """Drive the child by hand; every stdout byte must be a protocol line."""
    reqs = [
        load_req(tiny_models),
        gen_req(tmp_path, id="a", preview=True),
        gen_req(tmp_path, id="b", batch_count=2, cfg_scale=3.0, negative_prompt="blurry"),
        GenerateRequest(
            prompt="x", width=64, height=64, steps=1, sampler="bogus", output_dir=str(tmp_path)
        ),
        LoadRequest(diffusion_model_path="/nope", llm_path="/nope", vae_path="/nope"),
    ]
    stdin = "".join(dumps(r) for r in reqs) + "not json\n" + '{"v": 1, "type": "shutdown"}\n'
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "distill_tui.engine.child"],
        input=stdin.encode(),
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    lines = p.stdout.decode().split("\n")
    assert lines[-1] == ""
    events = [parse_event(line) for line in lines[:-1]]  # raises on any non-protocol line
    for line in lines[:-1]:
        json.loads(line)
    types = [e.type for e in events]
    assert types[0] == "ready" and types.count("done") == 2 and types.count("image") == 3
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.kind for e in errors] == ["bad_request", "missing_file", "bad_request"]
    # native output went to stderr instead
    assert b"System Info" in p.stderr or b"generate_image" in p.stderr


def test_backend_probe_one_json_line():
    p = subprocess.run(
        [sys.executable, "-m", "distill_tui.engine.backend"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    out = p.stdout.strip().splitlines()
    assert p.returncode == 0 and len(out) == 1
    info = json.loads(out[0])
    assert info["ok"] is True and info["version"] == "0.4.7"
    assert info["backend"] == "CPU"
    assert info["devices"] and info["devices"][0]["type"] == "CPU"


def test_core_modules_never_import_textual():
    code = (
        "import sys; import distill_tui.engine.protocol, distill_tui.engine.client, "
        "distill_tui.engine.preflight, distill_tui.engine.backend, distill_tui.outputs; "
        "import distill_tui.cli.generate; "
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.strip() == "False", p.stderr


async def test_child_that_cannot_start_is_an_error_not_a_hang():
    client = EngineClient(python=sys.executable + "-does-not-exist")
    with pytest.raises(EngineError) as ei:
        await client.start()
    assert ei.value.kind == "start" and client.state == "failed"
    # the native library cannot be loaded: the child says so instead of 'ready'
    env = dict(os.environ, STABLE_DIFFUSION_CPP_LIB="/nonexistent/libstable-diffusion.so")
    client = EngineClient(env=env)
    with pytest.raises(EngineError) as ei:
        await client.start()
    assert ei.value.kind == "start" and "cannot import stable_diffusion_cpp" in ei.value.message
    assert client.state == "failed"
    await client.shutdown()


def test_loop_ending_without_shutdown_leaves_no_child():
    code = (
        "import asyncio\n"
        "from distill_tui.engine.client import EngineClient\n"
        "async def main():\n"
        "    c = EngineClient()\n"
        "    await c.start()\n"
        "    print(c.pid, flush=True)\n"
        "asyncio.run(main())\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr
    pid = int(p.stdout.strip())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


async def test_native_abort_is_contained(tiny_models, tiny_mismatched_llm, tmp_path):
    """Without the preflight the library SIGABRTs on the mismatch: only the child dies."""
    rec = Recorder()
    env = dict(os.environ, DISTILL_ENGINE_SKIP_PREFLIGHT="1")
    client = EngineClient(on_event=rec, env=env)
    try:
        bad = dict(tiny_models, text_encoder=tiny_mismatched_llm)
        with pytest.raises(EngineError) as ei:
            await client.generate(load_req(bad), gen_req(tmp_path))
        assert ei.value.kind == "crash" and "SIGABRT" in ei.value.message
        assert any("GGML_ASSERT" in ln for ln in ei.value.log_tail), ei.value.log_tail
        res = await client.generate(load_req(tiny_models), gen_req(tmp_path))
        assert len(res.images) == 1
    finally:
        await client.shutdown()


async def test_child_recycled_after_native_leak_budget(tiny_models, tmp_path):
    rec = Recorder()
    client = EngineClient(on_event=rec, recycle_after_bytes=64 * 64 * 3 * 2)
    load = load_req(tiny_models)
    try:
        await client.generate(load, gen_req(tmp_path))
        pid1 = client.pid
        await client.generate(load, gen_req(tmp_path))  # 2 images leaked: budget reached
        assert client.pid == pid1
        rec.clear()
        res = await client.generate(load, gen_req(tmp_path))
        assert client.pid != pid1 and "loading" in rec.phases() and len(res.images) == 1
    finally:
        await client.shutdown()


def test_child_exits_when_its_parent_is_killed(tiny_models_slow, tmp_path):
    code = (
        "import asyncio, sys\n"
        "from distill_tui.engine.client import EngineClient\n"
        "from distill_tui.engine.protocol import LoadRequest, GenerateRequest\n"
        "async def main():\n"
        "    c = EngineClient()\n"
        "    await c.start()\n"
        "    print(c.pid, flush=True)\n"
        f"    await c.generate(LoadRequest(diffusion_model_path={str(tiny_models_slow['diffusion'])!r},"
        f" llm_path={str(tiny_models_slow['text_encoder'])!r},"
        f" vae_path={str(tiny_models_slow['vae'])!r}),"
        f" GenerateRequest(prompt='x', width=64, height=64, steps=2, output_dir={str(tmp_path)!r}))\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.5)  # loading / encoding
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "orphaned engine child kept running"
