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
                memory=_ro(latent_channels=32, vae_factor=16),
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
                memory=_ro(latent_channels=16, vae_factor=8),
                licence_note="Apache-2.0 (Tongyi-MAI)",
            ),
            Family(
                id="esrgan",
                label="ESRGAN",
                type="upscaler",
                roles=(RoleSpec("upscaler", "upscaler_path", "Upscaler"),),
                signatures=_ro(upscaler="esrgan"),
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
