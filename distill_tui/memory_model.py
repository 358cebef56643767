"""Peak device memory of a set (diffusion quant, text encoder quant, VAE) at a size, and fit.

No textual import here: the Model Manager, ``distill models recommend`` and the Generate
screen's warning share it.

The model
=========

stable-diffusion.cpp keeps three runners (text encoder ``qwen3``, DiT ``flux`` / ``z_image``,
``vae``).
Each owns a *params* buffer (the weights, loaded once) and allocates a *compute* buffer when it
runs, freed after its phase (encode -> sample -> decode; a batch is sampled and decoded one
image after another, so ``batch`` does not raise the peak: measured, the buffers of batch 2 are
those of batch 1). With all weights on the device::

    peak = CONTEXT + W_te' + W_dit + W_vae' + max(C_te', C_dit, C_vae')

where ``W_x`` is the weights file size of x (GGUF/safetensors tensors are loaded as stored; the
logged params buffers match the files within metadata), ``C_x`` its compute buffer, and the
primed terms drop out (go to RAM) with ``keep_clip_on_cpu`` (the text encoder runs on the CPU)
or ``keep_vae_on_cpu`` (the VAE does). With ``offload_to_cpu`` (sd.cpp's
``offload_params_to_cpu``) the weights live in RAM and each runner's weights come to the
device only while it runs::

    peak = CONTEXT + max(W_te' + C_te', W_dit + C_dit, W_vae' + C_vae')

Each family's coefficients live in ``families.Family.memory`` (the model's ``spec``; read by
:func:`arch_of`, never by model id alone): the DiT's width ``H`` and ``heads`` (per variant:
Klein 4B / 9B), bytes per token per unit of width, the text tokens, the padding of the token
counts, the VAE's pixels per latent. Compute buffers (bytes), ``T`` image tokens (16x16 pixels
each: FLUX.2's VAE 16 px per latent; Z-Image's VAE 8 px x its DiT's 2x2 patches), ``Ttxt`` text
tokens, each padded to ``seq_multiple``; ``P = ceil16(w) * ceil16(h)``::

    C_dit = (T + Ttxt) * H * dit_flash + dit_flash_base                     (flash_attn on)
    C_dit = (T + Ttxt) * H * dit_no_flash + heads * (T + Ttxt)^2 * 4 + base  (off: f32 scores)
    C_vae = vae_per_pixel_per_ch * vae_ch * P   (vae_tiling: P capped at a tile: 32 latents)
    C_te  = te_compute                          (prompt-bound, not resolution-bound)

* FLUX.2 Klein: ``Ttxt = 512`` (the Qwen3 prompt is padded: the buffers do not move with a 2-
  or 200-word prompt), no token padding, no base, tiles of 512 px.
* Z-Image (6B, H 3840, 30 heads): ``Ttxt`` is the prompt's own length padded to 32 (the model
  assumes 256: a long prompt), ``T`` padded to 32, ``dit_flash = 46.0`` + 2 MiB,
  ``dit_no_flash = 28.5`` + 8.5 MiB, tiles of 256 px (FLUX.1 VAE, 8 px per latent). Fitted on
  the buffers sd.cpp logged for the real-shape DiT of ``tests/tinymodels.make_zimage_set`` at
  64² .. 1024² (``python bench/memory_families.py``; ``tests/test_memory_model.py`` has
  them): never under a logged buffer; over by 3.2 / 7.8 / 3.8 / 1.1 % with flash attention,
  49 / 0.5 / 3.4 / 0.4 % without (64²: 5 MiB).
* ESRGAN (an upscaler) has no generation formula (:func:`arch_of` raises
  :class:`NoMemoryFormula`); :func:`upscale_estimate` is its own: weights + one tile's buffer.

Constants and where they come from (``bench/memory_model.md``, reproduced by
``python bench/memory_model.py``, real engine, CPU build, sd.cpp's own DEBUG lines
``<runner> compute buffer size: X MB``):

* ``VAE_PER_PIXEL_PER_CH = 52.0``: the real-width FLUX.2 VAE decoder (ch 128) logged 104.03 MiB
  at 128² and 416.13 MiB at 256² (6657 B/pixel, exactly linear; ch 32: 1666 B/pixel at 64²..512²).
  At 1024² that is 6.5 GiB: the largest single buffer of a Klein run. With ``vae_tiling`` the
  buffer stayed at the 512² value for 512², 768² and 1024² (tiles of 512 px).
* ``DIT_FLASH = 84.5``, ``DIT_NO_FLASH = 57.5`` (Klein) bytes per token per unit of width:
  fitted on a DiT of Klein 4B's width (H 3072, 24 heads, 1+1 blocks; depth does not change
  the buffer: 1+1 and 2+2 blocks logged the same) at 128², 256², 512². Flash on logged
  134.9 / 159.9 / 350.1 MiB (the model: 142.6 / 190.1 / 380.2, the slope of the two larger
  sizes, so it errs high); flash off 180.9 / 476.1 MiB at 256² / 512² (the model: 183.4 / 474.8). At 1024² that
  is 1.1 GiB with ``flash_attn``, 2.7 GiB without (Klein 4B).
* ``te_compute``: Klein's 256 / 320 MiB were estimated from Qwen3's shapes (512 tokens x (3 x
  intermediate + 4 x hidden) f32 + scores, rounded up); measured since on a zero-weight Qwen3-4B
  of the real shape (36 layers, hidden 2560, FFN 9728; bench/memory_families.py): 75.00 MiB for
  Klein's padded 512 tokens (flash attention on or off alike), so Klein's figure errs high
  (kept). Z-Image's prompt is not padded: 14.06 / 28.03 / 64.24 MiB at 128 / 254 / 508 tokens;
  its figure, 80 MiB, covers a prompt of ~600 tokens.
* ``CONTEXT = 0.5 GiB``: the CUDA context and cuBLAS workspace on the card. An assumption: no
  GPU was lent to this session, nothing here ran on CUDA.

A set "fits" when ``peak <= total memory of the card`` (the card's size, not its free memory
right now: a running distill engine holds the model itself). The best set to download keeps a
``MARGIN`` (10 %) free. See :func:`fit` for the knob ladder when the plain set does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from distill_tui.recipe import BY_NAME, Recipe

GiB = 1024**3
MiB = 1024**2

TXT_TOKENS = 512
PATCH = 16
DIT_FLASH = 84.5  # bytes per token per unit of DiT width, flash attention on
DIT_NO_FLASH = 57.5  # the same with flash attention off (plus the f32 score matrix)
VAE_PER_PIXEL_PER_CH = 52.0
VAE_CH = 128
VAE_TILE = 512  # pixels per side of a tile (FLUX.2: 32 latents x 16)
VAE_TILE_LATENT = 32  # sd.cpp's default decode tile, in latents
CONTEXT = 512 * MiB
MARGIN = 0.10


@dataclass(frozen=True)
class Arch:
    """What the buffers depend on: one family's coefficients (``families.Family.memory``) with
    one of its variants' DiT and text encoder (Klein 4B / 9B)."""

    dit_hidden: int
    dit_heads: int
    te_compute: int  # bytes
    dit_flash: float = DIT_FLASH
    dit_no_flash: float = DIT_NO_FLASH
    dit_flash_base: int = 0  # bytes added to C_dit (flash on / off)
    dit_no_flash_base: int = 0
    txt_tokens: int = TXT_TOKENS
    seq_multiple: int = 1  # image and text tokens are each padded to a multiple of this
    patch: int = PATCH  # pixels per DiT token side
    vae_factor: int = 16  # pixels per latent side: a VAE tile is VAE_TILE_LATENT of them
    vae_ch: int = VAE_CH
    vae_per_pixel_per_ch: float = VAE_PER_PIXEL_PER_CH
    name: str = ""
    family: str = ""

    @property
    def vae_tile(self) -> int:
        """Pixels per side of a decode tile (sd.cpp's default: 32 latents)."""
        return VAE_TILE_LATENT * self.vae_factor


class NoMemoryFormula(ValueError):
    """The family has no memory formula (an upscaler): its fit is unknown."""

    def __init__(self, family_id: str) -> None:
        self.family_id = family_id
        super().__init__(f"no memory formula for family {family_id!r}: its fit is unknown")


_VARIANT_KEYS = ("dit_hidden", "dit_heads", "te_compute")
_ARCH_KEYS = tuple(f.name for f in fields(Arch) if f.name not in (*_VARIANT_KEYS, "name", "family"))


def _arch(spec: Any, variant: Any) -> Arch:
    mem = spec.memory
    return Arch(
        **{k: variant[k] for k in _VARIANT_KEYS},
        **{k: mem[k] for k in _ARCH_KEYS if k in mem},
        name=variant["name"],
        family=spec.id,
    )


def _family_archs() -> dict[str, Arch]:
    from distill_tui.families import FAMILIES

    return {
        v["name"]: _arch(spec, v)
        for spec in FAMILIES.values()
        for v in spec.memory.get("variants", ())
    }


#: every family variant's Arch by name, from ``families.FAMILIES``' memory entries.
#: FLUX.2 Klein 4B: hidden 3072 / 24 heads (5 double + 20 single blocks), Qwen3-4B encoder;
#: Klein 9B: hidden 4096 / 32 heads (8 + 24), Qwen3-8B (checked against the parameter count
#: of the Q8_0 files: 4.0 B and 9.4 B). Z-Image 6B: hidden 3840 / 30 heads x 128 (30 layers
#: + 2 + 2 refiners, sd.cpp's fixed ZImageParams), Qwen3-4B.
ARCHS: dict[str, Arch] = _family_archs()


def arch_of(model: Any) -> Arch:
    """The Arch of a catalog model: its family's coefficients (``model.spec.memory``) and the
    variant named by the model's id, else the first whose ``max_diffusion_bytes`` bound holds
    for the model's largest diffusion file. :class:`NoMemoryFormula` for a family without one
    (an upscaler)."""
    spec = model.spec
    variants = spec.memory.get("variants", ())
    if not variants:
        raise NoMemoryFormula(spec.id)
    for v in variants:
        if v["name"] == model.id:
            return _arch(spec, v)
    largest = max((q.size for q in model.section("diffusion").quants or ()), default=0)
    for v in variants:
        bound = v.get("max_diffusion_bytes")
        if bound is None or largest <= bound:
            return _arch(spec, v)
    return _arch(spec, variants[-1])


@dataclass(frozen=True)
class Knobs:
    """The engine's memory knobs (names as in the protocol's LoadRequest/GenerateRequest)."""

    flash_attn: bool = True
    offload_to_cpu: bool = False
    vae_tiling: bool = False
    keep_clip_on_cpu: bool = False
    keep_vae_on_cpu: bool = False

    def with_(self, *names: str) -> Knobs:
        return replace(self, **{n: True for n in names})


#: each knob's words: its recipe.PARAMS row's label, as a sentence reads it (``Param.phrase``)
KNOB_LABELS = {f.name: BY_NAME[f.name].phrase for f in fields(Knobs)}
#: what is tried, in order, when the plain set does not fit: cheapest first (tiling costs a
#: little time at decode; offload moves the weights over PCIe each run; a text encoder on the
#: CPU encodes slowly; a VAE on the CPU decodes very slowly)
KNOB_LADDER: tuple[tuple[str, ...], ...] = (
    ("flash_attn",),
    ("vae_tiling",),
    ("offload_to_cpu",),
    ("offload_to_cpu", "vae_tiling"),
    ("keep_clip_on_cpu", "vae_tiling"),
    ("offload_to_cpu", "keep_clip_on_cpu", "vae_tiling"),
    ("offload_to_cpu", "keep_clip_on_cpu", "keep_vae_on_cpu"),
)


def _ceil16(n: int) -> int:
    return (max(int(n), 1) + PATCH - 1) // PATCH * PATCH


def _ceil(n: int, m: int) -> int:
    return (max(int(n), 1) + m - 1) // m * m


def image_tokens(width: int, height: int, arch: Arch | None = None) -> int:
    patch = arch.patch if arch is not None else PATCH
    t = (_ceil(width, patch) // patch) * (_ceil(height, patch) // patch)
    return _ceil(t, arch.seq_multiple) if arch is not None else t


def dit_tokens(arch: Arch, width: int, height: int, txt_tokens: int | None = None) -> int:
    """Image tokens + text tokens as the DiT sees them (each padded to ``seq_multiple``)."""
    txt = arch.txt_tokens if txt_tokens is None else txt_tokens
    return image_tokens(width, height, arch) + _ceil(txt, arch.seq_multiple)


def dit_compute(
    arch: Arch, width: int, height: int, flash_attn: bool = True, txt_tokens: int | None = None
) -> int:
    """C_dit in bytes; ``txt_tokens`` None: the family's assumption (Klein's padded 512)."""
    t = dit_tokens(arch, width, height, txt_tokens)
    if flash_attn:
        return int(t * arch.dit_hidden * arch.dit_flash) + arch.dit_flash_base
    return (
        int(t * arch.dit_hidden * arch.dit_no_flash + arch.dit_heads * t * t * 4)
        + arch.dit_no_flash_base
    )


def vae_compute(width: int, height: int, tiling: bool = False, arch: Arch | None = None) -> int:
    """C_vae in bytes (decode); ``arch`` None: FLUX.2's VAE (Klein)."""
    a = arch if arch is not None else ARCHS["flux2-klein-4b"]
    w, h = _ceil16(width), _ceil16(height)
    if tiling:
        w, h = min(w, a.vae_tile), min(h, a.vae_tile)
    return int(a.vae_per_pixel_per_ch * a.vae_ch * w * h)


@dataclass(frozen=True)
class Estimate:
    peak: int  # bytes on the device
    weights: dict[str, int]  # per runner: bytes of weights ON THE DEVICE at its phase
    compute: dict[str, int]  # per runner: compute buffer on the device (0: runs on the CPU)
    phase: str  # the phase that sets the peak: encode | sample | decode
    ram: int  # bytes the set holds in RAM (weights kept there + CPU-side compute)

    def to_json(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "weights": self.weights,
            "compute": self.compute,
            "phase": self.phase,
            "ram": self.ram,
        }


def estimate(
    *,
    diffusion_bytes: int,
    text_encoder_bytes: int,
    vae_bytes: int,
    width: int,
    height: int,
    batch: int = 1,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    arch: Arch = ARCHS["flux2-klein-4b"],  # noqa: B008 - frozen
) -> Estimate:
    """Peak device memory (see the module docstring). ``batch`` is accepted and does not
    change the peak (images of a batch go through the runners one after another)."""
    del batch
    c_te, c_dit = arch.te_compute, dit_compute(arch, width, height, knobs.flash_attn)
    c_vae = vae_compute(width, height, knobs.vae_tiling, arch)
    te_dev = not knobs.keep_clip_on_cpu
    vae_dev = not knobs.keep_vae_on_cpu
    w = {
        "text_encoder": text_encoder_bytes if te_dev else 0,
        "diffusion": diffusion_bytes,
        "vae": vae_bytes if vae_dev else 0,
    }
    c = {"text_encoder": c_te if te_dev else 0, "diffusion": c_dit, "vae": c_vae if vae_dev else 0}
    phases = {"encode": "text_encoder", "sample": "diffusion", "decode": "vae"}
    if knobs.offload_to_cpu:
        per = {p: w[r] + c[r] for p, r in phases.items()}
    else:
        resident = sum(w.values())
        per = {p: resident + c[r] for p, r in phases.items()}
    phase = max(per, key=lambda p: per[p])
    ram = (0 if te_dev else text_encoder_bytes + c_te) + (0 if vae_dev else vae_bytes + c_vae)
    if knobs.offload_to_cpu:
        ram += sum(w.values())
    return Estimate(CONTEXT + per[phase], w, c, phase, ram)


# ---- an upscaler (ESRGAN) ----------------------------------------------------------------
@dataclass(frozen=True)
class UpscaleEstimate:
    """Peak device memory of one upscale: ``CONTEXT + W + C_tile``. ``W`` is the file's size
    (sd.cpp loads the weights as F16: a F32 ``.pth`` logs half of it, so this errs high by
    that half: 32 MiB for x4plus); ``C_tile = tile_bytes_per_px x tile²`` (the whole image
    when it is no larger than a tile), the same for every tile, depth-free."""

    tile: int
    weights: int
    compute: int
    peak: int

    def to_json(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "weights": self.weights,
            "compute": self.compute,
            "peak": self.peak,
        }


def upscale_compute(model: Any, tile: int, width: int = 0, height: int = 0) -> int:
    """The upscaler's compute buffer at ``tile`` px (``width`` x ``height``: the source, when
    known; an image within one tile is run whole)."""
    per = model.spec.memory.get("tile_bytes_per_px")
    if per is None:
        raise NoMemoryFormula(model.spec.id)
    if 0 < width <= tile and 0 < height <= tile:
        return int(per * width * height)
    return int(per * tile * tile)


def upscale_estimate(model: Any, *, tile: int, width: int = 0, height: int = 0) -> UpscaleEstimate:
    comp = model.component("upscaler")
    if comp is None or comp.file is None:
        raise NoMemoryFormula(model.spec.id)
    c = upscale_compute(model, tile, width, height)
    return UpscaleEstimate(tile, comp.file.size, c, CONTEXT + comp.file.size + c)


# ---- fit -----------------------------------------------------------------------------------
FitLevel = Literal["fits", "knobs", "no"]


@dataclass(frozen=True)
class Fit:
    level: FitLevel
    knobs: tuple[str, ...]  # knobs to turn ON to get there (empty for "fits"/"no")
    peak: int  # with those knobs (for "no": the smallest reachable peak)
    budget: int
    plain_peak: int  # with the user's knobs only

    @property
    def ok(self) -> bool:
        return self.level != "no"

    def knob_text(self) -> str:
        return " + ".join(KNOB_LABELS[k] for k in self.knobs)

    def short(self) -> str:
        """For a row: 'fits' / 'fits: offload to CPU' / 'too big'."""
        if self.level == "fits":
            return "fits"
        if self.level == "knobs":
            return f"fits: {self.knob_text()}"
        return "too big"

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "knobs": list(self.knobs),
            "peak": self.peak,
            "budget": self.budget,
            "plain_peak": self.plain_peak,
        }


def fit(
    budget: int,
    *,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    margin: float = 0.0,
    **set_args: Any,
) -> Fit:
    """Does the set fit ``budget`` bytes with the user's ``knobs``, else with which knobs?

    ``set_args`` are :func:`estimate`'s (sizes, width, height, arch). ``margin`` keeps that
    fraction of the budget free."""
    limit = int(budget * (1.0 - margin))
    plain = estimate(knobs=knobs, **set_args).peak
    if plain <= limit:
        return Fit("fits", (), plain, budget, plain)
    best = plain
    for extra in KNOB_LADDER:
        new = tuple(k for k in extra if not getattr(knobs, k))
        if not new:
            continue
        peak = estimate(knobs=knobs.with_(*new), **set_args).peak
        best = min(best, peak)
        if peak <= limit:
            return Fit("knobs", new, peak, budget, plain)
    return Fit("no", (), best, budget, plain)


# ---- sets of a catalog model -------------------------------------------------------------
@dataclass(frozen=True)
class SetFit:
    model_id: str
    diffusion: str
    text_encoder: str
    size: int  # bytes of the three files
    fit: Fit
    score: int  # quality rank (higher is better): 2 x diffusion index + encoder index

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "diffusion": self.diffusion,
            "text_encoder": self.text_encoder,
            "size": self.size,
            **self.fit.to_json(),
            "fit": self.fit.short(),
        }


@dataclass
class Recommendation:
    model_id: str
    width: int
    height: int
    budget: int
    best: SetFit | None
    sets: list[SetFit] = field(default_factory=list)


def set_fit(
    model: Any,
    diffusion: str,
    text_encoder: str,
    *,
    budget: int,
    width: int,
    height: int,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    margin: float = 0.0,
) -> Fit:
    """Fit of one set of a CatalogModel (quant ids)."""
    d = model.diffusion.get(diffusion)
    t = model.text_encoder.get(text_encoder)
    if d is None or t is None:
        raise KeyError(f"{model.id}: no set {diffusion}/{text_encoder}")
    arch = arch_of(model)
    return fit(
        budget,
        knobs=knobs,
        margin=margin,
        diffusion_bytes=d.size,
        text_encoder_bytes=t.size,
        vae_bytes=model.vae.size,
        width=width,
        height=height,
        arch=arch,
    )


def all_sets(
    model: Any,
    *,
    budget: int,
    width: int,
    height: int,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    margin: float = 0.0,
) -> list[SetFit]:
    out = []
    for i, d in enumerate(model.diffusion.quants):
        for j, t in enumerate(model.text_encoder.quants):
            f = set_fit(
                model,
                d.id,
                t.id,
                budget=budget,
                width=width,
                height=height,
                knobs=knobs,
                margin=margin,
            )
            out.append(SetFit(model.id, d.id, t.id, d.size + t.size + model.vae.size, f, 2 * i + j))
    return out


def knob_tier(f: Fit) -> int:
    """0: fits as it is (or with ``flash_attn`` / ``vae_tiling``, which cost little); 1: needs
    offload (the weights cross PCIe at every phase); 2: the text encoder on the CPU (slow
    prompt encoding); 3: the VAE on the CPU too (very slow decode); 4: does not fit."""
    if f.level == "no":
        return 4
    if "keep_vae_on_cpu" in f.knobs:
        return 3
    if "keep_clip_on_cpu" in f.knobs:
        return 2
    return 1 if "offload_to_cpu" in f.knobs else 0


def best_set(sets: Iterable[SetFit], floor: int = 0) -> SetFit | None:
    """The best set that fits: the best quality (score: the diffusion quant weighs twice the
    encoder's) among those that fit without offload, if one of them is at least as good as
    ``floor`` (the catalog's recommended set); else the best quality that fits with offload;
    only where nothing fits that way, with the text encoder / VAE on the CPU. None when
    nothing fits."""
    fitting = [s for s in sets if s.fit.ok]
    for tier in range(4):
        pool = [s for s in fitting if knob_tier(s.fit) <= tier]
        if pool and (tier > 0 or max(s.score for s in pool) >= floor):
            return min(pool, key=lambda s: (-s.score, knob_tier(s.fit), len(s.fit.knobs), -s.size))
    return None


def recommend(
    model: Any,
    *,
    budget: int,
    width: int,
    height: int,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
    margin: float = MARGIN,
) -> Recommendation:
    """Every set of ``model`` fitted with ``margin``; ``best`` is :func:`best_set`'s pick."""
    sets = all_sets(model, budget=budget, width=width, height=height, knobs=knobs, margin=margin)
    ids = {c: model.section(c).ids for c in ("diffusion", "textEncoder")}
    floor = 2 * ids["diffusion"].index(model.default_quant("diffusion")) + ids["textEncoder"].index(
        model.default_quant("textEncoder")
    )
    return Recommendation(model.id, width, height, budget, best_set(sets, floor), sets)


# ---- what the app knows: the size and knobs of the next generation, the budget -----------
def generation_size(settings: Any, model: Any) -> tuple[int, int]:
    """The generation width/height setting, else the catalog's recommended size."""
    gen = settings.generation
    return (gen.width or model.recommended.width, gen.height or model.recommended.height)


def _knobs(recipe: Recipe) -> Knobs:
    return Knobs(**{f.name: bool(recipe[f.name]) for f in fields(Knobs)})


def knobs_from_settings(settings: Any) -> Knobs:
    """The knobs the next generation will use (``settings.generation``)."""
    return _knobs(Recipe.resolve(None, settings.generation))


def knobs_from_engine(knobs: Any) -> Knobs:
    """The memory model's knobs from the form's ``generation.EngineKnobs``."""
    return _knobs(Recipe(knobs.values()))


def gpu_budget(machine: Any) -> int | None:
    """Bytes the memory model fits against: the card's total memory, or None (no GPU)."""
    gpu = machine.gpu if machine is not None else None
    return int(gpu.total) if gpu is not None and gpu.total else None


@dataclass
class CardFits:
    """What a Model Manager card shows for one model on a machine with a known GPU."""

    rows: dict[str, Fit]  # file key (catalog ``file``) -> fit of that quant in its set
    header: Fit  # fit of the set the header shows (selected, else the best)
    best: dict[str, str] | None  # the best set with margin: {component: quant id}


def card_fits(
    model: Any,
    selection: Any,
    *,
    budget: int,
    width: int,
    height: int,
    knobs: Knobs = Knobs(),  # noqa: B008 - frozen
) -> CardFits:
    """Fit of every quant row (paired with the other component's selected quant, else the
    best set's), of the header's set, and the best set with :data:`MARGIN`."""
    rec = recommend(model, budget=budget, width=width, height=height, knobs=knobs)
    best = (
        {"diffusion": rec.best.diffusion, "textEncoder": rec.best.text_encoder}
        if rec.best
        else None
    )

    def chosen(component: str) -> str:
        qid = selection.get(component)
        if qid and model.section(component).get(qid):
            return qid
        return best[component] if best else model.default_quant(component)

    d_sel, t_sel = chosen("diffusion"), chosen("textEncoder")

    def fit(diffusion: str, text_encoder: str) -> Any:
        return set_fit(
            model, diffusion, text_encoder, budget=budget, width=width, height=height, knobs=knobs
        )

    rows = {}
    for q in model.diffusion.quants:
        rows[q.file] = fit(q.id, t_sel)
    for q in model.text_encoder.quants:
        rows[q.file] = fit(d_sel, q.id)
    return CardFits(rows, fit(d_sel, t_sel), best)


def generation_warning(
    machine: Any, core: Any, width: int, height: int, knobs: Knobs | None = None
) -> str | None:
    """Why the active set will not fit the GPU at this size with the current knobs (``knobs``,
    else the settings'), and the knob that makes it fit; None when it fits, or the build does
    not use a GPU (then the engine runs from RAM)."""
    if machine is None or not getattr(machine, "build_uses_gpu", False):
        return None
    budget = gpu_budget(machine)
    settings = core.settings.settings
    model = core.catalog.get(settings.active_model_id)
    if budget is None or model is None:
        return None
    sel = core.settings.selection(model.id)
    d = sel.get("diffusion") or model.default_quant("diffusion")
    t = sel.get("textEncoder") or model.default_quant("textEncoder")
    try:
        f = set_fit(
            model,
            d,
            t,
            budget=budget,
            width=width,
            height=height,
            knobs=knobs if knobs is not None else knobs_from_settings(settings),
        )
    except KeyError:
        return None
    if f.level == "fits":
        return None
    need = f"{d} + {t} at {width}x{height} needs ~{f.plain_peak / GiB:.1f} GiB"
    have = f"the GPU has {budget / GiB:.1f} GiB"
    if f.level == "knobs":
        return f"{need}, {have}: turn on {f.knob_text()} to make it fit."
    return f"{need}, {have}: it does not fit even with offload; choose a smaller size or quant."
