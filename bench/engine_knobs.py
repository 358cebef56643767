"""What issue 20.4's engine knobs do on the tiny synthetic FLUX.2 Klein set, through the real
engine child (``EngineClient`` -> ``distill_tui.engine.child``); no network.

    .venv/bin/python -m bench.engine_knobs [--steps 8] [--size 64] [--reps 3] [--models DIR]

For each variant: the engine log's own report (cache: "<Mode> skipped N/M steps", conv direct:
"Using Conv2d direct ...", the sample parameters' flow_shift, the max_vram line), the median
sampling time over ``--reps`` generations (same seed, model loaded once per load variant), and
the mean absolute pixel difference (0-255, RGB) against the plain run. A markdown table goes
to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from distill_tui.engine.client import EngineClient  # noqa: E402
from distill_tui.engine.protocol import GenerateRequest, LoadRequest  # noqa: E402

#: (name, load options, generate options)
VARIANTS: list[tuple[str, dict, dict]] = [
    ("plain", {}, {}),
    ("easycache (0.2, default)", {}, {"cache_mode": "easycache"}),
    ("easycache 0.05", {}, {"cache_mode": "easycache", "cache_threshold": 0.05}),
    ("easycache 0.5", {}, {"cache_mode": "easycache", "cache_threshold": 0.5}),
    ("easycache 1.0", {}, {"cache_mode": "easycache", "cache_threshold": 1.0}),
    ("ucache (1.0, default)", {}, {"cache_mode": "ucache"}),
    ("spectrum", {}, {"cache_mode": "spectrum"}),
    ("flow_shift 1", {}, {"flow_shift": 1.0}),
    ("flow_shift 3", {}, {"flow_shift": 3.0}),
    ("flow_shift 10", {}, {"flow_shift": 10.0}),
    ("diffusion_conv_direct", {"diffusion_conv_direct": True}, {}),
    ("vae_conv_direct", {"vae_conv_direct": True}, {}),
    ("max_vram 0.001 GiB", {"max_vram": 0.001}, {}),
    ("max_vram 4 GiB", {"max_vram": 4.0}, {}),
]

_REPORT = re.compile(
    r"(\w+ skipped \d+/\d+ steps(?: \([\d.]+x estimated speedup\))?|"
    r"\w+ completed without skipping steps|"
    r"\w+ requested but not supported[^\n]*|Using Conv2d direct in the \w+ model|"
    r"set shift to [\d.]+|flow_shift: [\d.inf]+|max_vram[^\n]*)"
)


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


async def run(args: argparse.Namespace, models: dict[str, Path], out: Path) -> list[dict]:
    """Round-robin: each round runs every variant once (the box's load changes over
    minutes; interleaving spreads it evenly), same seed; a load variant reloads the model
    (its time is not in the sampling / decoding columns)."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    decodes: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    logs: dict[str, list[str]] = {name: [] for name, _, _ in VARIANTS}
    images: dict[str, str] = {}
    client = EngineClient(on_event=None)
    try:
        for r in range(args.reps):
            for name, load_kw, gen_kw in VARIANTS:
                load = LoadRequest(
                    diffusion_model_path=str(models["diffusion"]),
                    llm_path=str(models["text_encoder"]),
                    vae_path=str(models["vae"]),
                    n_threads=args.threads,
                    **load_kw,
                )
                gen = GenerateRequest(
                    prompt="a lovely cat on a red sofa",
                    width=args.size,
                    height=args.size,
                    steps=args.steps,
                    seed=7,
                    output_dir=str(out),
                    **gen_kw,
                )
                client._tail.clear()  # the log lines of this generation only
                res = await client.generate(load, gen)
                times[name].append(res.timings.sample)
                decodes[name].append(res.timings.decode)
                logs[name] += client.log_tail
                images[name] = res.paths[0]
            print(f"round {r + 1}/{args.reps} done", file=sys.stderr)
    finally:
        await client.shutdown()
    base = pixels(images[VARIANTS[0][0]])
    rows: list[dict] = []
    for name, _, _ in VARIANTS:
        seen: list[str] = []
        for ln in logs[name]:
            for m in _REPORT.finditer(ln):
                if m.group(1) not in seen:
                    seen.append(m.group(1))
        rows.append(
            {
                "variant": name,
                "sample_s": statistics.median(times[name]),
                "decode_s": statistics.median(decodes[name]),
                "diff": float(np.abs(pixels(images[name]) - base).mean()),
                "log": "; ".join(seen),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", help="a folder made by tests.tinymodels (else a temporary one)")
    ap.add_argument(
        "--only", help="comma-separated words: the variants whose name holds one (plain always)"
    )
    args = ap.parse_args(argv)
    if args.only:
        words = [w.strip() for w in args.only.split(",") if w.strip()]
        VARIANTS[1:] = [v for v in VARIANTS[1:] if any(w in v[0] for w in words)]
    from tests import tinymodels

    with tempfile.TemporaryDirectory() as tmp:
        mdir = Path(args.models) if args.models else Path(tmp) / "models"
        models = tinymodels.make_set(mdir, "fast")
        out = Path(tmp) / "out"
        out.mkdir()
        rows = asyncio.run(run(args, models, out))
    print(
        f"tiny FLUX.2 Klein set, {args.size}x{args.size}, {args.steps} steps, seed 7, "
        f"{args.threads} threads, median of {args.reps} interleaved rounds\n"
    )
    print("| variant | sampling s | decode s | mean abs diff vs plain (0-255) | engine log |")
    print("| --- | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['variant']} | {r['sample_s']:.3f} | {r['decode_s']:.3f} | {r['diff']:.2f} "
            f"| {r['log']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
