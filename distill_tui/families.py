"""The model families distill runs: the one place that knows a family.

A catalog model names its family; everything that differs between families is read from here:
which components it has and the engine slot each loads into, the file signatures preflight
checks before the engine loads them, the memory model's coefficients, the default recipe, the
features the Generate form offers (edit references, img2img, a meaningful negative prompt) and
the licence note. A new model of a known family is a catalog entry only; a new family is one
row here (plus its preflight signatures when they are new).

No textual import: the catalog, the CLI and the engine child read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: the features a family (or one model, overriding it) may have
FEATURES = frozenset({"edit_refs", "img2img", "negative_prompt"})

#: the engine slots: the LoadRequest / stable_diffusion_cpp.StableDiffusion argument each
#: component is loaded through
SLOTS = frozenset({"diffusion_model_path", "llm_path", "vae_path", "upscaler_path"})


@dataclass(frozen=True)
class RoleSpec:
    role: str  #: the catalog's component role ("diffusion", "textEncoder" ...)
    slot: str  #: the engine slot it loads into
    label: str  #: how screens name it
    required: bool = True


@dataclass(frozen=True)
class Family:
    id: str
    label: str
    type: str  #: "image-generation" | "upscaler": decides the Model Manager tab
    roles: tuple[RoleSpec, ...]
    features: frozenset[str] = frozenset()
    #: the recipe a model of this family starts from (its catalog entry may say otherwise)
    defaults: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: role -> the preflight signature its file must show (engine/preflight.py checks it)
    signatures: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: the memory model's coefficients for this family (memory_model.py reads them)
    memory: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    licence_note: str = ""

    def slot(self, role: str) -> str:
        for r in self.roles:
            if r.role == role:
                return r.slot
        raise KeyError(f"family {self.id!r} has no component role {role!r}")

    def role(self, role: str) -> RoleSpec | None:
        return next((r for r in self.roles if r.role == role), None)

    @property
    def is_generator(self) -> bool:
        return self.type == "image-generation"


def _ro(**kw: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(kw))


_TRIO_FLUX2 = (
    RoleSpec("diffusion", "diffusion_model_path", "Diffusion Model"),
    RoleSpec("textEncoder", "llm_path", "Text Encoder"),
    RoleSpec("vae", "vae_path", "VAE"),
)

FAMILIES: MappingProxyType[str, Family] = MappingProxyType(
    {
        f.id: f
        for f in (
            Family(
                id="flux2-klein",
                label="FLUX.2 Klein",
                type="image-generation",
                roles=_TRIO_FLUX2,
                # distilled Klein ignores the negative prompt; a base model says otherwise
                features=frozenset({"edit_refs", "img2img"}),
                defaults=_ro(
                    steps=4,
                    cfg_scale=1.0,
                    sampler="euler",
                    scheduler="default",
                    width=1024,
                    height=1024,
                    flow_shift=None,
                ),
                signatures=_ro(diffusion="flux2-dit", textEncoder="qwen3-llm", vae="flux2-vae"),
                # memory_model.py: bench/memory_model.md (a Klein-4B-wide DiT, the ch-128 VAE)
                memory=_ro(
                    latent_channels=32,
                    vae_factor=16,  # pixels per latent side (a 32-latent VAE tile: 512 px)
                    patch=16,  # pixels per DiT token side
                    txt_tokens=512,  # the Qwen3 prompt is padded to 512
                    seq_multiple=1,
                    dit_flash=84.5,  # B per token per unit of DiT width, flash attention on
                    dit_no_flash=57.5,  # off (plus heads x tokens^2 x 4 B of scores)
                    dit_flash_base=0,
                    dit_no_flash_base=0,
                    vae_ch=128,
                    vae_per_pixel_per_ch=52.0,
                    # the DiT/encoder by the largest diffusion file (a model id picks its own)
                    variants=(
                        _ro(
                            name="flux2-klein-4b",
                            max_diffusion_bytes=6 * 2**30,
                            dit_hidden=3072,
                            dit_heads=24,
                            te_compute=256 * 2**20,
                        ),
                        _ro(
                            name="flux2-klein-9b",
                            max_diffusion_bytes=None,
                            dit_hidden=4096,
                            dit_heads=32,
                            te_compute=320 * 2**20,
                        ),
                    ),
                ),
                licence_note="4B: Apache-2.0; 9B: FLUX Non-Commercial (gated upstream)",
            ),
            Family(
                id="z-image",
                label="Z-Image",
                type="image-generation",
                roles=_TRIO_FLUX2,  # the same slots: DiT, Qwen3 LLM, a (FLUX.1, 16-ch) VAE
                features=frozenset({"img2img", "negative_prompt"}),
                defaults=_ro(
                    steps=8,
                    cfg_scale=1.0,
                    sampler="euler",
                    scheduler="default",
                    width=1024,
                    height=1024,
                    flow_shift=None,  # sd.cpp's auto: 3.0
                ),
                signatures=_ro(diffusion="zimage-dit", textEncoder="qwen3-llm", vae="flux1-vae"),
                # memory_model.py: the engine's buffers on the real-shape DiT of
                # tests/tinymodels.make_zimage_set (tests/test_memory_model.py has them)
                memory=_ro(
                    latent_channels=16,
                    vae_factor=8,  # a 32-latent VAE tile: 256 px
                    patch=16,  # VAE 8 x DiT patch 2
                    # the prompt's own length (no padding to 512), padded to 32: assumed a
                    # long prompt (~190 words); a 10-word one is 32
                    txt_tokens=256,
                    seq_multiple=32,  # image and text tokens each padded to 32 (SEQ_MULTI_OF)
                    dit_flash=46.0,
                    dit_no_flash=28.5,
                    dit_flash_base=2 * 2**20,  # so that no logged size is under the formula
                    dit_no_flash_base=17 * 2**19,  # 8.5 MiB
                    vae_ch=128,  # the FLUX.1 decoder: the same stack as FLUX.2's
                    vae_per_pixel_per_ch=52.0,
                    variants=(
                        _ro(
                            name="z-image-6b",
                            max_diffusion_bytes=None,
                            dit_hidden=3840,
                            dit_heads=30,
                            # Qwen3-4B's real shape logged 14.06 / 28.03 / 64.24 MiB for
                            # prompts of 128 / 254 / 508 tokens: 80 MiB, up to ~600 tokens
                            te_compute=80 * 2**20,
                        ),
                    ),
                ),
                licence_note="Apache-2.0 (Tongyi-MAI)",
            ),
            Family(
                id="esrgan",
                label="ESRGAN",
                type="upscaler",
                roles=(RoleSpec("upscaler", "upscaler_path", "Upscaler"),),
                signatures=_ro(upscaler="esrgan"),
                # memory_model.upscale_estimate (bench/memory_families.py): sd.cpp's RRDBNet
                # is num_feat 64 whatever its depth; the tiny one (tests/tiny_esrgan.py, x4)
                # logged 26.01 / 104.05 / 416.19 / 1664.75 MiB at tiles of 32 / 64 / 128 /
                # 256 px, 1 or 2 blocks alike
                memory=_ro(tile_bytes_per_px=26_636),  # x4: per input pixel of a tile
                licence_note="Real-ESRGAN weights: BSD-3-Clause (xinntao)",
            ),
        )
    }
)


class UnknownFamilyError(KeyError):
    def __init__(self, family_id: str) -> None:
        self.family_id = family_id
        super().__init__(family_id)

    def __str__(self) -> str:
        return f"unknown model family {self.family_id!r}; distill knows {', '.join(FAMILIES)}"


def family(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise UnknownFamilyError(family_id) from None
