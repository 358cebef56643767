"""App-owned generation service: the one running job, its progress, and the engine's state.

Widgets never talk to the :class:`~distill_tui.engine.client.EngineClient` directly: the
Generate screen asks :class:`GenerationService` to start or stop, and every widget that
shows progress, previews or the engine state reads :attr:`GenerationService.job` /
:attr:`GenerationService.engine_state` and subscribes for changes. The service lives as
long as the App, so leaving the Generate screen never stops a generation.

No textual import: the service is a plain object whose listeners are called on the event
loop that runs the engine client (the App's).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from distill_tui.bounds import text_problem
from distill_tui.formatting import recipe_label
from distill_tui.listeners import Listeners
from distill_tui.recipe import (  # noqa: F401 (SAMPLERS, SCHEDULERS: read from here too)
    BY_NAME,
    DEFAULT_STRENGTH,
    PARAMS,
    SAMPLERS,
    SCHEDULERS,
    Recipe,
)

if TYPE_CHECKING:
    # the engine protocol (pydantic models) is imported where a request is built or an event
    # read, not with this module: the Generate screen's first paint does neither (~15 ms)
    from distill_tui.context import CoreContext
    from distill_tui.engine.client import EngineClient
    from distill_tui.engine.protocol import (
        EngineEvent,
        GenerateRequest,
        ImageEvent,
        LoadRequest,
        Timings,
    )
    from distill_tui.settings import QuantSelection

log = logging.getLogger(__name__)

SIZE_PRESETS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (768, 768),
    (512, 512),
    (1024, 768),
    (768, 1024),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (256, 256),
    (64, 64),
)
JobPhase = Literal[
    "starting",
    "loading",
    "encoding",
    "sampling",
    "decoding",
    "saving",
    "done",
    "failed",
    "cancelled",
]
ChangeKind = Literal["job", "progress", "preview", "image", "finished", "engine"]


# ---- form values ----------------------------------------------------------------------


def check_size(text: str) -> str | None:
    """The reason ``text`` is not a valid width/height, or None (distill_tui.bounds)."""
    return text_problem("width", text)


def check_int(text: str, lo: int, hi: int) -> str | None:
    t = text.strip()
    if not t or not t.lstrip("-").isdigit():
        return "a whole number"
    n = int(t)
    if n < lo or n > hi:
        return f"between {lo} and {hi}"
    return None


def check_float(text: str, lo: float, hi: float) -> str | None:
    try:
        v = float(text.strip())
    except ValueError:
        return "a number"
    if v != v or v < lo or v > hi:  # NaN or out of range
        return f"between {lo:g} and {hi:g}"
    return None


def check_threads(text: str) -> str | None:
    """Engine threads: empty / ``auto`` = -1 = auto, else distill_tui.bounds' range."""
    t = text.strip()
    if t in ("", "auto"):
        return None
    return text_problem("n_threads", t)


def check_seed(text: str) -> str | None:
    t = text.strip()
    if t in ("", "-1", "random"):
        return None
    if not t.isdigit():
        return "a whole number ≥ 0, or empty for random"
    from distill_tui.engine.protocol import seed_problem

    return seed_problem(int(t))


@dataclass(frozen=True)
class EngineKnobs:
    """The engine's memory/speed knobs for one generation (defaults: ``settings.generation``)
    as the Generate form holds them; each field is the ``recipe.PARAMS`` row of its name."""

    flash_attn: bool = True
    offload_to_cpu: bool = False
    vae_tiling: bool = False
    keep_clip_on_cpu: bool = False
    keep_vae_on_cpu: bool = False
    n_threads: int = -1  # <= 0: auto (physical cores)

    def values(self) -> dict[str, Any]:
        """By ``PARAMS`` name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> EngineKnobs:
        return cls(**{f.name: recipe[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def from_settings(cls, gen: Any) -> EngineKnobs:
        return cls.from_recipe(Recipe.resolve(None, gen))

    def settings_update(self) -> dict[str, Any]:
        """The ``settings.generation`` fields these knobs are saved as."""
        return {str(BY_NAME[name].setting): v for name, v in self.values().items()}

    @classmethod
    def from_record_params(cls, params: dict[str, Any], fallback: EngineKnobs) -> EngineKnobs:
        """The knobs a history record (or PNG ``distill`` chunk) holds; what it lacks (an
        older record) comes from ``fallback``."""
        return cls.from_recipe(Recipe.from_record(params, fallback=Recipe(fallback.values())))


@dataclass(frozen=True)
class GenParams:
    """Validated form values: everything a generation needs besides the model (the picture's
    ``recipe.PARAMS`` rows; the knobs in :class:`EngineKnobs`)."""

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    steps: int = 4
    cfg_scale: float = 1.0
    seed: int = -1  # -1: random
    sampler: str = "euler"
    scheduler: str = "default"
    batch_count: int = 1
    ref_images: tuple[str, ...] = ()  # Klein edit references
    init_image: str = ""  # img2img
    strength: float = DEFAULT_STRENGTH
    loras: tuple[tuple[str, float], ...] = ()  # (name in the LoRA folder, weight)
    knobs: EngineKnobs | None = None  # None: settings.generation's
    #: the recipe rows the form does not show (``form="hidden"``: the engine's own knobs) as
    #: a record or a flag gave them, when not their default: (name, value)
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def needs_encoder(self) -> bool:
        """Reference or init images: the model loads with the VAE encoder."""
        return bool(self.ref_images or self.init_image)

    def recipe(self, knobs: EngineKnobs | None = None) -> Recipe:
        """The :class:`~distill_tui.recipe.Recipe` (the knobs: these params', else ``knobs``,
        else each row's default)."""
        k = self.knobs or knobs or EngineKnobs()
        picture = {p.name: getattr(self, p.name) for p in PARAMS if p.name in _PICTURE}
        return Recipe({**dict(self.extra), **picture, **k.values()})

    @classmethod
    def from_recipe(cls, recipe: Recipe, knobs: bool = True) -> GenParams:
        """The form's values of ``recipe`` (``knobs=False``: None, the settings' then)."""
        held = _PICTURE + tuple(f.name for f in dataclasses.fields(EngineKnobs))
        extra = tuple(
            (p.name, recipe[p.name])
            for p in PARAMS
            if p.name not in held and recipe[p.name] != p.default
        )
        return cls(
            **{name: recipe[name] for name in _PICTURE},
            knobs=EngineKnobs.from_recipe(recipe) if knobs else None,
            extra=extra,
        )

    def request(
        self,
        *,
        model_id: str,
        diffusion_quant: str,
        text_encoder_quant: str,
        output_dir: str,
        preview: bool = True,
        lora_dir: Path | None = None,
    ) -> GenerateRequest:
        """The engine request. LoRA names are resolved in ``lora_dir`` (raises
        ``loras.LoraError`` when one is not there)."""
        from distill_tui.resolver import ActivePaths

        paths = ActivePaths(model_id, diffusion_quant, text_encoder_quant, Path(), Path(), Path())
        return self.recipe().to_requests(paths, output_dir, lora_dir, preview=preview)[1]

    @classmethod
    def from_record_params(
        cls,
        params: dict[str, Any],
        seed: int | None = None,
        knobs_fallback: EngineKnobs | None = None,
    ) -> GenParams:
        """Form values from a history record's ``params`` (``Recipe.from_record``, the one
        reuse mapping). The engine knobs the record lacks (an older record) come from
        ``knobs_fallback``; without one and without any recorded knob, ``knobs`` stays None
        (the settings' then)."""
        recorded = any(params.get(p.name) is not None for p in PARAMS if p.side == "load")
        fallback = Recipe(knobs_fallback.values()) if knobs_fallback is not None else None
        recipe = Recipe.from_record(params, seed, fallback=fallback)
        return cls.from_recipe(recipe, knobs=recorded or knobs_fallback is not None)


#: GenParams' fields that are ``recipe.PARAMS`` rows of the picture (not knobs)
_PICTURE = tuple(
    f.name
    for f in dataclasses.fields(GenParams)
    if f.name in BY_NAME and not BY_NAME[f.name].is_knob
)


# ---- the job ---------------------------------------------------------------------------


class _JobFailed(Exception):
    """A generation that cannot start; the message is for the person."""


@dataclass
class Job:
    """The state of one generation, as the UI shows it."""

    number: int
    params: GenParams
    model_id: str
    diffusion_quant: str
    text_encoder_quant: str
    started: float
    phase: JobPhase = "starting"
    step: int = 0
    steps: int = 0
    seconds_per_step: float = 0.0
    image_index: int = 0
    preview_png: bytes | None = None
    preview_step: int = 0
    images: list[ImageEvent] = field(default_factory=list)
    timings: Timings | None = None
    seed: int | None = None
    error: str | None = None
    error_kind: str | None = None
    finished: float | None = None
    history_id: str | None = None

    @property
    def running(self) -> bool:
        return self.phase not in ("done", "failed", "cancelled")

    def elapsed(self, now: float) -> float:
        return (self.finished or now) - self.started

    @property
    def fraction(self) -> float:
        """Overall progress 0..1 across the batch (sampling only)."""
        batch = max(self.params.batch_count, 1)
        if self.phase == "done":
            return 1.0
        if not self.steps:
            return 0.0
        return min(1.0, (self.image_index + self.step / self.steps) / batch)


class GenerationService:
    """Starts, follows and stops generations; mirrors the engine's state for the UI."""

    def __init__(
        self,
        core: CoreContext,
        engine: Callable[[], EngineClient],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self._engine_getter = engine
        self.clock = clock
        self.job: Job | None = None
        self.last_seed: int | None = None
        self.engine_state: str = "not_started"
        self.engine_reason: str = ""
        self.backend: str = ""
        self.loaded_label: str = ""
        self._listeners: Listeners[ChangeKind] = Listeners("generation")
        #: the engine's events while no generation runs: an upscale's phases and tiles
        #: (distill_tui.upscale, run by the Gallery's u and the Generate form's option)
        self.upscale_events: Listeners[EngineEvent] = Listeners("upscale")
        self._count = 0

    # ---- wiring ---------------------------------------------------------------------
    def make_client(self, **kwargs: Any) -> EngineClient:
        """An EngineClient wired to this service (events, state, history record)."""
        from distill_tui.engine.client import EngineClient
        from distill_tui.outputs import History

        kwargs.setdefault("history", History(self.core.paths.history_file))
        with_log = self.core.paths.log_dir / "engine.log"
        try:
            with_log.parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("log_file", with_log)
        except OSError:
            pass
        return EngineClient(on_event=self.handle_event, on_state=self.handle_state, **kwargs)

    def subscribe(self, listener: Callable[[ChangeKind], None]) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def _changed(self, kind: ChangeKind) -> None:
        self._listeners.publish(kind)  # a UI bug never stops a generation

    @property
    def engine(self) -> EngineClient:
        return self._engine_getter()

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    # ---- engine callbacks (on the loop) ----------------------------------------------
    def handle_state(self, state: str) -> None:
        self.engine_state = state
        if state != "failed":
            self.engine_reason = ""
        try:
            client = self.engine
            model = client.loaded_model
        except Exception:
            model = None
        self.loaded_label = self._label_for(model) if model else ""
        if self.job and self.job.running and state == "loading":
            self._phase("loading")
        self._changed("engine")

    def _label_for(self, model_id: str) -> str:
        job = self.job
        if job and job.model_id == model_id:
            return recipe_label(model_id, job.diffusion_quant, job.text_encoder_quant)
        sel = self.core.settings.selection(model_id)
        if sel.diffusion_quant:
            return recipe_label(model_id, sel.diffusion_quant, sel.text_encoder_quant)
        return model_id

    def _phase(self, phase: JobPhase) -> None:
        if self.job is not None:
            self.job.phase = phase
            self._changed("progress")

    def handle_event(self, ev: EngineEvent) -> None:
        from distill_tui.engine.protocol import (
            ErrorEvent,
            ImageEvent,
            PhaseEvent,
            PreviewEvent,
            ProgressEvent,
            ReadyEvent,
        )

        if isinstance(ev, ReadyEvent):
            self.backend = ev.backend
            self._changed("engine")
            return
        job = self.job
        if job is None or not job.running:
            self.upscale_events.publish(ev)
            return
        if isinstance(ev, PhaseEvent):
            job.image_index = ev.image_index
            if ev.phase == "sampling":
                job.step = 0
            if ev.phase != "upscaling":  # an upscale's (distill_tui.upscale): not a generation's
                self._phase(ev.phase)
        elif isinstance(ev, ProgressEvent):
            if ev.phase == "sampling":
                job.phase = "sampling"
                job.step, job.steps = ev.step, ev.steps
                job.seconds_per_step = ev.seconds_per_step
                job.image_index = ev.image_index
                self._changed("progress")
        elif isinstance(ev, PreviewEvent):
            try:
                job.preview_png = base64.b64decode(ev.png_b64)
            except ValueError:
                return
            job.preview_step = ev.step
            self._changed("preview")
        elif isinstance(ev, ImageEvent):
            job.images.append(ev)
            job.seed = job.images[0].seed
            self._changed("image")
        elif isinstance(ev, ErrorEvent):
            job.error, job.error_kind = ev.message, ev.kind

    # ---- requests --------------------------------------------------------------------
    def _persist_choice(self, model_id: str, selection: QuantSelection) -> None:
        from distill_tui.reuse import adopt_recipe

        adopt_recipe(self.core, model_id, selection)

    def load_request(
        self,
        model_id: str,
        *,
        edit: bool = False,
        selection: QuantSelection | None = None,
        knobs: EngineKnobs | None = None,
    ) -> tuple[LoadRequest, Any]:
        paths = self.core.resolver.active_paths(model_id, selection)
        store = self.core.settings
        k = knobs or EngineKnobs.from_settings(store.settings.generation)
        family = self._family(model_id)
        req = Recipe(k.values()).load_request(paths, store.lora_dir, encoder=edit, family=family)
        return req, paths

    def _family(self, model_id: str) -> str | None:
        model = self.core.catalog.get(model_id)
        return model.family if model is not None else None

    async def generate(
        self,
        params: GenParams,
        model_id: str | None = None,
        selection: QuantSelection | None = None,
    ) -> Job | None:
        """Run one generation to its end (done / failed / cancelled). None if one is running.

        ``selection``: generate with these quants instead of the model's selected ones (a
        reused Gallery recipe); they — and ``model_id`` — become the saved choice, since the
        user generated with them."""
        if self.running:
            return None
        from distill_tui.engine.client import EngineError

        model_id = model_id or self.core.settings.settings.active_model_id
        knobs = params.knobs or EngineKnobs.from_settings(self.core.settings.settings.generation)
        if params.knobs is None:
            params = dataclasses.replace(params, knobs=knobs)
        paths = self.core.resolver.active_paths(model_id, selection)
        if selection is not None:
            self._persist_choice(model_id, selection)
        self._count += 1
        job = Job(
            number=self._count,
            params=params,
            model_id=model_id,
            diffusion_quant=paths.diffusion_quant,
            text_encoder_quant=paths.text_encoder_quant,
            started=self.clock(),
        )
        self.job = job
        self._changed("job")
        # From here on every way out ends the job (failed / cancelled / done): a job left
        # "starting" would lock the Generate screen (ctrl+g refused, nothing to stop).
        try:
            out_dir = self.core.settings.outputs_dir
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _JobFailed(
                    f"cannot create the output folder {out_dir}: {e.strerror or e}"
                ) from e
            from distill_tui.loras import LoraError

            try:
                load, req = params.recipe().to_requests(
                    paths,
                    str(out_dir),
                    self.core.settings.lora_dir,
                    preview=True,
                    family=self._family(model_id),
                )
            except LoraError as e:
                raise _JobFailed(str(e)) from e
            result = await self.engine.generate(load, req)
        except _JobFailed as e:
            return self._fail(job, str(e), "output")
        except EngineError as e:
            job.finished = self.clock()
            if e.kind == "cancelled":
                job.phase = "cancelled"
                job.error = "stopped"
            else:
                job.phase = "failed"
                job.error, job.error_kind = e.message, e.kind
                if e.kind in ("crash", "start", "protocol"):
                    self.engine_reason = e.message
                log.warning("generation failed (%s): %s", e.kind, e.message)
            self._changed("finished")
            return job
        except Exception as e:  # a bug or an unexpected OS error: still a finished job
            log.exception("generation failed")
            return self._fail(job, f"{type(e).__name__}: {e}", "internal")
        except BaseException:  # the worker was cancelled (app exit): the job ends too
            job.finished = self.clock()
            job.phase, job.error = "cancelled", "stopped"
            self._changed("finished")
            raise
        job.finished = self.clock()
        job.images = list(result.images) or job.images
        job.seed = result.seed
        job.timings = result.timings
        job.history_id = result.history_id
        job.phase = "done"
        self.last_seed = result.seed
        self._changed("finished")
        return job

    def _fail(self, job: Job, message: str, kind: str) -> Job:
        job.finished = self.clock()
        job.phase = "failed"
        job.error, job.error_kind = message, kind
        log.warning("generation failed (%s): %s", kind, message)
        self._changed("finished")
        return job

    async def cancel(self) -> bool:
        if not self.running:
            return False
        return await self.engine.cancel()

    async def unload(self) -> bool:
        """Free the loaded model. False if a generation is running."""
        if self.running:
            return False
        await self.engine.unload()
        self.loaded_label = ""
        self._changed("engine")
        return True

    async def switch_model(self, model_id: str) -> None:
        """The active model changed: reload it in a running engine (or just unload)."""
        if self.running or self._engine_getter is None:
            return
        client = self.engine
        if client.pid is None or client.loaded_model in (None, model_id):
            return
        if self.core.resolver.is_model_ready(model_id):
            load, _paths = self.load_request(model_id)
            await client.load(load, model_id)
        else:
            await client.unload()
        self.loaded_label = self._label_for(client.loaded_model) if client.loaded_model else ""
        self._changed("engine")

    def engine_line(self) -> str:
        """One line for the status bar: state (+ model and quants, or the reason)."""
        s = self.engine_state
        if s == "not_started":
            text = "not started"
        elif s == "starting":
            text = "starting…"
        elif s == "loading":
            text = "loading model…"
        elif s == "ready":
            text = (
                f"ready · {self.loaded_label}" if self.loaded_label else "ready (no model loaded)"
            )
        elif s == "busy":
            text = f"busy · {self.loaded_label}" if self.loaded_label else "busy"
        elif s == "failed":
            text = f"failed: {self.engine_reason}" if self.engine_reason else "failed"
        else:
            text = s
        return text
