"""``distill compare "PROMPT" --seed S ...``: the same prompt and seed through every chosen
pair of installed quants, and one contact sheet PNG (see :mod:`distill_tui.compare`).

Defaults, weakest first, as ``distill generate``: the catalog's recommended values, the
``generation`` settings, the flags. Progress goes to stderr (one line per cell; a Rich bar on
a terminal); stdout gets the sheet's path only. Ctrl-C ends the running cell (and the engine
child), writes the sheet of the cells that finished, prints its path and exits 130. A cell
that fails is shown on the sheet; the exit status is then 1. No textual import.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from distill_tui.cli import CliError
from distill_tui.cli.generate import generator_or_refuse, phase_task, pick_bounded, step_column
from distill_tui.compare import (
    Cell,
    CompareError,
    CompareResult,
    CompareRun,
    parse_quant_list,
    plan_compare,
)
from distill_tui.context import CoreContext
from distill_tui.engine.client import EngineClient
from distill_tui.engine.protocol import EngineEvent, PhaseEvent, ProgressEvent
from distill_tui.formatting import human_size
from distill_tui.generation import GenParams
from distill_tui.outputs import History
from distill_tui.recipe import Recipe
from distill_tui.textsafe import visible

PHASE_TEXT = {
    "loading": "loading model",
    "encoding": "encoding prompt",
    "sampling": "sampling",
    "decoding": "decoding",
    "saving": "saving",
}


def build_recipe(args: argparse.Namespace, ctx: CoreContext) -> Recipe:
    """The recipe (``Recipe.resolve``: the catalog's recommended values, the settings, the
    flags), checked against the one table as ``distill generate``'s."""
    try:
        model = ctx.resolver.model(args.model)
    except KeyError as e:
        raise CliError(visible(str(e))) from None
    return pick_bounded(args, ctx, generator_or_refuse(ctx, model))


def quant_lists(args: argparse.Namespace, ctx: CoreContext) -> dict[str, list[str] | None]:
    """The quants to compare per role: ``--quant ROLE=Q,Q`` (repeatable) and its aliases
    ``--diffusion`` / ``--text-encoder`` (None: every downloaded quant of that role)."""
    from distill_tui.quantflag import (
        QuantFlagError,
        merge_aliases,
        parse_quant_flags,
        resolve_roles,
    )

    model = ctx.resolver.model(args.model)
    aliases = {
        "diffusion": ",".join(args.diffusion) if args.diffusion else None,
        "textEncoder": ",".join(args.text_encoder) if args.text_encoder else None,
    }
    try:
        given = merge_aliases(parse_quant_flags(getattr(args, "quant", None)), aliases)
        roles = resolve_roles(model, given, check_quants=False)
    except QuantFlagError as e:
        raise CliError(str(e)) from None
    return {role: parse_quant_list(roles.get(role)) for role in ("diffusion", "textEncoder")}


def build_params(args: argparse.Namespace, ctx: CoreContext) -> GenParams:
    """The generation parameters: flags over settings over the catalog's recommendations."""
    return GenParams.from_recipe(build_recipe(args, ctx))


class _Reporter:
    """One line per cell on stderr; on a terminal a bar for the running cell's steps."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.cell: Cell | None = None
        self.progress = None
        self.task: Any = None  # a rich TaskID once the progress bar exists
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                step_column(),
                console=Console(stderr=True, highlight=False),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting engine", total=None)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            print(f"distill: {text}", file=sys.stderr, flush=True)

    def _prefix(self) -> str:
        c = self.cell
        return f"cell {c.index + 1}/{self.total} {visible(c.label)}" if c else ""

    def event(self, ev: EngineEvent) -> None:
        if self.progress is None or self.cell is None:
            return
        if isinstance(ev, PhaseEvent):
            desc = f"{self._prefix()} · {PHASE_TEXT.get(ev.phase, ev.phase)}"
            self.task = phase_task(self.progress, self.task, desc)
        elif isinstance(ev, ProgressEvent) and ev.phase == "sampling" and ev.steps > 0:
            desc = f"{self._prefix()} · sampling"
            self.progress.update(self.task, description=desc, total=ev.steps, completed=ev.step)

    def change(self, kind: str, cell: Cell | None) -> None:
        if kind != "cell" or cell is None:
            return
        n = f"cell {cell.index + 1} of {self.total}"
        label = visible(cell.label)
        if cell.state == "running":
            self.cell = cell
            if self.progress is not None:
                self.task = phase_task(self.progress, self.task, f"{self._prefix()} · loading")
            else:
                self._say(f"{n}: {label}")
        elif cell.state == "done":
            bits = []
            if cell.generate_seconds:
                bits.append(f"gen {cell.generate_seconds:.2f} s")
            if cell.load_seconds:
                bits.append(f"load {cell.load_seconds:.2f} s")
            if cell.peak_rss:
                bits.append(f"peak RSS {human_size(cell.peak_rss, 1)}")
            self._say(f"{n} done: {label}, {', '.join(bits)}: {visible(cell.image or '')}")
        elif cell.state == "failed":
            self._say(f"{n} failed: {label}: {visible(cell.error or '')}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


async def _run(run: CompareRun, client: EngineClient, reporter: _Reporter) -> CompareResult:
    try:
        return await run.run()
    except asyncio.CancelledError:  # Ctrl-C: the run ended the child and wrote the sheet
        return CompareResult(
            sheet=run.sheet_path if run.sheet_written else None,
            cells=list(run.cells),
            interrupted=True,
        )
    finally:
        reporter.close()
        await client.shutdown()


def _sheet_path(args: argparse.Namespace) -> Path | None:
    """``-o SHEET``: a .png that may be written (as ``distill generate -o``: never over a
    device, FIFO or folder; over an existing file only with ``--overwrite``)."""
    if not args.output:
        return None
    try:  # a symlink is followed: a link to /dev/null is checked as /dev/null
        sheet = Path(args.output).expanduser().resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise CliError(f"-o {visible(args.output)}: cannot be resolved ({e})") from None
    if Path(args.output).suffix.lower() != ".png":  # the name given (a link's too)
        raise CliError(f"the sheet is a PNG: {visible(sheet)} (use a .png name)")
    from distill_tui.outputs import output_file_problem

    problem = output_file_problem(sheet, bool(getattr(args, "overwrite", False)))
    if problem:
        raise CliError(f"-o {visible(args.output)}: {visible(problem)}")
    return sheet


def run_compare(args: argparse.Namespace, ctx: CoreContext) -> int:
    recipe = build_recipe(args, ctx)
    sheet = _sheet_path(args)
    quants = quant_lists(args, ctx)
    try:
        plan = plan_compare(
            ctx,
            GenParams.from_recipe(recipe),
            model_id=args.model,
            diffusion=quants["diffusion"],
            text_encoder=quants["textEncoder"],
            knobs=recipe,
        )
    except CompareError as e:
        raise CliError(str(e)) from None
    out_dir = ctx.settings.outputs_dir
    total = len(plan.cells)
    w, h = plan.image_size
    print(
        f"distill: comparing {plan.rows} diffusion × {plan.cols} text encoder quants "
        f"({total} cells) of {plan.model_id}, seed {plan.params.seed}, {w}x{h}",
        file=sys.stderr,
        flush=True,
    )
    reporter = _Reporter(total)
    try:
        ctx.paths.log_dir.mkdir(parents=True, exist_ok=True)
        log_file: Path | None = ctx.paths.log_dir / "engine.log"
    except OSError:
        log_file = None
    client = EngineClient(
        on_event=reporter.event, history=History(ctx.paths.history_file), log_file=log_file
    )
    run = CompareRun(
        plan,
        client,
        output_dir=out_dir,
        sheet_path=sheet,
        overwrite=bool(getattr(args, "overwrite", False)),
        on_change=reporter.change,
    )
    try:
        result = asyncio.run(_run(run, client, reporter))
    except CompareError as e:
        raise CliError(str(e)) from None
    done, failed = len(result.done), result.failed
    if result.sheet is None and result.interrupted and not run.sheet_error:
        # stopped before any cell finished: nothing to show, nothing written (issue 22.13)
        print(f"distill: interrupted after 0 of {total} cells; no sheet written", file=sys.stderr)
        return 130
    if result.sheet is None:
        reason = run.sheet_error or "no sheet was written"
        raise CliError(f"{reason} ({done} of {total} cells done)")
    print(result.sheet, flush=True)
    if result.interrupted:
        print(
            f"distill: interrupted after {done} of {total} cells; partial sheet: {result.sheet}",
            file=sys.stderr,
        )
        return 130
    if failed:
        first = failed[0]
        print(
            f"distill: {len(failed)} of {total} cells failed "
            f"({visible(first.label)}: {visible(first.error or '')}); sheet: {result.sheet}",
            file=sys.stderr,
        )
        return 1
    print(f"distill: sheet of {total} cells in {result.seconds:.1f} s", file=sys.stderr)
    return 0
