"""Time from the engine's ``image`` event to the image painted in the Generate screen.

    .venv/bin/python -m bench.image_paint [--reps 7] [--size 120x40] [--renderers halfcell,sixel]

Runs the real DistillApp headless (``run_test``) with the real Generate screen and
GenerationService; feeds ``ImageEvent``s for a 64x64 and a 1024x1024 PNG (random noise, the
worst case for PNG decode) exactly as the engine client delivers them, and measures until the
ImageView's ``call_after_refresh`` fires after the frame showing that image was composed
(decode in a thread + mount/update + render by the textual-image renderable). Headless: the
bytes are not written to a real terminal, so the terminal's own drawing time is not included.
Prints a markdown table (median and max of ``--reps`` runs per cell).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from distill_tui.display import STILL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_png(path: Path, side: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(side)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


async def measure(renderer: str, pngs: dict[str, Path], reps: int, size: tuple[int, int]):
    from distill_tui.app import DistillApp
    from distill_tui.engine.protocol import ImageEvent
    from distill_tui.generation import GenParams, Job
    from distill_tui.widgets.image_view import ImageView

    app = DistillApp(image_renderer=renderer, display_settings=STILL)
    results: dict[str, list[float]] = {k: [] for k in pngs}
    async with app.run_test(size=size) as pilot:
        svc = app.generation
        view = app.screen.query_one("#image-view", ImageView)
        n = 0
        for _ in range(reps):
            for label, png in pngs.items():
                n += 1
                side = int(label.split("x")[0])
                svc.job = Job(
                    number=n,
                    params=GenParams(prompt="bench", width=side, height=side),
                    model_id="m",
                    diffusion_quant="d",
                    text_encoder_quant="t",
                    started=time.monotonic(),
                )
                view.painted_at = None
                t0 = time.perf_counter()
                svc.handle_event(
                    ImageEvent(path=str(png), seed=n, width=side, height=side, index=0)
                )
                while not (
                    view.painted_at
                    and view.shown_frame is view.current
                    and view.current is not None
                    and view.current.path == str(png)
                ):
                    await asyncio.sleep(0.001)
                results[label].append(view.painted_at - t0)
                svc.job.phase = "done"
                await pilot.pause(0.05)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--renderers", default="halfcell,sixel,unicode")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            os.environ[var] = str(Path(tmp) / var.lower())
        pngs = {
            "64x64": make_png(Path(tmp) / "64.png", 64),
            "1024x1024": make_png(Path(tmp) / "1024.png", 1024),
        }
        print(f"terminal {args.size}, {args.reps} runs each; ms from image event to painted")
        print()
        print("| renderer | PNG | median ms | max ms |")
        print("|---|---|---|---|")
        for renderer in args.renderers.split(","):
            res = asyncio.run(measure(renderer, pngs, args.reps, (w, h)))
            for label, xs in res.items():
                print(
                    f"| {renderer} | {label} | {statistics.median(xs) * 1000:.1f} | "
                    f"{max(xs) * 1000:.1f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
