"""The tiny model set as a model with two diffusion and two text encoder quants installed
(and one of each in the catalog that is not downloaded), for the quant comparison tests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests import tinymodels

COMPARE_MODEL_ID = "tiny-compare"
DIFFUSION = ("Q4_K_S", "Q8_0")  # installed: the tiny DiT and a second one (other weights)
TEXT_ENCODER = ("Q3_K_M", "Q4_K_M")  # installed: the tiny Qwen3 and a second one
MISSING_DIFFUSION = "Q6_K"  # in the catalog, not downloaded
MISSING_TEXT_ENCODER = "Q8_0"


@pytest.fixture(scope="session")
def tiny_compare_files(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """The fast tiny set plus a second DiT and a second Qwen3 with other random weights."""
    out = tmp_path_factory.mktemp("tiny_compare")
    width = tinymodels.llm_out_width(1, 32)
    spec = tinymodels.SETS["fast"]
    return {
        "dit_a": Path(tiny_models["diffusion"]),
        "dit_b": tinymodels.write_dit(out / "dit-b.gguf", width, seed=11),
        "llm_a": Path(tiny_models["text_encoder"]),
        "llm_b": tinymodels.write_llm(
            out / "llm-b.gguf", spec["llm_layers"], spec["llm_hidden"], spec["llm_inter"], seed=12
        ),
        "vae": Path(tiny_models["vae"]),
    }


def _file(src: Path | None, rel: str, size: int = 1000) -> dict:
    if src is None:  # not installed: any plausible values
        return {"file": rel, "size": size, "downloadUrl": f"http://127.0.0.1:9/{rel}"}
    data = src.read_bytes()
    return {
        "file": rel,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "downloadUrl": f"http://127.0.0.1:9/{rel}",
    }


def compare_catalog_entry(files: dict[str, Path]) -> dict:
    def quant(qid: str, src: Path | None, rel: str) -> dict:
        return {"id": qid, "label": qid, **_file(src, rel)}

    return {
        "id": COMPARE_MODEL_ID,
        "name": "Tiny Klein (compare test)",
        "description": "random-weight FLUX.2 Klein-shaped set with two quants per component",
        "type": "image-generation",
        "family": "flux2-klein",
        "vae": _file(files["vae"], "tinyc/vae.safetensors"),
        "diffusion": {
            "name": "Tiny DiT",
            "quants": [
                quant(DIFFUSION[0], files["dit_a"], "tinyc/dit-a.gguf"),
                quant(MISSING_DIFFUSION, None, "tinyc/dit-missing.gguf"),
                quant(DIFFUSION[1], files["dit_b"], "tinyc/dit-b.gguf"),
            ],
        },
        "textEncoder": {
            "name": "Tiny Qwen3",
            "quants": [
                quant(TEXT_ENCODER[0], files["llm_a"], "tinyc/llm-a.gguf"),
                quant(TEXT_ENCODER[1], files["llm_b"], "tinyc/llm-b.gguf"),
                quant(MISSING_TEXT_ENCODER, None, "tinyc/llm-missing.gguf"),
            ],
        },
        "recommended": {"steps": 2, "cfgScale": 1.0, "width": 64, "height": 64},
    }


def install_compare_model(app_paths, files: dict[str, Path]):
    """Catalog entry + the four files + VAE in the models dir, recorded, selected, active.
    Returns a fresh CoreContext."""
    from distill_tui.context import CoreContext
    from distill_tui.resources import bundled_catalog_path
    from distill_tui.settings import GenerationDefaults

    entry = compare_catalog_entry(files)
    cat = json.loads(bundled_catalog_path().read_text("utf-8"))
    cat["models"] = [m for m in cat["models"] if m["id"] != COMPARE_MODEL_ID] + [entry]
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(cat, indent=2), "utf-8")
    ctx = CoreContext.build(app_paths)
    sources = {
        "tinyc/vae.safetensors": files["vae"],
        "tinyc/dit-a.gguf": files["dit_a"],
        "tinyc/dit-b.gguf": files["dit_b"],
        "tinyc/llm-a.gguf": files["llm_a"],
        "tinyc/llm-b.gguf": files["llm_b"],
    }
    for rel, src in sources.items():
        dest = ctx.inventory.abs_path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        ctx.inventory.record(rel, dest.stat().st_size, None)
    ctx.settings.set_quant(COMPARE_MODEL_ID, "diffusion", DIFFUSION[0])
    ctx.settings.set_quant(COMPARE_MODEL_ID, "textEncoder", TEXT_ENCODER[0])
    ctx.settings.update(
        active_model_id=COMPARE_MODEL_ID,
        generation=GenerationDefaults(width=64, height=64, steps=2, threads=2),
    )
    ctx = CoreContext.build(app_paths)
    assert ctx.resolver.is_model_ready(COMPARE_MODEL_ID), ctx.resolver.missing(COMPARE_MODEL_ID)
    return ctx
