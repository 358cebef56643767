"""A LoRA that is not a LoRA (issue 19.6): random bytes, another model's file, or a LoRA made
for another model used to give exit 0, pixels identical to no LoRA, and a PNG and history
record saying it was applied. Now a file that is no LoRA is refused before the engine starts
(its header is read), and a LoRA the engine applies to no tensor of the model is an error
(the engine's own count, read from its log), with nothing saved or recorded as applied.
Through the real engine on the tiny model set."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.outputs import History, parse_parameters, read_parameters
from tests.gen_helpers import ready_core, wait_for
from tests.test_engine_knobs import GEN, pixels, write_tiny_lora
from tests.test_generate_cli import distill


def write_foreign_lora(path):
    """A well-formed LoRA for an SD 1.5 UNet (kohya names): nothing in a FLUX.2 model."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    base = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file(
        {
            f"{base}.lora_down.weight": rng.standard_normal((4, 320)).astype(np.float16),
            f"{base}.lora_up.weight": rng.standard_normal((320, 4)).astype(np.float16),
        },
        str(path),
    )
    return path


def history_count(ctx) -> int:
    return len(list(History(ctx.paths.history_file).records()))


@pytest.mark.slow
def test_files_that_are_no_lora_are_refused_before_the_engine(tiny_ready_model, tiny_models):
    ctx = tiny_ready_model
    d = ctx.settings.lora_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "noise.safetensors").write_bytes(os.urandom(4096))
    (d / "empty.safetensors").write_bytes(b"")
    shutil.copyfile(tiny_models["vae"], d / "a_vae.safetensors")  # another model's file
    shutil.copyfile(tiny_models["diffusion"], d / "a_dit.gguf")
    log = ctx.paths.log_dir / "engine.log"
    for name, why in (
        ("noise", "neither GGUF nor safetensors"),
        ("empty", "empty or truncated"),
        ("a_vae", "is not a LoRA: none of its"),
        ("a_dit", "is not a LoRA: none of its"),
    ):
        p = distill("generate", "a cat", *GEN, "--lora", name)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
        assert f"LoRA '{name}'" in p.stderr and why in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        assert not log.exists()  # the engine never started
    assert history_count(ctx) == 0


@pytest.mark.slow
def test_a_lora_for_another_model_is_an_error_not_an_image(tiny_ready_model, tmp_path):
    ctx = tiny_ready_model
    ctx.settings.lora_dir.mkdir(parents=True, exist_ok=True)
    write_foreign_lora(ctx.settings.lora_dir / "sd15_style.safetensors")
    write_tiny_lora(ctx.settings.lora_dir / "tiny_style.safetensors")
    out = tmp_path / "foreign.png"
    p = distill("generate", "a cat", *GEN, "--lora", "sd15_style", "-o", str(out))
    assert p.returncode == 1, p.stderr
    assert "LoRA 'sd15_style' matched no tensor of this model" in p.stderr, p.stderr
    assert "0 of 2" in p.stderr
    assert not out.exists() and history_count(ctx) == 0  # nothing says it was applied
    # a real LoRA still applies, and a foreign one beside it is still refused
    good = tmp_path / "good.png"
    p = distill("generate", "a cat", *GEN, "--lora", "tiny_style", "-o", str(good))
    assert p.returncode == 0, p.stderr
    assert "tiny_style" in parse_parameters(read_parameters(good) or "")["LoRAs"]
    p = distill("generate", "a cat", *GEN, "--lora", "tiny_style", "--lora", "sd15_style")
    assert p.returncode == 1 and "'sd15_style' matched no tensor" in p.stderr, p.stderr
    assert history_count(ctx) == 1
    # and the engine child stays usable afterwards (same process, next request)
    plain = tmp_path / "plain.png"
    p = distill("generate", "a cat", *GEN, "-o", str(plain))
    assert p.returncode == 0 and pixels(plain) != pixels(good)


@pytest.mark.slow
async def test_the_form_says_the_same(tiny_models):
    """The Generate form: a file that is no LoRA is a form error (no job); a LoRA for
    another model fails the job with the engine's count, and no history record is written."""
    core = ready_core(tiny_models)
    d = core.settings.lora_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "noise.safetensors").write_bytes(os.urandom(4096))
    write_foreign_lora(d / "sd15_style.safetensors")
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.form
        await pilot.press(*"a red fox")
        form.set_value("loras", "noise")
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert any("LoRA 'noise'" in e and "neither GGUF" in e for e in form.errors), form.errors
        assert app.generation.job is None
        form.set_value("loras", "sd15_style:0.8")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running)
        job = app.generation.job
        assert job.phase == "failed", job.phase
        assert "LoRA 'sd15_style' matched no tensor of this model" in (job.error or "")
        assert history_count(core) == 0
