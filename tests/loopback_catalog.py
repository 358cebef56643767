"""A small FLUX.2-Klein-shaped catalog served by the fake Hub (Model Manager tests, the
latency bench and the manual tmux walkthrough).

Same ids and file layout as the bundled catalog (so ``flux2-klein-4b`` is the active model),
two quants per section, the VAE at Comfy-Org/flux2-dev's path (gated on demand: ``gated_vae``),
and payloads of a few hundred KB (random bytes, so the sha256 check is real).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.fakehub import FakeHub

VAE_REPO = "Comfy-Org/flux2-dev"
DIFF_REPO = "unsloth/FLUX.2-klein-4B-GGUF"
TE_REPO = "unsloth/Qwen3-4B-GGUF"

#: (component, quant id, repo, hub path, local file)
FILES: tuple[tuple[str, str | None, str, str, str], ...] = (
    (
        "diffusion",
        "Q3_K_S",
        DIFF_REPO,
        "flux-2-klein-4b-Q3_K_S.gguf",
        "diffusion/flux-2-klein-4b-Q3_K_S.gguf",
    ),
    (
        "diffusion",
        "Q4_K_S",
        DIFF_REPO,
        "flux-2-klein-4b-Q4_K_S.gguf",
        "diffusion/flux-2-klein-4b-Q4_K_S.gguf",
    ),
    ("textEncoder", "Q3_K_M", TE_REPO, "Qwen3-4B-Q3_K_M.gguf", "text_encoder/Qwen3-4B-Q3_K_M.gguf"),
    ("textEncoder", "Q4_K_M", TE_REPO, "Qwen3-4B-Q4_K_M.gguf", "text_encoder/Qwen3-4B-Q4_K_M.gguf"),
    (
        "vae",
        None,
        VAE_REPO,
        "split_files/vae/flux2-vae.safetensors",
        "vae/flux2-vae.safetensors",
    ),
)

LABELS = {
    "Q3_K_S": "Smallest; visible quality loss",
    "Q4_K_S": "Good balance of size and quality",
    "Q3_K_M": "Smallest; prompt adherence drops",
    "Q4_K_M": "Recommended balance",
}


def serve_catalog(
    hub: FakeHub,
    size: int = 256 * 1024,
    *,
    sizes: dict[str, int] | None = None,
    gated_vae: bool = False,
    seed: int = 7,
) -> dict[str, Any]:
    """Add the payloads to ``hub`` and return the catalog JSON (camelCase, as on disk)."""
    sizes = sizes or {}
    entries: dict[str, dict[str, Any]] = {}
    for i, (component, qid, repo, hub_path, rel) in enumerate(FILES):
        n = sizes.get(qid or "vae", size)
        data = (hashlib.sha256(f"{seed}-{i}".encode()).digest() * (n // 32 + 1))[:n]
        hub.add_file(repo, hub_path, data, gated=gated_vae and component == "vae")
        entry: dict[str, Any] = {
            "file": rel,
            "size": n,
            "downloadUrl": hub.resolve_url(repo, hub_path),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if qid:
            entry.update(id=qid, label=qid, description=LABELS[qid])
        entries[qid or "vae"] = entry
    return {
        "catalogVersion": 1000,
        "models": [
            {
                "id": "flux2-klein-4b",
                "name": "FLUX.2 Klein 4B",
                "description": "Loopback test model: 4 steps. Pairs with the Qwen3-4B text encoder.",
                "type": "image-generation",
                "family": "flux2-klein",
                "vae": entries["vae"],
                "diffusion": {
                    "name": "FLUX.2 Klein 4B",
                    "quants": [entries["Q3_K_S"], entries["Q4_K_S"]],
                },
                "textEncoder": {
                    "name": "Qwen3-4B",
                    "quants": [entries["Q3_K_M"], entries["Q4_K_M"]],
                },
                "recommended": {"diffusionQuant": "Q4_K_S", "textEncoderQuant": "Q4_K_M"},
            }
        ],
    }
