"""``distill generate "PROMPT" ...``: one generation headless, through the engine child.

Defaults, weakest first: the catalog model's ``recommended`` values, then the user's
``settings.generation`` values, then the command-line flags. Progress (phase + step) goes to
stderr (a Rich bar on a terminal, plain lines otherwise); stdout gets only the saved path(s),
one per line, so scripts can capture them. Failures exit non-zero with one line (``CliError``):
model not ready (naming what is missing), engine errors, Ctrl-C (the child is ended first).
No textual import.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill_tui.catalog import CatalogModel, UnknownModelError
from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.engine.client import EngineClient, EngineError
from distill_tui.engine.protocol import (
    EngineEvent,
    ErrorEvent,
    GenerateRequest,
    LoadedEvent,
    LoadRequest,
    PhaseEvent,
    ProgressEvent,
)
from distill_tui.outputs import History
from distill_tui.recipe import BY_NAME, LOAD_SIDE, PARAMS, Recipe, feature_refused, knob_values
from distill_tui.resolver import ActivePaths, ModelNotReadyError
from distill_tui.settings import QuantSelection
from distill_tui.textsafe import visible
from distill_tui.upscale import UpscaleError, UpscaleOutcome, Upscaler

PHASE_TEXT = {
    "loading": "loading model",
    "encoding": "encoding prompt",
    "sampling": "sampling",
    "decoding": "decoding",
    "saving": "saving",
}


def _apply_reuse(args: argparse.Namespace, ctx: CoreContext, base: Recipe) -> Recipe:
    """``--reuse ID``: the record's recipe (``Recipe.from_record``, the Gallery's ``r`` rule:
    prompt, parameters, images, LoRAs, engine knobs, and the seed it used) over ``base`` (what
    an older record lacks), its model and quants (``args.reused_selection``)."""
    ref = getattr(args, "reuse", None)
    if not ref:
        return base
    from distill_tui.reuse import find_record, plan_reuse

    try:
        rec = find_record(ctx, ref)
    except KeyError as e:
        raise CliError(str(e.args[0])) from None
    plan = plan_reuse(ctx, rec)
    if plan.problem:
        raise CliError(f"cannot reuse {rec.id[:12]}: {plan.problem}")
    if plan.missing:
        sel = plan.selection
        raise CliError(
            f"{rec.id[:12]} was made with {plan.quants}; not downloaded: {plan.describe_missing()}"
            f"; run: distill models download {plan.model_id} --diffusion {sel.diffusion_quant} "
            f"--text-encoder {sel.text_encoder_quant}"
        )
    if args.model and args.model != plan.model_id:
        raise CliError(f"--model {args.model}: {rec.id[:12]} was made with {plan.model_id}")
    args.model = plan.model_id
    args.reused_selection = plan.selection
    # the same picture, not just the same recipe: the seed it used
    return Recipe.from_record(rec.params, rec.seed, fallback=base, record_id=rec.id[:12])


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line gives, by ``PARAMS`` name (None: not given)."""
    given = {p.name: getattr(args, p.dest, None) for p in PARAMS if p.flag}
    given["prompt"] = args.prompt or None
    typed: list[str] = given.get("loras") or []
    if typed:
        from distill_tui.loras import LoraError, parse_lora

        try:
            given["loras"] = [parse_lora(x) for x in typed]
        except LoraError as e:
            raise CliError(f"--lora: {e}") from None
    if given.get("seed") == -1 and getattr(args, "reuse", None):
        given["seed"] = None  # "-1" (the old default) keeps the record's seed
    return given


def build_recipe(args: argparse.Namespace, ctx: CoreContext) -> tuple[Recipe, CatalogModel]:
    """The one precedence (``Recipe.resolve``: the model's recommended values, the
    ``generation`` settings, a reused record, the flags), each bounded value checked against
    the one table before anything starts (a refusal names where the value came from)."""
    model, _ = _model_of(args, ctx)
    gd = ctx.settings.settings.generation
    base = Recipe.resolve(model.recommended, gd, family=model.family)
    reused = _apply_reuse(args, ctx, base)
    if reused is not base:
        model, _ = _model_of(args, ctx)
    recipe = reused.given(_given(args), named={"prompt": "the prompt"})
    return recipe, model


def build_requests(
    args: argparse.Namespace, ctx: CoreContext
) -> tuple[LoadRequest, GenerateRequest]:
    """The engine's two requests from the flags, the settings and the model's recommended
    values; every problem is a ``CliError`` here, before the engine starts (the checks run in
    this order: reuse, prompt, model, images, output, img2img, LoRAs, bounds)."""
    recipe, _model = build_recipe(args, ctx)
    if not recipe["prompt"]:
        raise CliError("a prompt is needed (or --reuse ID to generate one of the history again)")
    lacking = feature_refused(recipe, _model)  # before its files: the model never takes them
    if lacking is not None:
        raise CliError(visible(lacking))
    model, paths = _resolve_model(args, ctx, getattr(args, "reused_selection", None))
    refs = _ref_images(list(recipe["ref_images"]))
    out_file, out_dir = _output_target(args, ctx, recipe["batch_count"])
    init_image = _init_image(args, recipe)
    lora_dir = _lora_dir(args, ctx)
    refused = recipe.refused(BOUND_ORDER)
    if refused is not None:
        raise CliError(refused)
    recipe = recipe.replace(ref_images=refs, init_image=init_image or "")
    args.recipe = recipe
    from distill_tui.loras import LoraError

    try:
        return recipe.to_requests(
            paths,
            out_dir,
            lora_dir,
            output_file=out_file,
            overwrite=bool(getattr(args, "overwrite", False)),
            family=model.family,
        )
    except LoraError as e:  # named as given: the flag, or the reused record
        raise CliError(f"{recipe.sources.get('loras') or '--lora'}: {e}") from None
    except ValidationError as e:  # the protocol's last guard (LoRA weight ...)
        first = e.errors()[0]
        raise CliError(
            f"invalid {first['loc'][0] if first['loc'] else 'request'}: {first['msg']}"
        ) from None


#: the bounded values in the order they are checked (the seed after the batch)
BOUND_ORDER = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "batch_count",
    "seed",
    "n_threads",
    "max_vram",
    "cache_threshold",  # with the cache mode it needs
    "flow_shift",
    "strength",
)


def _model_of(args: argparse.Namespace, ctx: CoreContext) -> tuple[CatalogModel, None]:
    try:
        model = ctx.resolver.model(args.model)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    return generator_or_refuse(ctx, model), None


def generator_or_refuse(ctx: CoreContext, model: CatalogModel) -> CatalogModel:
    """``model`` when it makes images; else one line: what it is and what runs it."""
    if model.spec.is_generator and model.type == "image-generation":
        return model
    ids = ", ".join(m.id for m in ctx.catalog.of_type("image-generation")) or "none"
    if model.type == "upscaler":
        what = f"an upscaler (distill upscale IMAGE --upscaler {model.id})"
    else:
        what = f"a model of type {model.type!r}"
    raise CliError(
        visible(f"{model.id} is {what}, not an image-generation model; those are: {ids}")
    )


def _quants(args: argparse.Namespace, model: CatalogModel) -> dict[str, str]:
    """``--quant ROLE=Q`` (distill_tui.quantflag), keyed by the model's roles."""
    from distill_tui.quantflag import QuantFlagError, parse_quant_flags, resolve_roles

    try:
        return resolve_roles(model, parse_quant_flags(getattr(args, "quant", None)))
    except QuantFlagError as e:
        raise CliError(str(e)) from None


def _resolve_model(
    args: argparse.Namespace, ctx: CoreContext, selection: QuantSelection | None
) -> tuple[CatalogModel, ActivePaths]:
    """``--model`` (default: the active one) and its files (``--quant`` over ``selection``,
    else the model's selected quants); one line when it is not ready."""
    try:
        model = generator_or_refuse(ctx, ctx.resolver.model(args.model))
        quants = _quants(args, model)
        if quants:
            from distill_tui.quantflag import apply_to_selection

            selection = apply_to_selection(selection or ctx.resolver.selection(model.id), quants)
        paths = ctx.resolver.active_paths(model.id, selection)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    except ModelNotReadyError as e:
        raise CliError(
            f"model {e.model_id} is not ready: {'; '.join(e.missing)} "
            f"(see 'distill models list', 'distill models download {e.model_id}')"
        ) from None
    return model, paths


def _ref_images(given: list[str]) -> list[str]:
    """``--ref-image`` (or the record's): absolute paths (as the history records them), each
    an existing file."""
    refs = [str(Path(r).expanduser().resolve()) for r in given]
    for r in refs:
        if not Path(r).is_file():
            raise CliError(f"reference image not found: {r}")
    return refs


def _output_target(
    args: argparse.Namespace, ctx: CoreContext, batch: int
) -> tuple[str | None, str | None]:
    """(file, folder): ``-o FILE`` (its format checked now, before the engine starts) or a
    folder (``--out-dir``, else the outputs folder)."""
    if args.output:
        from distill_tui.outputs import output_file_problem, output_files, output_format_problem

        problem = output_format_problem(args.output)
        if problem:  # before the engine starts
            raise CliError(f"-o {args.output}: {problem}")
        try:  # a symlink is followed: a link to /dev/full is checked as /dev/full
            out = Path(args.output).expanduser().resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise CliError(f"-o {args.output}: cannot be resolved ({e})") from None
        overwrite = bool(getattr(args, "overwrite", False))
        for target in output_files(out, min(max(1, batch), 1000)):  # each of a batch
            problem = output_file_problem(target, overwrite)
            if problem:  # a device, FIFO or folder never; a file only with --overwrite
                raise CliError(f"-o {args.output}: {problem}")
        return str(out), None
    return None, str(
        Path(args.out_dir).expanduser().resolve() if args.out_dir else ctx.settings.outputs_dir
    )


def _init_image(args: argparse.Namespace, recipe: Recipe) -> str | None:
    """img2img: the init image (absolute, an existing file); ``--strength`` only with one."""
    init = recipe["init_image"]
    init_image = str(Path(init).expanduser().resolve()) if init else None
    if init_image and not Path(init_image).is_file():
        if Path(init_image).exists():  # /dev/zero, a FIFO, a folder: there, but no image
            raise CliError(f"init image {init_image}: not a regular file")
        raise CliError(f"init image not found: {init_image}")
    if getattr(args, "strength", None) is not None and not init_image:
        raise CliError("--strength needs --init-image (img2img)")
    return init_image


def _lora_dir(args: argparse.Namespace, ctx: CoreContext) -> Path:
    """The LoRA folder (``--lora-dir``, else the setting)."""
    return (
        Path(args.lora_dir).expanduser().resolve()
        if getattr(args, "lora_dir", None)
        else ctx.settings.lora_dir
    )


def pick_bounded(args: argparse.Namespace, ctx: CoreContext, model: CatalogModel) -> Recipe:
    """``distill compare``'s recipe: the one precedence and the one check, as ``distill
    generate``'s."""
    recipe = Recipe.resolve(
        model.recommended, ctx.settings.settings.generation, family=model.family
    )
    recipe = recipe.given(_given(args), named={"prompt": "the prompt"})
    refused = recipe.refused(BOUND_ORDER)
    if refused is not None:
        raise CliError(refused)
    return recipe


def step_column() -> Any:
    """Rich's "3/4" column, blank while the task has no total (a phase without steps)."""
    from rich.progress import MofNCompleteColumn
    from rich.text import Text

    class StepColumn(MofNCompleteColumn):
        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    return StepColumn()


def phase_task(progress: Any, task: Any, description: str, **fields: Any) -> Any:
    """A fresh indeterminate task for a new phase (returns its id). Rich's ``update`` treats
    ``total=None`` as "unchanged", so decoding showed "0/4" after sampling 3/4 (issue 22.13)."""
    if task is not None:
        progress.remove_task(task)
    return progress.add_task(description, total=None, **fields)


class _Reporter:
    """Phase + step progress on stderr."""

    def __init__(self, batch: int, quiet: bool = False):
        self.batch = batch
        self.quiet = quiet  # --quiet: no progress at all
        self.tty = sys.stderr.isatty() and not quiet
        self.progress = None
        self.task: Any = None  # a rich TaskID once the bar exists
        self.phase = ""
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("{task.description:<22}"),
                BarColumn(),
                step_column(),
                TextColumn("{task.fields[speed]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting engine", total=None, speed="")

    def _desc(self, phase: str, index: int) -> str:
        text = PHASE_TEXT.get(phase, phase)
        if phase == "sampling" and self.batch > 1:
            text += f" {index + 1}/{self.batch}"
        return text

    def __call__(self, ev: EngineEvent) -> None:
        if self.quiet:
            return
        if isinstance(ev, PhaseEvent):
            self.phase = ev.phase
            desc = self._desc(ev.phase, ev.image_index)
            if self.progress is not None:
                self.task = phase_task(self.progress, self.task, desc, speed="")
            else:
                print(f"distill: {desc}", file=sys.stderr, flush=True)
        elif isinstance(ev, ProgressEvent) and ev.phase == "sampling" and ev.steps > 0:
            speed = f"{ev.seconds_per_step:.2f} s/step" if ev.seconds_per_step else ""
            if self.progress is not None:
                self.progress.update(self.task, total=ev.steps, completed=ev.step, speed=speed)
            elif ev.step > 0:
                print(
                    f"distill: step {ev.step}/{ev.steps}"
                    + (f" (image {ev.image_index + 1}/{self.batch})" if self.batch > 1 else "")
                    + (f" {speed}" if speed else ""),
                    file=sys.stderr,
                    flush=True,
                )
        elif isinstance(ev, LoadedEvent) and not ev.reused and self.progress is None:
            print(f"distill: model loaded in {ev.seconds:.2f} s", file=sys.stderr, flush=True)
        elif isinstance(ev, ErrorEvent) and self.progress is not None:
            self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


async def _run(
    load: LoadRequest,
    gen: GenerateRequest,
    ctx: CoreContext,
    quiet: bool = False,
    upscaler: Upscaler | None = None,
):
    """Generate; with ``upscaler`` (``--upscale``) each image is then upscaled in the same
    engine child: (the result, the upscale outcomes - a record each, linked to its source)."""
    reporter = _Reporter(gen.batch_count, quiet)
    client = EngineClient(
        on_event=reporter,
        history=History(ctx.paths.history_file),
        log_file=ctx.paths.log_dir / "engine.log",
    )
    ctx.paths.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = await client.generate(load, gen)
        upscaled: list[UpscaleOutcome] = []
        if upscaler is not None:
            from distill_tui.upscale import upscale_image

            for path in result.paths:
                upscaled.append(
                    await upscale_image(
                        ctx, client, path, upscaler, output_dir=str(Path(path).parent)
                    )
                )
        return result, upscaled
    except asyncio.CancelledError:  # Ctrl-C: end the child before we go
        await client.cancel()
        raise
    finally:
        reporter.close()
        await client.shutdown()


def result_json(gen: GenerateRequest, result, load: LoadRequest | None = None) -> dict:
    """``distill generate --json`` (stable shape, version 1)::

    {"version": 1, "paths": [str], "seed": int, "model": str,
     "quants": {"diffusion": str, "textEncoder": str},
     "width": int, "height": int, "steps": int, "cfg": float, "sampler": str,
     "scheduler": str, "batch": int, "prompt": str, "negative": str,
     "timings": {"load", "encode", "sample", "decode", "total"},   (seconds)
     "knobs": {<each engine knob's json key>: value (None: not known),
               "refImages": [str], "initImage": str|null, "strength": float|null,
               "loras": [{"name", "weight"}], <every other row's key>: value}}

    ``knobs`` holds every recorded row the top does not (``Recipe.json``): what the history
    and the PNG hold.

    The keys are the ``PARAMS`` rows' (``Param.key``).
    """
    t = result.timings
    sizes = sorted({(i.width, i.height) for i in result.images}) or [(gen.width, gen.height)]
    recipe = Recipe.from_record({**gen.model_dump(), **(knob_values(load) if load else {})})
    knobs = recipe.json()
    if load is None:
        knobs.update({BY_NAME[n].key: None for n in LOAD_SIDE})
    picture = ("steps", "cfg_scale", "sampler", "scheduler", "batch_count", "prompt")
    return {
        "version": 1,
        "paths": [str(p) for p in result.paths],
        "seed": result.seed,
        "model": gen.model_id,
        "quants": {"diffusion": gen.diffusion_quant, "textEncoder": gen.text_encoder_quant},
        "width": sizes[0][0],
        "height": sizes[0][1],
        **{BY_NAME[n].key: recipe[n] for n in picture},
        BY_NAME["negative_prompt"].key: recipe["negative_prompt"],
        "timings": {
            "load": round(t.load, 4),
            "encode": round(t.encode, 4),
            "sample": round(t.sample, 4),
            "decode": round(t.decode, 4),
            "total": round(result.wall, 4),
        },
        "knobs": knobs,
    }


def _upscaler(ctx: CoreContext, gen: GenerateRequest) -> Upscaler | None:
    """``--upscale [ID]`` (or a reused record's): the upscaler, checked before the engine
    starts (one line when there is none)."""
    if not gen.upscaler:
        return None
    from distill_tui.recipe import UPSCALE_ACTIVE
    from distill_tui.upscale import resolve_upscaler

    try:
        return resolve_upscaler(ctx, None if gen.upscaler == UPSCALE_ACTIVE else gen.upscaler)
    except UpscaleError as e:  # the person's input: code 2, as distill upscale's
        line = str(e).replace("--upscaler PATH", "--upscale PATH")
        raise CliError(f"--upscale: {line}", e.code) from None


def run_generate(args: argparse.Namespace, ctx: CoreContext) -> int:
    load, gen = build_requests(args, ctx)
    upscaler = _upscaler(ctx, gen)
    if upscaler is not None:  # the record names the one used
        gen = gen.model_copy(update={"upscaler": upscaler.model_id or str(upscaler.path)})
    reused = getattr(args, "reused_selection", None)
    try:
        result, upscaled = asyncio.run(
            _run(load, gen, ctx, bool(getattr(args, "quiet", False)), upscaler=upscaler)
        )
    except UpscaleError as e:  # the image was made; its upscale was refused
        raise CliError(f"--upscale: {e}", e.code) from None
    except EngineError as e:
        detail = ""
        if e.kind == "crash" and e.log_tail:
            detail = f" (last log line: {e.log_tail[-1].strip()[:200]})"
        raise CliError(f"engine {e.kind}: {e.message}{detail}") from None
    if reused is not None:  # generated with the recipe: now the saved choice, as in the TUI
        from distill_tui.reuse import adopt_recipe

        adopt_recipe(ctx, gen.model_id, reused)
    t = result.timings
    if getattr(args, "json", False):
        doc = result_json(gen, result, load)
        if upscaler is not None:  # fields added (version 1): distill upscale --json's results
            doc["upscaled"] = [o.json() for o in upscaled]
        print(json.dumps(doc, indent=2))
        return 0
    if not getattr(args, "quiet", False):
        print(
            f"distill: seed {result.seed}; load {t.load:.2f} s, encode {t.encode:.2f} s, "
            f"sample {t.sample:.2f} s, decode {t.decode:.2f} s, total {result.wall:.2f} s",
            file=sys.stderr,
        )
    got = {(i.width, i.height) for i in result.images}
    if got and got != {(gen.width, gen.height)}:
        w, h = sorted(got)[0]
        print(
            f"distill: note: {gen.width}x{gen.height} was rounded up to {w}x{h} "
            "(the engine works in multiples of 16)",
            file=sys.stderr,
        )
    for p in result.paths:
        print(p)
    for o in upscaled:  # each upscaled image after the generated ones
        print(o.path)
    return 0
