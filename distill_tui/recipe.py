"""One recipe (issue 20): every generation parameter and engine knob declared once.

Each input of a generation - the prompt, the picture's parameters, the images and LoRAs it
starts from, and the engine knobs - is one :class:`Param` row of :data:`PARAMS`. The row
knows its one name (the engine protocol's field, which is also the history record's and the
PNG ``distill`` chunk's key), which request it goes in (``load`` or ``generate``), its
default, its one bound (``distill_tui.bounds``) or choice list, its label (the form's and the
PNG ``parameters`` text's), its CLI flag, its ``settings.generation`` key and the catalog's
recommended key, where the Generate form shows it, its ``--json`` key and its help text.

:class:`Recipe` is the values of one generation:

* :meth:`Recipe.resolve` - the one precedence (weakest first: the row's default, the
  catalog's recommended value, the ``generation`` setting, what was given);
* :meth:`Recipe.from_record` - the one reuse mapping (a history record's ``params``, or a
  PNG's ``distill`` chunk); what an older record lacks comes from a fallback recipe;
* :meth:`Recipe.to_requests` - the engine's ``LoadRequest`` and ``GenerateRequest``;
* :meth:`Recipe.record` - what the PNG, the history and ``--json`` store;
* :func:`check` - the one range and the one message.

No textual import; the engine protocol (pydantic) is imported where a request is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from distill_tui.bounds import (
    BOUNDS,
    CACHE_MODES,
    THRESHOLD_CACHE_MODES,
    Bound,
    problem,
    refusal,
    seed_problem,
    text_problem,
)

if TYPE_CHECKING:
    from distill_tui.engine.protocol import GenerateRequest, LoadRequest

Kind = Literal["text", "int", "float", "bool", "choice", "path", "paths", "loras"]
Side = Literal["load", "generate"]
Placement = Literal["main", "advanced", "hidden"]

#: sd.cpp's default img2img strength
DEFAULT_STRENGTH = 0.75
#: the word for "the engine's own default" of a row whose default is None (flow shift, cache
#: threshold): ``--flow-shift auto``, an empty form field
AUTO_WORD = "auto"
#: the ``upscaler`` row's value that asks for the active upscaler (the Upscalers tab's choice;
#: resolved to its id before a generation starts, so the record names the one used)
UPSCALE_ACTIVE = "active"


class _Auto:
    """A value given as ``auto``: the engine's default (None in the recipe), given on purpose
    (so it overrides a reused record's value, which None - not given - would not)."""

    def __repr__(self) -> str:
        return AUTO_WORD


AUTO = _Auto()

SAMPLERS: tuple[str, ...] = (
    "euler",
    "euler_a",
    "heun",
    "dpm2",
    "dpm++2s_a",
    "dpm++2m",
    "dpm++2mv2",
    "ipndm",
    "ipndm_v",
    "lcm",
    "ddim_trailing",
    "tcd",
    "res_multistep",
    "res_2s",
    "er_sde",
)
SCHEDULERS: tuple[str, ...] = (
    "default",
    "discrete",
    "karras",
    "exponential",
    "ays",
    "gits",
    "sgm_uniform",
    "simple",
    "smoothstep",
    "kl_optimal",
    "lcm",
    "bong_tangent",
)


#: the rows ``distill generate --json`` has at the top of its document (the rest are its
#: ``knobs``: :meth:`Recipe.json`)
PICTURE_ROWS = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "seed",
    "sampler",
    "scheduler",
    "batch_count",
)

#: the generate-side rows that are engine knobs (speed/memory), not the picture's properties
_GENERATE_KNOBS = ("vae_tiling", "cache_mode", "cache_threshold")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


@dataclass(frozen=True)
class Param:
    """One generation input, declared once."""

    name: str  #: the protocol field = the history record's / PNG chunk's key
    kind: Kind
    side: Side
    default: Any
    label: str  #: the PNG ``parameters`` label and the form's (unless ``form_label``)
    flag: str = ""  #: the CLI flag ("": the positional prompt)
    setting: str | None = None  #: the ``settings.generation`` key
    recommended: str | None = None  #: the catalog's ``Recommended`` attribute
    form: Placement = "main"
    form_id: str = ""  #: the Generate form's widget id ("" : none)
    form_label: str = ""  #: a shorter label where the form has no room ("" : ``label``)
    choices: tuple[str, ...] | None = None
    help: str = ""
    metavar: str | None = None
    json_key: str = ""  #: the ``--json`` key (""  : the name in camelCase)
    png: bool = True  #: written in the PNG ``parameters`` text (by ``label``)
    word: str = ""  #: one word for a narrow column (the Model Manager's fit marks)
    #: the flag's value when it is given without one (``--upscale`` alone); None: it needs one
    const: Any = None

    @property
    def bound(self) -> Bound | None:
        return BOUNDS.get(self.name)

    @property
    def dest(self) -> str:
        """The argparse destination of the flag."""
        return self.flag[2:].replace("-", "_") if self.flag else self.name

    @property
    def key(self) -> str:
        """The ``--json`` key."""
        return self.json_key or _camel(self.name)

    @property
    def short(self) -> str:
        """The form's label."""
        return self.form_label or self.label

    @property
    def phrase(self) -> str:
        """The label inside a sentence: lower case, but an acronym (``VAE tiling``) kept."""
        label = self.label
        return label if label[:2].isupper() else label[:1].lower() + label[1:]

    @property
    def tooltip(self) -> str:
        """The help as a sentence of its own (the form's tooltip): argparse's ``%(choices)s``
        spelled out."""
        text = self.help.replace("%(choices)s", ", ".join(self.choices or ()))
        text = text.replace("%%", "%")
        return text[:1].upper() + text[1:]

    @property
    def is_knob(self) -> bool:
        """An engine knob: a memory/speed switch, not a property of the picture."""
        return self.side == "load" or self.name in _GENERATE_KNOBS


def _knob(
    name: str, side: Side, label: str, flag: str, setting: str, help: str, **kw: Any
) -> Param:
    return Param(
        name, "bool", side, kw.pop("default", False), label, flag, setting,
        form="advanced", help=help, **kw,
    )  # fmt: skip


PARAMS: tuple[Param, ...] = (
    Param(
        "prompt", "text", "generate", "", "Prompt", form_id="prompt",
        help="the prompt (with --reuse: the record's by default)", png=False,
    ),
    Param(
        "negative_prompt", "text", "generate", "", "Negative prompt", "--negative",
        setting="negative_prompt", form_id="negative-prompt", form_label="Negative",
        metavar="TEXT", json_key="negative", png=False,
    ),
    Param(
        "width", "int", "generate", 1024, "Width", "--width", "width", "width",
        form_id="width", png=False,
    ),
    Param(
        "height", "int", "generate", 1024, "Height", "--height", "height", "height",
        form_id="height", png=False,
    ),
    Param("steps", "int", "generate", 4, "Steps", "--steps", "steps", "steps", form_id="steps"),
    Param(
        "cfg_scale", "float", "generate", 1.0, "CFG scale", "--cfg", "cfg_scale", "cfg_scale",
        form_id="cfg", form_label="CFG", json_key="cfg",
    ),
    Param(
        "seed", "int", "generate", -1, "Seed", "--seed", form_id="seed",
        help="-1 = random (the used seed is printed)",
    ),
    Param(
        "sampler", "choice", "generate", "euler", "Sampler", "--sampler", "sampler", "sampler",
        form_id="sampler", choices=SAMPLERS, metavar="NAME",
        help="default: the model's recommended one; one of %(choices)s",
    ),
    Param(
        "scheduler", "choice", "generate", "default", "Scheduler", "--scheduler", "scheduler",
        "scheduler", form_id="scheduler", choices=SCHEDULERS, metavar="NAME",
        help="default: the model's recommended one; one of %(choices)s",
    ),
    Param(
        "batch_count", "int", "generate", 1, "Batch size", "--batch", "batch_count",
        form_id="batch",
        form_label="Batch",
        help="images (default 1)", json_key="batch",
    ),
    Param(
        "ref_images", "paths", "generate", (), "Reference images", "--ref-image",
        form_id="ref-image", form_label="Edit refs", metavar="PATH",
        help="a reference image for a Klein edit (repeat for several)",
    ),
    Param(
        "init_image", "path", "generate", "", "Init image", "--init-image", form="advanced",
        form_id="init-image", form_label="Img2img", metavar="PATH",
        help="img2img: start from this image (see --strength)",
    ),
    Param(
        "strength", "float", "generate", DEFAULT_STRENGTH, "Denoising strength", "--strength",
        form="advanced", form_id="strength", form_label="Strength", metavar="S",
        help="img2img: how much of the init image is replaced, 0..1 (default 0.75)",
    ),
    Param(
        "loras", "loras", "generate", (), "LoRAs", "--lora", form="advanced", form_id="loras",
        metavar="NAME[:WEIGHT]",
        help="apply a LoRA from the LoRA folder (weight 1 by default; repeat for several)",
    ),
    # ---- engine knobs (default: the generation settings)
    Param(
        "n_threads", "int", "load", -1, "Threads", "--threads", "threads", form="advanced",
        form_id="threads", help="CPU threads; -1 = auto (physical cores)", json_key="threads",
    ),
    _knob(
        "flash_attn", "load", "Flash attention", "--flash-attn", "flash_attn",
        "flash attention", default=True, form_id="flash-attn", form_label="Flash attn",
        json_key="flashAttention", word="flash",
    ),
    _knob(
        "offload_to_cpu", "load", "Offload to CPU", "--offload-to-cpu", "offload_to_cpu",
        "keep the weights in RAM, on the GPU only in use", form_id="offload", word="offload",
    ),
    _knob(
        "vae_tiling", "generate", "VAE tiling", "--vae-tiling", "vae_tiling",
        "decode the image in tiles (less memory)", form_id="vae-tiling", word="tiling",
    ),
    _knob(
        "keep_clip_on_cpu", "load", "Text encoder on CPU", "--text-encoder-cpu",
        "keep_clip_on_cpu", "run the text encoder on the CPU", form_id="te-cpu",
        form_label="Text enc on CPU", json_key="textEncoderOnCpu", word="TE→CPU",
    ),
    _knob(
        "keep_vae_on_cpu", "load", "VAE on CPU", "--vae-cpu", "keep_vae_on_cpu",
        "run the VAE on the CPU", form_id="vae-cpu", json_key="vaeOnCpu", word="VAE→CPU",
    ),
    # ---- the engine's own knobs (issue 20.4; default: the engine's; README "Engine knobs")
    Param(
        "cache_mode", "choice", "generate", "disabled", "Step cache", "--cache-mode",
        form="advanced", form_id="cache-mode", form_label="Cache", choices=CACHE_MODES,
        metavar="MODE",
        help="reuse a step's result when the next is predicted to change little (faster, "
        "approximate): easycache (DiT models: FLUX.2, Z-Image ...), ucache (UNET: SD 1.x, "
        "SDXL), spectrum (both); default disabled; one of %(choices)s",
    ),
    Param(
        "cache_threshold", "float", "generate", None, "Cache threshold", "--cache-threshold",
        form="advanced", form_id="cache-threshold", form_label="Threshold", metavar="T|auto",
        help="easycache/ucache: more skips more steps (default auto: the engine's, easycache "
        "0.2, ucache 1)",
    ),
    Param(
        "flow_shift", "float", "generate", None, "Flow shift", "--flow-shift",
        form="advanced", form_id="flow-shift", metavar="S|auto", recommended="flow_shift",
        help="the flow models' time shift (SD3, Wan, Qwen-Image, Z-Image; FLUX.2 picks its "
        "own); default auto: the engine's",
    ),
    Param(
        "max_vram", "float", "load", 0.0, "Max VRAM (GiB)", "--max-vram", form="advanced",
        form_id="max-vram", form_label="VRAM GiB", metavar="GIB",
        help="a GPU budget: a model larger than it runs in segments (slower, fits); 0 = off",
    ),
    Param(
        "diffusion_conv_direct", "bool", "load", False, "Conv direct (DiT)",
        "--diffusion-conv-direct", form="advanced", form_id="diffusion-conv-direct",
        form_label="Conv direct DiT",
        help="direct Conv2d kernels in the diffusion model (GPU backends; FLUX.2 has none)",
    ),
    Param(
        "vae_conv_direct", "bool", "load", False, "Conv direct (VAE)", "--vae-conv-direct",
        form="advanced", form_id="vae-conv-direct", form_label="Conv direct VAE",
        help="direct Conv2d kernels in the VAE (faster on some GPU backends)",
    ),
    # ---- after the picture (issue 21.3): each result upscaled (distill_tui.upscale); the
    # record keeps the upscaler's id, the word "active" is only what the form / flag ask for
    Param(
        "upscaler", "text", "generate", "", "Upscale", "--upscale", form="advanced",
        form_id="upscale", form_label="each result (active one)", metavar="ID",
        const=UPSCALE_ACTIVE, png=False,
        help="upscale each image once it is made, with this upscaler (a catalog id or an ESRGAN "
        "file; alone: the active one); each result is a PNG and a record of its own",
    ),
)  # fmt: skip

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
#: the knobs, in PARAMS order
KNOBS: tuple[Param, ...] = tuple(p for p in PARAMS if p.is_knob)
LOAD_SIDE: tuple[str, ...] = tuple(p.name for p in PARAMS if p.side == "load")


def param(name: str) -> Param:
    return BY_NAME[name]


def check(name: str, value: Any) -> str | None:
    """Why ``value`` of parameter ``name`` is refused (the one rule, the one message), or
    None. A parameter without a bound: only its choices."""
    p = BY_NAME.get(name)
    if name in BOUNDS:
        return problem(name, value)
    if p is not None and p.choices is not None and value not in p.choices:
        return f"one of {', '.join(p.choices)}"
    return None


#: the rows a model may not take: row name -> (the family feature it needs, what the row is
#: called in a sentence, what the feature is called); ``families.FEATURES``
FEATURE_ROWS: dict[str, tuple[str, str, str]] = {
    "ref_images": ("edit_refs", "reference images", "edit references are"),
    "init_image": ("img2img", "init image", "img2img is"),
}


def feature_refused(recipe: Recipe, model: Any) -> str | None:
    """Why ``model`` (a ``catalog.CatalogModel``: its ``has_feature``) cannot take what the
    recipe gives (reference images without ``edit_refs``, an init image without
    ``img2img``), or None: the one rule (``distill generate``, ``--reuse`` and the Generate
    form). The line starts with where the value came from (its flag, the reused record)."""
    from distill_tui.families import FAMILIES

    for name, (feature, what, called) in FEATURE_ROWS.items():
        if not recipe[name] or model.has_feature(feature):
            continue
        having = [f.label for f in FAMILIES.values() if feature in f.features]
        which = f" ({called} a {' / '.join(having)} feature)" if having else ""
        where = recipe.sources.get(name) or BY_NAME[name].flag
        return f"{where}: {model.name} takes no {what}{which}"
    return None


def check_text(name: str, text: str) -> str | None:
    """The same rule for a form field's text."""
    return text_problem(name, text)


# ---- values ---------------------------------------------------------------------------


def _norm(p: Param, value: Any) -> Any:
    """A value in the recipe's shape (tuples, so equal recipes compare equal)."""
    if value is None or value is AUTO:
        return None
    if p.kind == "paths":
        return tuple(str(v) for v in value)
    if p.kind == "loras":
        out = []
        for lo in value:
            if isinstance(lo, Mapping):
                if lo.get("name"):
                    out.append((str(lo["name"]), float(lo.get("weight", 1.0))))
            else:
                name, weight = lo if isinstance(lo, (tuple, list)) else (lo.name, lo.weight)
                out.append((str(name), float(weight)))
        return tuple(out)
    if p.kind == "path":
        return str(value or "")
    if p.kind == "bool":
        return bool(value)
    if p.kind == "int":
        return int(value)
    if p.kind == "float":
        return float(value)
    return str(value)


@dataclass(frozen=True)
class Recipe:
    """The values of one generation, every :data:`PARAMS` row present."""

    values: Mapping[str, Any]
    #: where each value came from (a refusal names it): name -> "the width setting", ...
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        full = {p.name: p.default for p in PARAMS}
        full.update({k: v for k, v in self.values.items() if k in BY_NAME})
        object.__setattr__(self, "values", {k: _norm(BY_NAME[k], v) for k, v in full.items()})

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def replace(self, **changes: Any) -> Recipe:
        return Recipe({**self.values, **changes}, self.sources)

    @property
    def needs_encoder(self) -> bool:
        """Reference or init images: the model loads with the VAE encoder."""
        return bool(self["ref_images"] or self["init_image"])

    # ---- the one precedence ----------------------------------------------------------
    @classmethod
    def resolve(
        cls,
        recommended: Any = None,
        defaults: Any = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        named: Mapping[str, str] | None = None,
        family: str | None = None,
    ) -> Recipe:
        """Weakest first: each row's default, the model ``family``'s default
        (``families.FAMILIES``), the catalog's ``recommended`` value (with a family: only what
        the entry says, not the schema's fill-ins), the ``defaults`` (``settings.generation``;
        None there: not set), ``overrides`` (by name; None: not given). ``named``: how an
        override is called in a refusal (default: its flag)."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        overrides = overrides or {}
        fam: Mapping[str, Any] = {}
        said: Any = None  # the recommended fields the catalog entry sets (None: every one)
        if family is not None:
            from distill_tui.families import FAMILIES

            spec = FAMILIES.get(family)
            fam = spec.defaults if spec is not None else {}
            said = getattr(recommended, "model_fields_set", None)
        for p in PARAMS:
            what = p.flag[2:] if p.flag else p.label.lower()
            value: Any
            value, source = p.default, f"the default {what}"
            if fam.get(p.name) is not None:
                value, source = fam[p.name], f"the {family} default {what}"
            told = said is None or p.recommended in said
            if recommended is not None and p.recommended and told:
                rv = getattr(recommended, p.recommended, None)
                if rv is not None:
                    value, source = rv, f"the model's recommended {what}"
            if defaults is not None and p.setting:
                sv = getattr(defaults, p.setting, None)
                if sv is not None:
                    value, source = sv, f"the {what} setting"
            if overrides.get(p.name) is not None:
                value = overrides[p.name]
                source = (named or {}).get(p.name) or p.flag or p.label.lower()
            values[p.name], sources[p.name] = value, source
        return cls(values, sources)

    def given(self, overrides: Mapping[str, Any], named: Mapping[str, str] | None = None) -> Recipe:
        """This recipe with the ``overrides`` that are not None (what a person typed: the
        strongest); ``named``: how one is called in a refusal (default: its flag)."""
        values, sources = dict(self.values), dict(self.sources)
        for name, value in overrides.items():
            if value is None or name not in BY_NAME:
                continue
            p = BY_NAME[name]
            values[name] = value
            sources[name] = (named or {}).get(name) or p.flag or p.label.lower()
        return Recipe(values, sources)

    @classmethod
    def from_settings(cls, defaults: Any, recommended: Any = None) -> Recipe:
        return cls.resolve(recommended, defaults)

    # ---- the one reuse mapping -------------------------------------------------------
    @classmethod
    def from_record(
        cls,
        params: Mapping[str, Any],
        seed: int | None = None,
        fallback: Recipe | None = None,
        record_id: str = "",
    ) -> Recipe:
        """The recipe a history record's ``params`` (or a PNG ``distill`` chunk) holds;
        ``seed``: the seed used (the record keeps -1 when random was asked). What an older
        record lacks comes from ``fallback`` (the settings'), else each row's default."""
        base = fallback.values if fallback is not None else {}
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for p in PARAMS:
            v = params.get(p.name)
            if v is None or (p.kind == "choice" and not v):
                values[p.name] = base.get(p.name, p.default)
                if fallback is not None:
                    sources[p.name] = fallback.sources.get(p.name, "")
            else:
                values[p.name] = v
                what = (p.bound.label if p.bound else p.label).lower()
                sources[p.name] = f"record {record_id}'s {what}" if record_id else ""
        if seed is not None:
            values["seed"] = seed
        return cls(values, sources)

    # ---- what is stored --------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """Every value as the history record, the PNG chunk and the protocol spell it."""
        out: dict[str, Any] = {}
        for p in PARAMS:
            v = self.values[p.name]
            if p.kind == "paths":
                v = list(v)
            elif p.kind == "loras":
                v = [{"name": n, "weight": w} for n, w in v]
            elif p.kind == "path":
                v = v or None
            out[p.name] = v
        return out

    def json(self) -> dict[str, Any]:
        """The ``knobs`` part of ``distill generate --json`` (by each row's ``key``): every
        recorded row but the picture's (:data:`PICTURE_ROWS`, at the top of the document), so
        --json holds what the history and the PNG hold."""
        rec = self.record()
        out = {p.key: rec[p.name] for p in KNOBS}  # the engine knobs first, as before
        for p in PARAMS:
            if p.name not in PICTURE_ROWS:
                out.setdefault(p.key, rec[p.name])
        if not self["init_image"]:
            out[BY_NAME["strength"].key] = None
        return out

    # ---- the one check ---------------------------------------------------------------
    def refused(self, names: Iterable[str] | None = None) -> str | None:
        """The first refusal line (``"<where> <value>: <reason>"``) of the bounded values,
        or None. The seed is checked with the batch (image i uses seed + i)."""
        for name in names or [p.name for p in PARAMS]:
            if name not in BOUNDS:
                continue
            value = self.values[name]
            if value is None:  # the engine's default (flow shift, cache threshold)
                continue
            if name == "seed":
                reason = seed_problem(value, self.values["batch_count"] or 1)
            else:
                reason = problem(name, value)
            if reason is not None:
                where = self.sources.get(name) or None
                return refusal(name, value, reason, where)
        if names is None or "cache_threshold" in names:
            return self._cache_refused()
        return None

    def _cache_refused(self) -> str | None:
        """A cache mode the engine does not offer here, or a threshold no mode reads."""
        mode, p = self["cache_mode"], BY_NAME["cache_mode"]
        if mode not in CACHE_MODES:
            where = self.sources.get("cache_mode") or p.flag
            return f"{where} {mode}: one of {', '.join(CACHE_MODES)}"
        t = self["cache_threshold"]
        if t is not None and mode not in THRESHOLD_CACHE_MODES:
            where = self.sources.get("cache_threshold") or BY_NAME["cache_threshold"].flag
            return (
                f"{where} {t:g}: needs {p.flag} {' or '.join(THRESHOLD_CACHE_MODES)} (not {mode})"
            )
        return None

    # ---- the one request builder -----------------------------------------------------
    def load_request(
        self,
        paths: Any,
        lora_dir: Path | str | None,
        *,
        encoder: bool | None = None,
        family: str | None = None,
    ) -> LoadRequest:
        """The ``LoadRequest`` alone (the model's files and the load-side knobs); ``encoder``:
        load the VAE encoder (default: when the recipe has reference or init images);
        ``family``: the model's (default: ``paths.family``)."""
        return _load_request(
            self, paths, lora_dir, self.needs_encoder if encoder is None else encoder, family
        )

    def to_requests(
        self,
        paths: Any,
        output: str | None,
        lora_dir: Path | str | None,
        *,
        output_file: str | None = None,
        overwrite: bool = False,
        preview: bool = False,
        family: str | None = None,
    ) -> tuple[LoadRequest, GenerateRequest]:
        """The engine's two requests: ``paths`` (``resolver.ActivePaths``) names the model's
        files and quants, ``output`` the folder (or ``output_file`` the file) the images go
        to. LoRA names are resolved in ``lora_dir`` (raises ``loras.LoraError``); a value out
        of its bound raises pydantic's ValidationError (the protocol's last guard)."""
        from distill_tui.engine.protocol import GenerateRequest
        from distill_tui.loras import lora_specs

        rec = self.record()
        folder = Path(lora_dir) if lora_dir is not None else Path(".")
        gen_values = {
            p.name: rec[p.name] for p in PARAMS if p.side == "generate" and p.kind != "loras"
        }
        load = self.load_request(paths, folder, family=family)
        loras = lora_specs(folder, self["loras"]) if self["loras"] else []
        gen = GenerateRequest(
            **gen_values,
            loras=loras,
            preview=preview,
            output_dir=None if output_file else output,
            output_file=output_file,
            output_overwrite=overwrite,
            model_id=paths.model_id,
            diffusion_quant=paths.diffusion_quant,
            text_encoder_quant=paths.text_encoder_quant,
            model_hash=(getattr(paths, "diffusion_sha256", "") or "")[:10],
        )
        return load, gen


def model_slots(paths: Any, family: str | None = None) -> tuple[str, dict[str, str]]:
    """(family, {engine slot: path}) of the model's active files: each component's file goes
    to the slot its family loads that role into (``families.FAMILIES``). ``paths`` is a
    ``resolver.ActivePaths``: its ``slots`` (engine slot -> path) when it has them, else its
    diffusion / text encoder / VAE trio."""
    fam = family or getattr(paths, "family", None) or "flux2-klein"
    slots = getattr(paths, "slots", None)
    if slots:
        return fam, {slot: str(p) for slot, p in slots.items()}
    trio = (
        ("diffusion_model_path", "diffusion"),
        ("llm_path", "text_encoder"),
        ("vae_path", "vae"),
    )
    return fam, {slot: str(getattr(paths, attr)) for slot, attr in trio}


def _load_request(
    recipe: Recipe,
    paths: Any,
    lora_dir: Path | str | None,
    encoder: bool,
    family: str | None = None,
) -> LoadRequest:
    from distill_tui.engine.protocol import LoadRequest

    rec = recipe.record()
    fam, slots = model_slots(paths, family)
    named: dict[str, Any] = {**slots}  # the model's files by engine slot (+ its family)
    if "family" in LoadRequest.model_fields:
        named["family"] = fam
    return LoadRequest(
        **named,
        vae_decode_only=not encoder,
        lora_model_dir=str(lora_dir if lora_dir is not None else Path(".")),
        **{p.name: rec[p.name] for p in PARAMS if p.side == "load"},
    )


def knob_values(req: Any) -> dict[str, Any]:
    """The load-side knobs of a ``LoadRequest`` (what the image records it was made with)."""
    return {name: getattr(req, name) for name in LOAD_SIDE}


def replace(recipe: Recipe, **changes: Any) -> Recipe:
    return dataclasses.replace(recipe, values={**recipe.values, **changes})


def _number_or_auto(text: str) -> float | _Auto:
    """A flag's number, or ``auto`` (the engine's default)."""
    if text.strip().lower() == AUTO_WORD:
        return AUTO
    return float(text)


_number_or_auto.__name__ = f"number or {AUTO_WORD!r}"  # argparse: "invalid number or 'auto' value"


def cli_options(p: Param) -> dict[str, Any]:
    """``argparse.add_argument`` keywords of a row's flag (not given: None, so the setting,
    the record or the recommended value applies)."""
    import argparse

    kw: dict[str, Any] = {"dest": p.dest, "default": None}
    if p.help:
        kw["help"] = p.help
    if p.metavar:
        kw["metavar"] = p.metavar
    if p.kind == "bool":
        kw["action"] = argparse.BooleanOptionalAction
    elif p.kind in ("paths", "loras"):
        kw["action"] = "append"
    elif p.kind == "int":
        kw["type"] = int
    elif p.kind == "float":
        kw["type"] = _number_or_auto if p.default is None else float
    if p.choices is not None:
        kw["choices"] = p.choices
    if p.const is not None:
        kw.update(nargs="?", const=p.const)
    return kw
