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
    LoraSpec,
    PhaseEvent,
    ProgressEvent,
)
from distill_tui.outputs import History
from distill_tui.resolver import ActivePaths, ModelNotReadyError
from distill_tui.settings import GenerationDefaults, QuantSelection

PHASE_TEXT = {
    "loading": "loading model",
    "encoding": "encoding prompt",
    "sampling": "sampling",
    "decoding": "decoding",
    "saving": "saving",
}


def _apply_reuse(args: argparse.Namespace, ctx: CoreContext):  # type: ignore[no-untyped-def]
    """``--reuse ID``: the record's prompt, parameters, model and quants become the defaults of
    the flags (the Gallery's rule, distill_tui/reuse.py); returns the quants to use or None."""
    ref = getattr(args, "reuse", None)
    if not ref:
        return None
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
    p = rec.params
    if args.model and args.model != plan.model_id:
        raise CliError(f"--model {args.model}: {rec.id[:12]} was made with {plan.model_id}")
    args.model = plan.model_id
    typed = {d for d in _RECIPE_DESTS.values() if getattr(args, d) not in (None, -1)}
    args.prompt = args.prompt or p.get("prompt")
    if args.negative is None:
        args.negative = p.get("negative_prompt")
    for flag, key in (("width", "width"), ("height", "height"), ("steps", "steps")):
        if getattr(args, flag) is None and p.get(key) is not None:
            setattr(args, flag, int(p[key]))
    if args.cfg is None and p.get("cfg_scale") is not None:
        args.cfg = float(p["cfg_scale"])
    for flag in ("sampler", "scheduler"):
        if getattr(args, flag) is None and p.get(flag):
            setattr(args, flag, p[flag])
    if args.seed == -1:
        args.seed = rec.seed  # the same picture, not just the same recipe
    # a bound refusal names the record, not a flag nobody typed
    args.from_record = (rec.id[:12], {d for d in _RECIPE_DESTS.values() if d not in typed})
    args.reused_selection = plan.selection
    return plan.selection


def build_requests(
    args: argparse.Namespace, ctx: CoreContext
) -> tuple[LoadRequest, GenerateRequest]:
    """The engine's two requests from the flags, the settings and the model's recommended
    values; every problem is a ``CliError`` here, before the engine starts (the checks run in
    this order: reuse, prompt, model, images, output, img2img, LoRAs, batch and seed)."""
    selection = _apply_reuse(args, ctx)
    if not args.prompt:
        raise CliError("a prompt is needed (or --reuse ID to generate one of the history again)")
    model, paths = _resolve_model(args, ctx, selection)
    refs = _ref_images(args)
    out_file, out_dir = _output_target(args, ctx)
    init_image, strength = _init_image(args)
    lora_dir, loras = _loras(args, ctx)
    rec = model.recommended
    gd = ctx.settings.settings.generation
    picked = pick_bounded(args, gd, rec)
    load = _load_request(args, gd, paths, lora_dir, decode_only=not (refs or init_image))
    try:
        gen = GenerateRequest(
            prompt=args.prompt,
            negative_prompt=picked["negative_prompt"],
            width=picked["width"],
            height=picked["height"],
            steps=picked["steps"],
            cfg_scale=picked["cfg_scale"],
            sampler=_pick(args.sampler, gd.sampler, rec.sampler),
            scheduler=_pick(args.scheduler, gd.scheduler, rec.scheduler),
            seed=args.seed,
            batch_count=args.batch,
            ref_images=refs,
            init_image=init_image,
            strength=strength if strength is not None else 0.75,
            loras=loras,
            vae_tiling=_knob(args, "vae_tiling", gd.vae_tiling),
            output_dir=out_dir,
            output_file=out_file,
            output_overwrite=bool(getattr(args, "overwrite", False)),
            model_id=paths.model_id,
            diffusion_quant=paths.diffusion_quant,
            text_encoder_quant=paths.text_encoder_quant,
        )
    except ValidationError as e:  # range checks (width, steps ...)
        first = e.errors()[0]
        raise CliError(f"invalid {first['loc'][0]}: {first['msg']}") from None
    return load, gen


def _resolve_model(
    args: argparse.Namespace, ctx: CoreContext, selection: QuantSelection | None
) -> tuple[CatalogModel, ActivePaths]:
    """``--model`` (default: the active one) and its files; one line when it is not ready."""
    try:
        model = ctx.resolver.model(args.model)
        paths = ctx.resolver.active_paths(model.id, selection)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    except ModelNotReadyError as e:
        raise CliError(
            f"model {e.model_id} is not ready: {'; '.join(e.missing)} "
            f"(see 'distill models list', 'distill models download {e.model_id}')"
        ) from None
    return model, paths


def _ref_images(args: argparse.Namespace) -> list[str]:
    """``--ref-image``: absolute paths (as the history records them), each an existing file."""
    refs = [str(Path(r).expanduser().resolve()) for r in (args.ref_image or [])]
    for r in refs:
        if not Path(r).is_file():
            raise CliError(f"reference image not found: {r}")
    return refs


def _output_target(args: argparse.Namespace, ctx: CoreContext) -> tuple[str | None, str | None]:
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
        for target in output_files(out, min(max(1, args.batch), 1000)):  # each of a batch
            problem = output_file_problem(target, overwrite)
            if problem:  # a device, FIFO or folder never; a file only with --overwrite
                raise CliError(f"-o {args.output}: {problem}")
        return str(out), None
    return None, str(
        Path(args.out_dir).expanduser().resolve() if args.out_dir else ctx.settings.outputs_dir
    )


def _init_image(args: argparse.Namespace) -> tuple[str | None, float | None]:
    """img2img: ``--init-image`` (absolute) and ``--strength`` (only with it, 0..1)."""
    init = getattr(args, "init_image", None)
    init_image = str(Path(init).expanduser().resolve()) if init else None
    if init_image and not Path(init_image).is_file():
        if Path(init_image).exists():  # /dev/zero, a FIFO, a folder: there, but no image
            raise CliError(f"init image {init_image}: not a regular file")
        raise CliError(f"init image not found: {init_image}")
    strength = getattr(args, "strength", None)
    if strength is not None and not init_image:
        raise CliError("--strength needs --init-image (img2img)")
    if strength is not None:
        from distill_tui.bounds import problem, refusal

        reason = problem("strength", strength)
        if reason is not None:
            raise CliError(refusal("strength", strength, reason))
    return init_image, strength


def _loras(args: argparse.Namespace, ctx: CoreContext) -> tuple[Path, list[LoraSpec]]:
    """The LoRA folder (``--lora-dir``, else the setting) and the ``--lora`` choices in it."""
    lora_dir = (
        Path(args.lora_dir).expanduser().resolve()
        if getattr(args, "lora_dir", None)
        else ctx.settings.lora_dir
    )
    from distill_tui.loras import LoraError, lora_specs, parse_lora

    try:
        loras = lora_specs(lora_dir, [parse_lora(x) for x in getattr(args, "lora", None) or []])
    except LoraError as e:
        raise CliError(f"--lora: {e}") from None
    return lora_dir, loras


def _knob(args: argparse.Namespace, name: str, setting: Any) -> Any:
    """An engine knob's flag (None: not given) over the generation setting."""
    value = getattr(args, name, None)
    return setting if value is None else value


def _pick(flag: Any, setting: Any, recommended: Any) -> Any:
    """Defaults, weakest first: the model's recommended value, the setting, the flag."""
    if flag is not None:
        return flag
    return setting if setting is not None else recommended


def _load_request(
    args: argparse.Namespace,
    gd: GenerationDefaults,
    paths: ActivePaths,
    lora_dir: Path,
    decode_only: bool,
) -> LoadRequest:
    """The model's files and the engine knobs (``decode_only``: no image is encoded)."""
    return LoadRequest(
        diffusion_model_path=str(paths.diffusion),
        llm_path=str(paths.text_encoder),
        vae_path=str(paths.vae),
        n_threads=args.threads if args.threads is not None else gd.threads,
        flash_attn=_knob(args, "flash_attn", gd.flash_attention),
        offload_to_cpu=_knob(args, "offload_to_cpu", gd.offload_to_cpu),
        keep_clip_on_cpu=_knob(args, "text_encoder_cpu", gd.text_encoder_on_cpu),
        keep_vae_on_cpu=_knob(args, "vae_cpu", gd.vae_on_cpu),
        vae_decode_only=decode_only,
        lora_model_dir=str(lora_dir),
    )


#: the bounded inputs ``--reuse`` may fill in: bound name -> argparse dest
_RECIPE_DESTS = {
    "prompt": "prompt",
    "negative_prompt": "negative",
    "width": "width",
    "height": "height",
    "steps": "steps",
    "cfg_scale": "cfg",
    "seed": "seed",
}


def pick_bounded(args: argparse.Namespace, gd: GenerationDefaults, rec: Any) -> dict[str, Any]:
    """The bounded values (flag > setting > the model's recommended one) of ``distill
    generate`` and ``distill compare``, each checked against the one table,
    ``distill_tui.bounds``, before anything starts: a refusal names the flag (or where the
    value came from) and gives the table's words."""
    from distill_tui.bounds import BOUNDS, check_all, refusal

    given: dict[str, tuple[Any, str | None]] = {"prompt": (args.prompt, "the prompt")}
    for name, flag, setting, recommended in (
        ("negative_prompt", args.negative, gd.negative_prompt, None),
        ("width", args.width, gd.width, rec.width),
        ("height", args.height, gd.height, rec.height),
        ("steps", args.steps, gd.steps, rec.steps),
        ("cfg_scale", args.cfg, gd.cfg_scale, rec.cfg_scale),
        ("batch_count", getattr(args, "batch", 1), None, None),
        ("seed", args.seed, None, None),
        ("n_threads", args.threads, gd.threads, None),
    ):
        if flag is not None:
            given[name] = (flag, None)
        elif setting is not None:
            given[name] = (setting, f"the {BOUNDS[name].flag[2:]} setting")
        else:
            given[name] = (recommended, f"the model's recommended {BOUNDS[name].flag[2:]}")
    record, filled = getattr(args, "from_record", ("", set()))
    for name, dest in _RECIPE_DESTS.items():
        if dest in filled:
            given[name] = (given[name][0], f"record {record}'s {BOUNDS[name].label.lower()}")
    refused = check_all({k: v for k, (v, _what) in given.items()})
    if refused is not None:
        name, value, reason = refused
        raise CliError(refusal(name, value, reason, given[name][1]))
    return {k: v for k, (v, _what) in given.items()}


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


async def _run(load: LoadRequest, gen: GenerateRequest, ctx: CoreContext, quiet: bool = False):
    reporter = _Reporter(gen.batch_count, quiet)
    client = EngineClient(
        on_event=reporter,
        history=History(ctx.paths.history_file),
        log_file=ctx.paths.log_dir / "engine.log",
    )
    ctx.paths.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        return await client.generate(load, gen)
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
     "knobs": {"flashAttention", "offloadToCpu", "vaeTiling", "textEncoderOnCpu", "vaeOnCpu",
               "threads", "refImages": [str], "initImage": str|null, "strength": float|null,
               "loras": [{"name", "weight"}]}}
    """
    t = result.timings
    sizes = sorted({(i.width, i.height) for i in result.images}) or [(gen.width, gen.height)]
    return {
        "version": 1,
        "paths": [str(p) for p in result.paths],
        "seed": result.seed,
        "model": gen.model_id,
        "quants": {"diffusion": gen.diffusion_quant, "textEncoder": gen.text_encoder_quant},
        "width": sizes[0][0],
        "height": sizes[0][1],
        "steps": gen.steps,
        "cfg": gen.cfg_scale,
        "sampler": gen.sampler,
        "scheduler": gen.scheduler,
        "batch": gen.batch_count,
        "prompt": gen.prompt,
        "negative": gen.negative_prompt,
        "timings": {
            "load": round(t.load, 4),
            "encode": round(t.encode, 4),
            "sample": round(t.sample, 4),
            "decode": round(t.decode, 4),
            "total": round(result.wall, 4),
        },
        "knobs": {
            "flashAttention": load.flash_attn if load else None,
            "offloadToCpu": load.offload_to_cpu if load else None,
            "vaeTiling": gen.vae_tiling,
            "textEncoderOnCpu": load.keep_clip_on_cpu if load else None,
            "vaeOnCpu": load.keep_vae_on_cpu if load else None,
            "threads": load.n_threads if load else None,
            "refImages": list(gen.ref_images),
            "initImage": gen.init_image,
            "strength": gen.strength if gen.init_image else None,
            "loras": [{"name": lo.name, "weight": lo.weight} for lo in gen.loras],
        },
    }


def run_generate(args: argparse.Namespace, ctx: CoreContext) -> int:
    load, gen = build_requests(args, ctx)
    reused = getattr(args, "reused_selection", None)
    try:
        result = asyncio.run(_run(load, gen, ctx, bool(getattr(args, "quiet", False))))
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
        print(json.dumps(result_json(gen, result, load), indent=2))
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
    return 0
