"""Wire protocol between :class:`~distill_tui.engine.client.EngineClient` and the engine child.

JSON lines, one message per line, every message carrying ``v`` (:data:`PROTOCOL_VERSION`)
and a ``type`` discriminator. Both sides validate with pydantic. No textual import here.

Channels (decision, see ``child.py``): requests go parent -> child on the child's stdin;
events go child -> parent on the child's **original stdout**, which the child duplicates and
then points fd 1 at stderr before importing the native library, so the library's ``printf``
output can never corrupt the protocol. stderr is free-form log text the parent drains into a
bounded tail.

Request/response shape (one request at a time; the child processes them in order):

* ``load``     -> ``phase(loading)``, ``progress(phase=loading)``..., ``loaded`` | ``error``
  (a load whose paths and options equal the loaded model's answers ``loaded`` with
  ``reused=True`` at once, without a ``loading`` phase).
* ``generate`` -> ``phase(encoding)``, ``phase(sampling)``, ``progress``..., ``preview``...,
  ``phase(decoding)``, ``phase(saving)``, ``image`` (one per image), ``done`` | ``error``.
* ``upscale``  -> ``phase(loading)`` (a new upscaler only), ``phase(upscaling)``,
  ``progress(phase=upscaling)``... (tiles), ``phase(saving)``, ``upscaled`` | ``error``.
  The upscaler context is kept beside the generation model (see ``child.py``).
* ``unload``   -> ``unloaded``.
* ``shutdown`` -> the child exits 0.

The child writes the PNGs itself (no image bytes on the pipe) with the ``parameters`` text
chunk; the parent adds the history record (``outputs.History``). The ``ready`` event is sent
once, unprompted, when the child has imported the library.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from distill_tui.bounds import (
    CACHE_MODES,
    MAX_SEED,
    THRESHOLD_CACHE_MODES,
    check_all,
    problem,
    refusal,
    seed_problem,
)

__all__ = ["MAX_SEED", "seed_problem"]  # their home is distill_tui.bounds

PROTOCOL_VERSION = 1

Phase = Literal["loading", "encoding", "sampling", "decoding", "saving", "upscaling"]
ErrorKind = Literal[
    "load",  # the library could not load the files (NULL context); message has its ERROR lines
    "mismatch",  # text encoder width does not match the diffusion model (preflight)
    "missing_file",  # a model file or a reference image does not exist
    "bad_file",  # truncated / not a model file / wrong kind of file (preflight)
    "not_loaded",  # generate before any load
    "generate",  # the library raised during generation
    "bad_request",  # the request did not validate / unsupported parameter value
    "protocol",  # version mismatch or a non-JSON line
    "crash",  # (client side) the child died: signal / abort / segfault
    "cancelled",  # (client side) the generation was cancelled by ending the child
    "busy",  # (client side) a generation is already running
    "start",  # (client side) the child could not be started or did not become ready
]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore")
    v: int = PROTOCOL_VERSION


# ---- requests (parent -> child) ---------------------------------------------------------


class LoadRequest(_Msg):
    """Load (or keep) a model. Equal :meth:`key` -> the loaded context is reused."""

    type: Literal["load"] = "load"
    diffusion_model_path: str
    llm_path: str
    vae_path: str
    n_threads: int = -1  # -1: the physical cores, capped by the CPU affinity (child.py)
    flash_attn: bool = True
    offload_to_cpu: bool = False
    vae_decode_only: bool = True  # False is required for reference images (edits)
    keep_clip_on_cpu: bool = False
    keep_vae_on_cpu: bool = False
    enable_mmap: bool = False
    wtype: str = "default"
    lora_model_dir: str = ""  # where `<lora:name:w>` tags typed in a prompt are looked up
    # "at_runtime": a LoRA is applied per generation and leaves the weights untouched, so
    # the same seed gives the same image after a LoRA was used ("immediately" merges it into
    # f16 weights and removing it does not restore them bit for bit)
    lora_apply_mode: str = "at_runtime"
    # GiB budget for the engine's graph-cut (segmented) execution: a model larger than it
    # runs in pieces, each sent to the device in turn; 0: off (bounded by distill_tui.bounds)
    max_vram: float = 0.0
    diffusion_conv_direct: bool = False  # Conv2d "direct" kernels in the DiT (sd.cpp option)
    vae_conv_direct: bool = False  # the same in the VAE
    # the model family (distill_tui/families.py): which file signatures the preflight wants
    family: str = "flux2-klein"

    @model_validator(mode="after")
    def _in_bounds(self) -> LoadRequest:
        _bounded(self, ("n_threads", "max_vram"))
        return self

    def key(self) -> tuple:
        """What identifies a loaded context: every field but the envelope."""
        return tuple(sorted(self.model_dump(exclude={"v", "type"}).items()))


def _bounded(msg: BaseModel, names: tuple[str, ...]) -> None:
    """The last guard before the engine: every bounded field against the one table
    (``distill_tui.bounds``), refused in the words every surface uses."""
    values = {n: getattr(msg, n) for n in names if getattr(msg, n) is not None}
    refused = check_all(values)
    if refused is not None:
        name, value, reason = refused
        raise ValueError(refusal(name, value, reason, what=name))


class LoraSpec(BaseModel):
    """A LoRA applied to one generation: sent to the library as ``<lora:path:weight>``."""

    name: str  # as listed in the LoRA folder (the file name without its extension)
    path: str  # absolute path of the file
    weight: float = 1.0

    @model_validator(mode="after")
    def _taggable(self) -> LoraSpec:
        reason = problem("lora_weight", self.weight)
        if reason is not None:
            raise ValueError(
                refusal("lora_weight", self.weight, reason, f"LoRA {self.name} weight")
            )
        if ":" in self.path or ">" in self.path:  # the prompt tag could not carry it
            raise ValueError(f"a LoRA path cannot contain ':' or '>': {self.path}")
        return self


class GenerateRequest(_Msg):
    type: Literal["generate"] = "generate"
    id: str = Field(default="", description="echoed in every event of this request")
    prompt: str
    negative_prompt: str = ""
    # prompt, sizes, steps, cfg, seed, batch, strength, threads: bounded by distill_tui.bounds
    width: int = 1024
    height: int = 1024
    steps: int = 4
    cfg_scale: float = 1.0
    sampler: str = "euler"  # a stable_diffusion_cpp SAMPLE_METHOD_MAP name or "default"
    scheduler: str = "default"
    seed: int = -1  # < 0: random; the seed used is reported
    batch_count: int = 1
    ref_images: list[str] = Field(default_factory=list, description="paths (Klein edit)")
    preview: bool = False  # per-step `proj` previews (W/8 x H/8)
    preview_interval: int = Field(default=1, ge=1)
    vae_tiling: bool = False
    init_image: str | None = None  # img2img: the image to start from (needs the VAE encoder)
    strength: float = 0.75  # img2img: 0 keeps it, 1 replaces it
    loras: list[LoraSpec] = Field(default_factory=list)
    output_dir: str | None = None  # where PNGs go (time-sorted unique names)
    output_file: str | None = None  # exact path (batch: <stem>-<n><suffix>); wins over dir
    output_overwrite: bool = False  # output_file may replace a regular file (never anything else)
    # Recorded in the PNG `parameters` chunk and in history; not used by the library.
    model_id: str = ""
    diffusion_quant: str = ""
    text_encoder_quant: str = ""
    model_hash: str = ""  # A1111's "Model hash": the diffusion file's sha256, first 10 hex
    # The load options this image was made with (the client copies them from the LoadRequest;
    # None: not known). Recorded in the PNG and in history, so a reuse restores them.
    flash_attn: bool | None = None
    offload_to_cpu: bool | None = None
    keep_clip_on_cpu: bool | None = None
    keep_vae_on_cpu: bool | None = None
    n_threads: int | None = None
    max_vram: float | None = None
    diffusion_conv_direct: bool | None = None
    vae_conv_direct: bool | None = None
    # The engine's step cache: a step whose model output is predicted to change little reuses
    # the last one (the engine logs "<Mode> skipped N/M steps"). "disabled": every step runs.
    cache_mode: str = "disabled"
    # easycache / ucache: how much change is accepted before a step really runs (more: more
    # steps skipped); None: the engine's default for the mode (easycache 0.2, ucache 1.0)
    cache_threshold: float | None = None
    # the flow models' time shift (sigma schedule); None: the engine's default ("auto": FLUX.2
    # picks it from the size and steps)
    flow_shift: float | None = None
    # the upscaler each result is upscaled with after the generation (recipe's "upscaler" row;
    # the client side does it, distill_tui.upscale): recorded only, not used by the library
    upscaler: str = ""

    @model_validator(mode="after")
    def _in_bounds(self) -> GenerateRequest:
        if self.cache_mode not in CACHE_MODES:
            raise ValueError(f"cache mode {self.cache_mode!r}: one of {', '.join(CACHE_MODES)}")
        if self.cache_threshold is not None and self.cache_mode not in THRESHOLD_CACHE_MODES:
            raise ValueError(
                f"a cache threshold needs cache mode {' or '.join(THRESHOLD_CACHE_MODES)} "
                f"(not {self.cache_mode})"
            )
        _bounded(self, _GENERATE_BOUNDED)
        return self


_GENERATE_BOUNDED = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "batch_count",
    "seed",  # after batch_count: image i uses seed + i
    "strength",
    "n_threads",
    "max_vram",
    "cache_threshold",
    "flow_shift",
)


#: the upscaler's tile side in px (sd.cpp's default 128): the compute buffer grows with its
#: square (x4: a 128 tile is a 512x512 output tile). Measured on the CPU build, tiny 1-block
#: x4 model, 256x256 source: the engine child's peak RSS 0.49 GB at 128, 1.77 GB at 256
UPSCALE_TILE_DEFAULT = 128
UPSCALE_TILE_MIN = 32
UPSCALE_TILE_MAX = 256


class UpscaleRequest(_Msg):
    """Upscale one image with an ESRGAN file; the child writes the result (``texts``: the PNG
    text chunks, written verbatim: the parent built them from the source's)."""

    type: Literal["upscale"] = "upscale"
    id: str = ""
    upscaler_path: str
    image: str  # the source image (the parent checked its size; the child checks again)
    tile_size: int = Field(default=UPSCALE_TILE_DEFAULT, ge=UPSCALE_TILE_MIN, le=UPSCALE_TILE_MAX)
    n_threads: int = -1
    offload_to_cpu: bool = False
    texts: dict[str, str] = Field(default_factory=dict)
    seed: int = 0  # only for the file name in a folder (``<stamp>_<seed>_0.png``)
    output_dir: str | None = None
    output_file: str | None = None
    output_overwrite: bool = False

    @model_validator(mode="after")
    def _in_bounds(self) -> UpscaleRequest:
        _bounded(self, ("n_threads",))
        return self

    def key(self) -> tuple:
        """What identifies a loaded upscaler context."""
        return (self.upscaler_path, self.tile_size, self.n_threads, self.offload_to_cpu)


class UnloadRequest(_Msg):
    type: Literal["unload"] = "unload"


class ShutdownRequest(_Msg):
    type: Literal["shutdown"] = "shutdown"


Request = Annotated[
    LoadRequest | GenerateRequest | UpscaleRequest | UnloadRequest | ShutdownRequest,
    Field(discriminator="type"),
]

# ---- events (child -> parent) -----------------------------------------------------------


class DeviceInfo(BaseModel):
    name: str
    description: str = ""
    type: str = "CPU"  # CPU | GPU | IGPU | ACCEL
    memory_total: int | None = None  # bytes, when the backend reports it
    memory_free: int | None = None


class ReadyEvent(_Msg):
    type: Literal["ready"] = "ready"
    version: str  # stable-diffusion-cpp-python version
    backend: str  # "CPU", "CUDA", "Vulkan", ... (first non-CPU registry entry, else CPU)
    devices: list[DeviceInfo] = Field(default_factory=list)
    system_info: str = ""
    pid: int = 0


class PhaseEvent(_Msg):
    type: Literal["phase"] = "phase"
    id: str = ""
    phase: Phase
    image_index: int = 0  # sampling of image N (batch)


class ProgressEvent(_Msg):
    type: Literal["progress"] = "progress"
    id: str = ""
    phase: Phase = "sampling"  # "loading": step/steps count tensors; "decoding": VAE tiles
    step: int
    steps: int
    seconds_per_step: float = 0.0  # the library's running average
    image_index: int = 0


class PreviewEvent(_Msg):
    type: Literal["preview"] = "preview"
    id: str = ""
    step: int
    width: int
    height: int
    png_b64: str  # a small PNG (proj previews are W/8 x H/8)
    image_index: int = 0


class LoadedEvent(_Msg):
    type: Literal["loaded"] = "loaded"
    seconds: float
    reused: bool = False  # True: same paths and options, nothing was reloaded
    model_version: str = ""  # e.g. "Flux.2 klein" from the load log


class ImageEvent(_Msg):
    type: Literal["image"] = "image"
    id: str = ""
    path: str
    seed: int
    width: int
    height: int
    index: int


class Timings(BaseModel):
    load: float = 0.0  # 0 when the loaded model was reused
    encode: float = 0.0
    sample: float = 0.0
    decode: float = 0.0
    save: float = 0.0
    total: float = 0.0  # the generate request, child side (load excluded)
    # (GenerationResult.wall is the client-side round trip, load and IPC included)


class DoneEvent(_Msg):
    type: Literal["done"] = "done"
    id: str = ""
    seed: int  # seed of the first image; image i used seed + i
    timings: Timings
    images: list[ImageEvent]


class UpscaledEvent(_Msg):
    """The upscaled image is written: where, its size, the scale the model has, timings."""

    type: Literal["upscaled"] = "upscaled"
    id: str = ""
    path: str
    width: int
    height: int
    scale: int
    source_width: int
    source_height: int
    load_seconds: float = 0.0  # 0: the upscaler context was reused
    upscale_seconds: float = 0.0
    save_seconds: float = 0.0


class UnloadedEvent(_Msg):
    type: Literal["unloaded"] = "unloaded"


class ErrorEvent(_Msg):
    type: Literal["error"] = "error"
    id: str = ""
    kind: ErrorKind
    message: str
    log_tail: list[str] = Field(default_factory=list)


Event = Annotated[
    ReadyEvent
    | PhaseEvent
    | ProgressEvent
    | PreviewEvent
    | LoadedEvent
    | ImageEvent
    | DoneEvent
    | UpscaledEvent
    | UnloadedEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
EngineEvent = (
    ReadyEvent
    | PhaseEvent
    | ProgressEvent
    | PreviewEvent
    | LoadedEvent
    | ImageEvent
    | DoneEvent
    | UpscaledEvent
    | UnloadedEvent
    | ErrorEvent
)
EngineRequest = LoadRequest | GenerateRequest | UpscaleRequest | UnloadRequest | ShutdownRequest

_events: TypeAdapter[Any] = TypeAdapter(Event)
_requests: TypeAdapter[Any] = TypeAdapter(Request)


class ProtocolError(ValueError):
    """A line that is not a valid message of this protocol version."""


def dumps(msg: BaseModel) -> str:
    """One JSON line (with the trailing newline)."""
    return msg.model_dump_json() + "\n"


def _parse(line: str | bytes, adapter: TypeAdapter[Any]) -> Any:
    try:
        raw = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        raise ProtocolError(f"not JSON: {text[:200]!r}") from e
    if not isinstance(raw, dict):
        raise ProtocolError(f"not a JSON object: {str(raw)[:200]!r}")
    if raw.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {raw.get('v')!r}, expected {PROTOCOL_VERSION}")
    try:
        return adapter.validate_python(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise ProtocolError(f"invalid {raw.get('type')!r} message: {loc}: {first['msg']}") from e


def parse_event(line: str | bytes) -> EngineEvent:
    return _parse(line, _events)


def parse_request(line: str | bytes) -> EngineRequest:
    return _parse(line, _requests)
