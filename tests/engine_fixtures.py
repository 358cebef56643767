"""Session fixtures: tiny synthetic FLUX.2 Klein model sets (generator in ``tests/tinymodels``).

* ``tiny_models``       set D "fast": 1-layer Qwen3, decoder-only VAE (~19 MB, ~0.5 s/gen)
* ``tiny_models_slow``  27-layer Qwen3: a ~4 s silent text-encoding phase (cancel/kill tests)
* ``tiny_models_edit``  fast + full VAE encoder (+69 MB): reference-image edits
* ``tiny_mismatched_llm`` a Qwen3 whose width does not fit the fast DiT (library would abort)
* ``tiny_broken_dit``   a DiT missing a tensor: preflight passes, the library's load fails

Each returns a dict {"diffusion", "text_encoder", "vae"} of Paths (or one Path).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import tinymodels


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tinymodels.make_set(tmp_path_factory.mktemp("tiny_fast"), "fast")


@pytest.fixture(scope="session")
def tiny_models_slow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tinymodels.make_set(tmp_path_factory.mktemp("tiny_slow"), "slow")


@pytest.fixture(scope="session")
def tiny_models_edit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tinymodels.make_set(tmp_path_factory.mktemp("tiny_edit"), "edit")


@pytest.fixture(scope="session")
def tiny_mismatched_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodels.mismatched_llm(tmp_path_factory.mktemp("tiny_mismatch") / "llm-wide.gguf")


@pytest.fixture(scope="session")
def tiny_broken_dit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_broken") / "dit-broken.gguf"
    return tinymodels.write_dit(
        path,
        tinymodels.llm_out_width(1, 32),
        drop=("single_blocks.0.linear2.weight",),
    )


# ---- the tiny set installed as a READY model (catalog + files + inventory + selection) ------

TINY_MODEL_ID = "tiny-klein"
TINY_QUANT = "F16"


def tiny_catalog_entry(models: dict[str, Path], base_url: str = "http://127.0.0.1:9/tiny") -> dict:
    """A catalog model whose files are exactly ``models`` (sizes and sha256 filled in)."""
    import hashlib

    def f(comp: str, rel: str) -> dict:
        p = Path(models[comp])
        return {
            "file": rel,
            "size": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "downloadUrl": f"{base_url}/{rel}",
        }

    return {
        "id": TINY_MODEL_ID,
        "name": "Tiny Klein (test)",
        "description": "random-weight FLUX.2 Klein-shaped set for tests",
        "type": "image-generation",
        "family": "flux2-klein",
        "vae": f("vae", "tiny/vae.safetensors"),
        "diffusion": {
            "name": "Tiny DiT",
            "quants": [{"id": TINY_QUANT, "label": "F16", **f("diffusion", "tiny/dit-F16.gguf")}],
        },
        "textEncoder": {
            "name": "Tiny Qwen3",
            "quants": [
                {"id": TINY_QUANT, "label": "F16", **f("text_encoder", "tiny/llm-F16.gguf")}
            ],
        },
        "recommended": {"steps": 2, "cfgScale": 1.0, "width": 64, "height": 64},
    }


def write_tiny_catalog(app_paths, models: dict[str, Path], base_url: str | None = None) -> dict:
    """The bundled catalog plus the tiny model, as the user catalog (same catalogVersion)."""
    import json

    from distill_tui.resources import bundled_catalog_path

    cat = json.loads(bundled_catalog_path().read_text("utf-8"))
    entry = tiny_catalog_entry(models, *(() if base_url is None else (base_url,)))
    cat["models"] = [m for m in cat["models"] if m["id"] != TINY_MODEL_ID] + [entry]
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(cat, indent=2), "utf-8")
    return entry


def install_tiny_model(app_paths, models: dict[str, Path]):
    """Catalog entry + files in the models dir + inventory records + selection + active.

    Returns a fresh ``CoreContext`` in which ``tiny-klein`` is ready and active.
    """
    import shutil

    from distill_tui.context import CoreContext

    entry = write_tiny_catalog(app_paths, models)
    ctx = CoreContext.build(app_paths)
    for comp, spec in (
        ("diffusion", entry["diffusion"]["quants"][0]),
        ("text_encoder", entry["textEncoder"]["quants"][0]),
        ("vae", entry["vae"]),
    ):
        dest = ctx.inventory.abs_path(spec["file"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(models[comp], dest)
        ctx.inventory.record(spec["file"], spec["size"], spec["sha256"], spec["downloadUrl"])
    ctx.settings.set_quant(TINY_MODEL_ID, "diffusion", TINY_QUANT)
    ctx.settings.set_quant(TINY_MODEL_ID, "textEncoder", TINY_QUANT)
    ctx.settings.update(active_model_id=TINY_MODEL_ID)
    ctx = CoreContext.build(app_paths)
    assert ctx.resolver.is_model_ready(TINY_MODEL_ID), ctx.resolver.missing(TINY_MODEL_ID)
    return ctx


@pytest.fixture
def tiny_ready_model(app_paths, tiny_models):
    """The tiny set installed as the ready, active model in this test's XDG dirs."""
    return install_tiny_model(app_paths, tiny_models)
