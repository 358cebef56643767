"""The bundled catalog as raw JSON, for tests that build or mutate catalogs.

The bundled file is catalog v3 (a model is a family and a list of components). Many tests
were written against, and still exercise, the v2 shape (``diffusion`` / ``textEncoder`` quant
sections and a ``vae`` file) that users' catalogs may still have: :func:`bundled_v2` gives the
bundled image models of that shape, derived from the bundled file (one source of facts), which
distill reads through its v2 migration.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from distill_tui.resources import bundled_catalog_path


def bundled_v3() -> dict[str, Any]:
    return json.loads(bundled_catalog_path().read_text("utf-8"))


def model_v2(model: dict[str, Any]) -> dict[str, Any]:
    """One v3 image model (diffusion, text encoder, VAE) in the v2 shape."""
    out = {k: copy.deepcopy(v) for k, v in model.items() if k not in ("components", "features")}
    for comp in model["components"]:
        comp = copy.deepcopy(comp)
        role = comp.pop("role")
        comp.pop("slot", None)
        if role == "vae":
            out["vae"] = comp["file"]
        else:
            out[role] = comp
    rec = out.get("recommended")
    if isinstance(rec, dict) and "quants" in rec:
        quants = rec.pop("quants")
        rec.pop("flowShift", None)
        if "diffusion" in quants:
            rec["diffusionQuant"] = quants["diffusion"]
        if "textEncoder" in quants:
            rec["textEncoderQuant"] = quants["textEncoder"]
    return out


def bundled_v2(ids: tuple[str, ...] = ("flux2-klein-4b", "flux2-klein-9b")) -> dict[str, Any]:
    """The bundled catalog's FLUX.2 Klein pair (or ``ids``) in the v2 shape, with the bundled
    ``catalogVersion``."""
    raw = bundled_v3()
    by_id = {m["id"]: m for m in raw["models"]}
    return {"catalogVersion": raw["catalogVersion"], "models": [model_v2(by_id[i]) for i in ids]}
