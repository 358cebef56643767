"""Helpers for the Generate / Gallery tests: a core whose active model is the tiny set."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from distill_tui.context import CoreContext
from distill_tui.settings import GenerationDefaults

MODEL_ID = "flux2-klein-4b"
DIFFUSION_QUANT = "Q4_K_S"
TEXT_ENCODER_QUANT = "Q4_K_M"


def install_tiny(core: CoreContext, tiny: dict[str, Path], model_id: str = MODEL_ID) -> None:
    """Put the tiny files where the catalog expects ``model_id``'s quants, record them in the
    inventory and select them (what a finished download + selection leaves behind)."""
    model = core.catalog.require(model_id)
    targets = {
        "diffusion": model.diffusion.get(DIFFUSION_QUANT),
        "text_encoder": model.text_encoder.get(TEXT_ENCODER_QUANT),
        "vae": model.vae,
    }
    for key, entry in targets.items():
        assert entry is not None
        dest = core.inventory.abs_path(entry.file)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():  # the VAE is shared between models
            try:
                os.link(tiny[key], dest)
            except OSError:
                shutil.copyfile(tiny[key], dest)
        core.inventory.record(entry.file, dest.stat().st_size, None)
    core.settings.set_quant(model_id, "diffusion", DIFFUSION_QUANT)
    core.settings.set_quant(model_id, "textEncoder", TEXT_ENCODER_QUANT)
    core.settings.update(
        active_model_id=model_id,
        generation=GenerationDefaults(width=64, height=64, steps=2, threads=2),
    )


def ready_core(tiny: dict[str, Path]) -> CoreContext:
    core = CoreContext.build()
    install_tiny(core, tiny)
    assert core.resolver.is_model_ready(MODEL_ID), core.resolver.missing(MODEL_ID)
    return core


async def wait_for(pilot, cond: Callable[[], object], timeout: float = 60.0) -> None:
    """Let the app run until ``cond()`` is truthy (fails after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.05)
