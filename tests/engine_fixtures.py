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
