"""``distill models recommend``: which sets fit this machine, the best one first.

Fits every set of a model (diffusion x text encoder quant + VAE) with the memory model
(:mod:`distill_tui.memory_model`) against the GPU :mod:`distill_tui.devices` finds (the engine's,
else the NVIDIA card NVML reports); without any GPU against the RAM (generation then runs on
the CPU from RAM). The best set keeps a 10 % margin; ``--all`` lists every set.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from distill_tui.context import CoreContext
from distill_tui.formatting import gib, human_size
from distill_tui.textsafe import visible


def run_recommend(args: argparse.Namespace, ctx: CoreContext) -> int:
    from distill_tui import memory_model as mm
    from distill_tui.cli import CliError
    from distill_tui.devices import detect_machine

    machine = detect_machine()
    budget = mm.gpu_budget(machine)
    target: dict[str, Any]
    if budget is not None and machine.gpu is not None:
        target = {"kind": "gpu", "name": machine.gpu.name, "total": budget}
    elif machine.ram_total:
        budget = machine.ram_total
        target = {
            "kind": "ram",
            "name": "RAM (no GPU: the engine runs on the CPU)",
            "total": budget,
        }
    else:
        raise CliError("neither a GPU nor the size of the RAM is known: nothing to fit against")
    if args.model:
        models = [ctx.catalog.require(args.model)]
        if not models[0].spec.is_generator:
            return _upscaler(args, models[0], budget, target)
    else:  # the sets to fit are the image-generation models' (an upscaler has no quants)
        models = ctx.catalog.of_type("image-generation")
    settings = ctx.settings.settings
    knobs = mm.knobs_from_settings(settings)
    out: list[dict[str, Any]] = []
    for model in models:
        w, h = mm.generation_size(settings, model)
        w, h = args.width or w, args.height or h
        rec = mm.recommend(model, budget=budget, width=w, height=h, knobs=knobs)
        out.append(
            {
                "model": model.id,
                "name": model.name,
                "width": w,
                "height": h,
                "best": rec.best.to_json() if rec.best else None,
                "sets": [s.to_json() for s in rec.sets],
            }
        )
    if args.json:
        doc = {
            "version": 1,
            "target": target,
            "margin": mm.MARGIN,
            "knobs": knobs.__dict__,
            "rebuild": machine.rebuild,
            "models": out,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"fit against: {visible(target['name'])}, {human_size(budget)} (10 % kept free)")
    if machine.rebuild:
        print(f"note: {visible(machine.rebuild['reason'])}; rebuild: {machine.rebuild['command']}")
    for m in out:
        print(f"\n{visible(m['name'])} at {m['width']}x{m['height']}:")
        best = m["best"]
        if best:
            print(
                f"  best: --diffusion {best['diffusion']} --text-encoder {best['text_encoder']}"
                f"  ({human_size(best['size'])} of files, peak ~{gib(best['peak'])}: "
                f"{best['fit']})"
            )
        else:
            print("  no set fits, not even with offload and the text encoder on the CPU")
        if args.all:
            print(f"  {'diffusion':<10} {'encoder':<8} {'files':>8} {'peak':>9}  fit")
            for s in m["sets"]:
                print(
                    f"  {visible(s['diffusion']):<10} {visible(s['text_encoder']):<8} "
                    f"{human_size(s['size']):>8} {gib(s['plain_peak']):>9}  {s['fit']}"
                )
    return 0


def _upscaler(args: argparse.Namespace, model: Any, budget: int, target: dict[str, Any]) -> int:
    """An upscaler has no sets: its weights + one tile's buffer at distill upscale's default
    tile (``--width``/``--height``: the source image, when smaller than a tile)."""
    from distill_tui import memory_model as mm
    from distill_tui.cli import CliError
    from distill_tui.engine.protocol import UPSCALE_TILE_DEFAULT

    try:
        est = mm.upscale_estimate(
            model, tile=UPSCALE_TILE_DEFAULT, width=args.width or 0, height=args.height or 0
        )
    except mm.NoMemoryFormula as e:
        raise CliError(f"{model.id}: {e}") from None
    fit = "fits" if est.peak <= budget * (1.0 - mm.MARGIN) else "too big"
    if args.json:
        row = {"model": model.id, "name": model.name, "type": model.type, **est.to_json()}
        row.update(budget=budget, fit=fit)
        doc = {"version": 1, "target": target, "margin": mm.MARGIN, "models": [row]}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"fit against: {visible(target['name'])}, {human_size(budget)} (10 % kept free)")
    print(
        f"{visible(model.name)} (upscaler) at tile {est.tile}: peak ~{gib(est.peak)} "
        f"({human_size(est.weights)} of weights, {human_size(est.compute)} per tile): {fit}"
    )
    return 0
