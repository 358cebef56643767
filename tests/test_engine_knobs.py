"""The engine's knobs (issue 15.4), for real on the tiny model sets: flash attention, offload,
VAE tiling, text encoder / VAE on CPU, threads (CLI flags and the Generate form's advanced
section), several reference images, img2img (init image + strength), LoRAs from a folder.
Each is recorded in the PNG parameters and the history, and Gallery reuse restores it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from textual.widgets import Checkbox, Collapsible, Input

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.generation import EngineKnobs, GenParams
from distill_tui.loras import LoraError, list_loras, parse_lora, parse_lora_list, split_paths
from distill_tui.outputs import History, parse_parameters, read_parameters
from tests.engine_fixtures import install_tiny_model
from tests.gen_helpers import ready_core, wait_for
from tests.test_generate_cli import distill
from tests.tinymodels import DIT_HIDDEN

GEN = ("--steps", "2", "--width", "64", "--height", "64", "--seed", "3")


def pixels(path: str | Path) -> str:
    with Image.open(path) as im:
        return hashlib.sha1(im.convert("RGB").tobytes()).hexdigest()


def write_tiny_lora(path: Path, seed: int = 5) -> Path:
    """A real LoRA for the tiny DiT: lora_down/lora_up pairs (rank 4) on two of its layers,
    ComfyUI names; sd.cpp applies all 4 tensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    h, r = DIT_HIDDEN, 4
    t = {}
    for name, (out, inp) in {
        "double_blocks.0.img_attn.qkv": (3 * h, h),
        "single_blocks.0.linear2": (h, h + 3 * h),
    }.items():
        t[f"diffusion_model.{name}.lora_down.weight"] = (
            rng.standard_normal((r, inp)) * 0.5
        ).astype(np.float16)
        t[f"diffusion_model.{name}.lora_up.weight"] = (rng.standard_normal((out, r)) * 0.5).astype(
            np.float16
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(t, str(path))
    return path


def solid(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (64, 64), colour).save(path)
    return path


# ---- core helpers ---------------------------------------------------------------------


def test_lora_names_and_choices(tmp_path):
    folder = tmp_path / "loras"
    (folder / "styles").mkdir(parents=True)
    for name in ("b.safetensors", "A.gguf", "styles/ink.safetensors", "notes.txt"):
        (folder / name).write_bytes(b"x")
    assert list_loras(folder) == ["A", "b", "styles/ink"]
    assert list_loras(tmp_path / "nope") == []
    assert parse_lora("ink") == ("ink", 1.0)
    assert parse_lora("styles/ink:0.6") == ("styles/ink", 0.6)
    assert parse_lora_list("a:0.5; b, c:-1") == [("a", 0.5), ("b", 1.0), ("c", -1.0)]
    for bad in ("a:x", "a:99", ""):
        with pytest.raises(LoraError):
            parse_lora(bad)
    a, b = tmp_path / "a.png", tmp_path / "b,c.png"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    # ';' separates; ',' too unless the comma is part of an existing file's name
    assert split_paths(f"{a}; {b}") == [str(a), str(b)]
    assert split_paths("x.png, y.png") == ["x.png", "y.png"]


def test_record_params_restore_knobs_and_fallback():
    rec = {
        "prompt": "p",
        "flash_attn": False,
        "keep_vae_on_cpu": True,
        "vae_tiling": True,
        "n_threads": 3,
        "init_image": "/x/init.png",
        "strength": 0.4,
        "ref_images": ["/a.png", "/b.png"],
        "loras": [{"name": "ink", "path": "/l/ink.safetensors", "weight": 0.5}],
    }
    p = GenParams.from_record_params(rec)
    assert p.knobs == EngineKnobs(
        flash_attn=False, vae_tiling=True, keep_vae_on_cpu=True, n_threads=3, offload_to_cpu=False
    )
    assert p.ref_images == ("/a.png", "/b.png") and p.init_image == "/x/init.png"
    assert p.strength == 0.4 and p.loras == (("ink", 0.5),)
    # an older record (no knobs): the form keeps the settings' knobs
    assert GenParams.from_record_params({"prompt": "p"}).knobs is None


def test_memory_model_reads_the_knob_settings(app_paths):
    from distill_tui import memory_model as mm
    from distill_tui.context import CoreContext

    core = CoreContext.build(app_paths)
    gen = core.settings.settings.generation.model_copy(
        update={"vae_tiling": True, "keep_clip_on_cpu": True, "keep_vae_on_cpu": True}
    )
    core.settings.update(generation=gen)
    k = mm.knobs_from_settings(core.settings.settings)
    assert k.vae_tiling and k.keep_clip_on_cpu and k.keep_vae_on_cpu and k.flash_attn


# ---- CLI, real engine -----------------------------------------------------------------


@pytest.mark.slow
def test_cli_knob_flags_reach_engine_and_are_recorded(tiny_ready_model, tmp_path):
    ctx = tiny_ready_model
    on, off = tmp_path / "flash.png", tmp_path / "knobs.png"
    p = distill("generate", "a lovely cat", *GEN, "-o", str(on))
    assert p.returncode == 0, p.stderr
    p = distill(
        "generate",
        "a lovely cat",
        *GEN,
        "--vae-tiling",
        "--text-encoder-cpu",
        "--vae-cpu",
        "--no-flash-attn",
        "--offload-to-cpu",
        "--threads",
        "1",
        "-o",
        str(off),
    )
    assert p.returncode == 0, p.stderr
    params = parse_parameters(read_parameters(off) or "")
    assert params["Flash attention"] == "off" and params["VAE tiling"] == "on"
    assert params["Text encoder on CPU"] == "on" and params["VAE on CPU"] == "on"
    assert params["Offload to CPU"] == "on" and params["Threads"] == "1"
    assert parse_parameters(read_parameters(on) or "")["Flash attention"] == "on"
    # flash attention really changed what the library computed (other numerics, other bytes)
    assert pixels(on) != pixels(off)
    log = (ctx.paths.log_dir / "engine.log").read_text("utf-8")
    assert log.count("Using flash attention in the diffusion model") == 1  # the first run only
    rec = {r.images[0]: r for r in History(ctx.paths.history_file).records()}[str(off)]
    assert rec.params["flash_attn"] is False and rec.params["vae_tiling"] is True
    assert rec.params["keep_clip_on_cpu"] is True and rec.params["keep_vae_on_cpu"] is True
    assert rec.params["offload_to_cpu"] is True and rec.params["n_threads"] == 1
    # the settings were not changed by flags
    assert ctx.settings.load().generation.vae_tiling is False


@pytest.mark.slow
def test_vae_tiling_reaches_the_library(tiny_models, tmp_path):
    """VAE tiling shows as the library's tile progress during decoding (and nothing else
    changes at 64x64: one tile)."""
    import asyncio

    from distill_tui.engine.client import EngineClient
    from distill_tui.engine.protocol import GenerateRequest, LoadRequest, ProgressEvent

    async def run() -> list[tuple[bool, str, int]]:
        events: list = []
        client = EngineClient(on_event=events.append)
        load = LoadRequest(
            diffusion_model_path=str(tiny_models["diffusion"]),
            llm_path=str(tiny_models["text_encoder"]),
            vae_path=str(tiny_models["vae"]),
            n_threads=2,
        )
        out = []
        try:
            for tiling in (False, True):
                events.clear()
                gen = GenerateRequest(
                    prompt="a cat",
                    width=64,
                    height=64,
                    steps=2,
                    seed=1,
                    vae_tiling=tiling,
                    output_dir=str(tmp_path),
                )
                res = await client.generate(load, gen)
                tiles = [
                    e for e in events if isinstance(e, ProgressEvent) and e.phase == "decoding"
                ]
                out.append((tiling, pixels(res.paths[0]), len(tiles)))
        finally:
            await client.shutdown()
        return out

    (_, plain, tiles_off), (_, tiled, tiles_on) = asyncio.run(run())
    assert tiles_off == 0 and tiles_on > 0
    assert plain == tiled


@pytest.mark.slow
def test_cli_several_reference_images(app_paths, tiny_models_edit, tmp_path):
    ctx = install_tiny_model(app_paths, tiny_models_edit)
    a, b = solid(tmp_path / "a.png", (255, 255, 255)), solid(tmp_path / "b.png", (0, 0, 0))
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    p = distill("generate", "make it red", *GEN, "--ref-image", str(a), "-o", str(one))
    assert p.returncode == 0, p.stderr
    p = distill(
        "generate",
        "make it red",
        *GEN,
        "--ref-image",
        str(a),
        "--ref-image",
        str(b),
        "-o",
        str(two),
    )
    assert p.returncode == 0, p.stderr
    assert parse_parameters(read_parameters(two) or "")["Reference images"] == "2"
    assert pixels(one) != pixels(two)  # the second reference reached the model
    rec = {r.images[0]: r for r in History(ctx.paths.history_file).records()}[str(two)]
    assert rec.params["ref_images"] == [str(a), str(b)]
    p = distill("generate", "x", *GEN, "--ref-image", str(a), "--ref-image", str(tmp_path / "no"))
    assert p.returncode == 1 and "reference image not found" in p.stderr


@pytest.mark.slow
def test_cli_img2img_strength(app_paths, tiny_models_edit, tmp_path):
    ctx = install_tiny_model(app_paths, tiny_models_edit)
    white, black = solid(tmp_path / "w.png", (255, 255, 255)), solid(tmp_path / "k.png", (0,) * 3)
    gen = ("--steps", "4", "--width", "64", "--height", "64", "--seed", "3")
    outs = {}
    for name, extra in (
        ("txt2img", ()),
        ("white", ("--init-image", str(white), "--strength", "0.5")),
        ("black", ("--init-image", str(black), "--strength", "0.5")),
    ):
        outs[name] = tmp_path / f"{name}.png"
        p = distill("generate", "a cat", *gen, *extra, "-o", str(outs[name]))
        assert p.returncode == 0, p.stderr
    hashes = {k: pixels(v) for k, v in outs.items()}
    assert len(set(hashes.values())) == 3  # the init image steers the result
    params = parse_parameters(read_parameters(outs["white"]) or "")
    assert params["Init image"] == "w.png" and params["Denoising strength"] == "0.5"
    rec = {r.images[0]: r for r in History(ctx.paths.history_file).records()}[str(outs["black"])]
    assert rec.params["init_image"] == str(black) and rec.params["strength"] == 0.5
    assert "IMG2IMG" in (ctx.paths.log_dir / "engine.log").read_text("utf-8")
    # validation, before the engine starts
    for args, why in (
        (("--strength", "0.5"), "--strength needs --init-image"),
        (("--init-image", str(white), "--strength", "1.5"), "between 0 and 1"),
        (("--init-image", str(tmp_path / "none.png")), "init image not found"),
    ):
        p = distill("generate", "a cat", *gen, *args)
        assert p.returncode == 1 and why in p.stderr, p.stderr


@pytest.mark.slow
def test_cli_lora_from_the_folder(tiny_ready_model, tmp_path):
    ctx = tiny_ready_model
    write_tiny_lora(ctx.settings.lora_dir / "tiny_style.safetensors")
    plain, styled, half = tmp_path / "plain.png", tmp_path / "styled.png", tmp_path / "half.png"
    for out, extra in (
        (plain, ()),
        (styled, ("--lora", "tiny_style")),
        (half, ("--lora", "tiny_style:0.5")),
    ):
        p = distill("generate", "a cat", *GEN, *extra, "-o", str(out))
        assert p.returncode == 0, p.stderr
    assert len({pixels(plain), pixels(styled), pixels(half)}) == 3
    log = (ctx.paths.log_dir / "engine.log").read_text("utf-8")
    assert "(4 / 4) LoRA tensors have been applied" in log
    params = parse_parameters(read_parameters(half) or "")
    assert params["LoRAs"] == "tiny_style (0.5)"
    # A1111's readers find the LoRA as a tag in the text's prompt line (issue 23.9) ...
    assert params["prompt"] == "a cat <lora:tiny_style:0.5>"
    rec = {r.images[0]: r for r in History(ctx.paths.history_file).records()}[str(half)]
    assert rec.params["prompt"] == "a cat"  # ... the record keeps the prompt as typed
    assert rec.params["loras"][0]["name"] == "tiny_style"
    assert rec.params["loras"][0]["weight"] == 0.5
    # --lora-dir and an unknown name: one line naming the folder and what is there
    other = write_tiny_lora(tmp_path / "elsewhere" / "ink.safetensors")
    p = distill("generate", "a cat", *GEN, "--lora-dir", str(other.parent), "--lora", "ink")
    assert p.returncode == 0, p.stderr
    p = distill("generate", "a cat", *GEN, "--lora", "nope")
    assert p.returncode == 1
    assert "LoRA 'nope' not found" in p.stderr and "tiny_style" in p.stderr


# ---- the Generate form, real engine, and Gallery reuse ---------------------------------


@pytest.mark.slow
async def test_advanced_section_generates_and_gallery_reuse_restores(tiny_models, tmp_path):
    core = ready_core(tiny_models)
    write_tiny_lora(core.settings.lora_dir / "tiny_style.safetensors")
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        section = screen.query_one("#advanced", Collapsible)
        assert section.collapsed  # 80x24 keeps the main form
        await pilot.press(*"a red fox")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not section.collapsed
        assert screen.query_one("#flash-attn", Checkbox).has_focus
        await pilot.press("space")  # flash attention off
        screen.query_one("#vae-tiling", Checkbox).value = True
        screen.query_one("#vae-cpu", Checkbox).value = True
        screen.query_one("#threads", Input).value = "1"
        # the picker lists the folder; choosing adds name:1 to the LoRAs field
        pick = screen.query_one("#lora-pick")
        await wait_for(pilot, lambda: pick._options and len(pick._options) > 1, 5)
        pick.value = "tiny_style"
        await pilot.pause()
        loras = screen.query_one("#loras", Input)
        assert loras.value == "tiny_style:1"
        loras.value = "tiny_style:0.7"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running)
        job = app.generation.job
        assert job.phase == "done", job.error
        [rec] = History(core.paths.history_file).records()
        assert rec.params["flash_attn"] is False and rec.params["vae_tiling"] is True
        assert rec.params["keep_vae_on_cpu"] is True and rec.params["n_threads"] == 1
        assert rec.params["loras"][0]["weight"] == 0.7
        params = parse_parameters(read_parameters(rec.images[0]) or "")
        assert params["LoRAs"] == "tiny_style (0.7)" and params["Flash attention"] == "off"
        # generating made the knobs the defaults
        saved = core.settings.load().generation
        assert saved.flash_attn is False and saved.vae_tiling and saved.keep_vae_on_cpu
        assert saved.threads == 1

        # change the form, then reuse the image from the Gallery: the knobs come back
        screen.form.load_knobs(EngineKnobs())
        loras.value = ""
        section.collapsed = True
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen is screen, 5)
        await pilot.pause()
        assert screen.form.knobs() == EngineKnobs(
            flash_attn=False, vae_tiling=True, keep_vae_on_cpu=True, n_threads=1
        )
        assert loras.value == "tiny_style:0.7"
        assert not section.collapsed  # the recipe uses a LoRA: shown
