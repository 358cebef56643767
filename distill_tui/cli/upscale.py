"""``distill upscale IMAGE...``: ESRGAN upscales headless, through the engine child.

Every image is checked before the engine starts (``distill_tui.upscale.check_source``: size,
format, a result in bounds) and so is ``-o`` (``distill generate -o``'s rules); any refusal is
one line and exit 2. stdout gets the written paths, one per line (``--json``: one object).
Progress goes to stderr. No textual import.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.engine.client import EngineClient, EngineError
from distill_tui.engine.protocol import EngineEvent, PhaseEvent, ProgressEvent
from distill_tui.textsafe import visible
from distill_tui.upscale import (
    Source,
    UpscaleError,
    UpscaleOutcome,
    Upscaler,
    check_source,
    output_problem,
    resolve_upscaler,
    upscale_many,
)


def _plan(args: argparse.Namespace, ctx: CoreContext) -> tuple[Upscaler, list[Source], str | None]:
    """Everything checked before the engine starts: upscaler, images, output, tile size."""
    from distill_tui.engine.protocol import UPSCALE_TILE_MAX, UPSCALE_TILE_MIN

    tile = args.tile_size
    if tile is not None and not UPSCALE_TILE_MIN <= tile <= UPSCALE_TILE_MAX:
        raise CliError(f"--tile-size {tile}: between {UPSCALE_TILE_MIN} and {UPSCALE_TILE_MAX}", 2)
    if args.output and len(args.images) > 1:
        raise CliError("-o names one file: give one IMAGE, or --out-dir DIR for several", 2)
    try:
        upscaler = resolve_upscaler(ctx, args.upscaler)
        sources = [check_source(p, upscaler.scale) for p in args.images]
    except UpscaleError as e:
        raise CliError(e.message, e.code) from None
    out_file = None
    if args.output:
        problem = output_problem(args.output, bool(args.overwrite))
        if problem:
            raise CliError(f"-o {args.output}: {problem}", 2)
        out_file = str(Path(args.output).expanduser().resolve())
    return upscaler, sources, out_file


class _Progress:
    """Plain progress lines on stderr (phase, tiles)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.last = -1

    def __call__(self, ev: EngineEvent) -> None:
        if self.quiet:
            return
        if isinstance(ev, PhaseEvent) and ev.phase in ("loading", "upscaling"):
            what = "loading upscaler" if ev.phase == "loading" else "upscaling"
            print(f"distill: {what}", file=sys.stderr, flush=True)
            self.last = -1
        elif isinstance(ev, ProgressEvent) and ev.phase == "upscaling" and ev.steps > 1:
            pct = ev.step * 100 // ev.steps
            if pct // 25 != self.last // 25:  # a line a quarter
                self.last = pct
                print(f"distill: tile {ev.step}/{ev.steps}", file=sys.stderr, flush=True)


async def _run(
    args: argparse.Namespace,
    ctx: CoreContext,
    upscaler: Upscaler,
    sources: list[Source],
    out_file: str | None,
) -> list[UpscaleOutcome]:
    progress = _Progress(bool(args.quiet))
    ctx.paths.log_dir.mkdir(parents=True, exist_ok=True)
    client = EngineClient(on_event=progress, log_file=ctx.paths.log_dir / "engine.log")

    def done(out: UpscaleOutcome) -> None:
        if not args.json:
            print(out.path, flush=True)

    try:
        return await upscale_many(
            ctx,
            client,
            sources,
            upscaler,
            output_file=out_file,
            output_dir=str(Path(args.out_dir).expanduser().resolve()) if args.out_dir else None,
            overwrite=bool(args.overwrite),
            tile_size=args.tile_size,
            on_done=done,
        )
    except asyncio.CancelledError:  # Ctrl-C: end the child before we go
        await client.cancel()
        raise
    finally:
        await client.shutdown()


def run_upscale(args: argparse.Namespace, ctx: CoreContext) -> int:
    upscaler, sources, out_file = _plan(args, ctx)
    try:
        outs = asyncio.run(_run(args, ctx, upscaler, sources, out_file))
    except UpscaleError as e:
        raise CliError(e.message, e.code) from None
    except EngineError as e:
        raise CliError(f"engine {e.kind}: {visible(e.message)}") from None
    if args.json:
        print(
            json.dumps(
                {
                    "version": 1,
                    "paths": [o.path for o in outs],
                    "upscaler": upscaler.info(),
                    "results": [o.json() for o in outs],
                },
                indent=2,
            )
        )
    elif not args.quiet:
        for o in outs:
            print(
                f"distill: {visible(o.source.path.name)} {o.source.width}x{o.source.height} "
                f"-> {o.width}x{o.height} ({visible(upscaler.name)}, "
                f"{o.timings['total']:.2f} s)",
                file=sys.stderr,
            )
    return 0
