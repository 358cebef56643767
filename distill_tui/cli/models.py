"""``distill models list|use`` here; download/verify/remove/clean in ``cli.downloads``.

``distill models list --json`` shape (stable, version 1)::

    {"version": 1, "modelsDir": str, "activeModelId": str,
     "storage": {"usedBytes": int, "freeBytes": int},
     "models": [{"id", "name", "type", "ready": bool, "missing": [str],
                 "active": bool, "usedBytes": int,
                 "license": {"name", "url", "commercialUse": bool|null} | null,
                 "selection": {"diffusion": str|null, "textEncoder": str|null},
                 "components": {
                    "diffusion":   {"name": str, "quants": [QUANT...]},
                    "textEncoder": {"name": str, "quants": [QUANT...]},
                    "vae": {"file", "size", SOURCE..., "downloaded": bool,
                            "verified": bool, "linkedOriginalGone": str|null}}}]}
    QUANT = {"id", "label", "file", "size", SOURCE..., "downloaded": bool, "verified": bool,
             "linkedOriginalGone": str|null, PARTIAL, "selected": bool}
    ("linkedOriginalGone": the file is a symlink whose original - e.g. an HF cache copy - was
    removed: that original's path; `models download` fetches the file again)
    ("verified": downloaded and checked against a reference sha256; false for a downloaded
    file nothing could check: "unverified (no reference hash)")
    PARTIAL = "partial": null | {"state": "downloading"|"partial", "bytesDone", "total",
                                 "pid": int|null}
    SOURCE = "sizeEstimated": bool, "sha256": str|null, "sources": [url, mirror...]
"""

from __future__ import annotations

import argparse
import json
import sys

from distill_tui.catalog import UnknownModelError, UnknownQuantError
from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.formatting import human_size
from distill_tui.textsafe import visible, visible_tree


def run(args: argparse.Namespace, ctx: CoreContext) -> int:
    cmd = args.models_command
    if cmd == "recommend":
        from distill_tui.cli.recommend import run_recommend

        return run_recommend(args, ctx)
    if cmd == "list":
        return cmd_list(args, ctx)
    if cmd == "use":
        return cmd_use(args, ctx)
    if cmd == "check":
        from distill_tui.cli.check import cmd_check

        return cmd_check(args, ctx)
    if cmd == "import":
        from distill_tui.cli.importer import cmd_import

        return cmd_import(args, ctx)
    from distill_tui.cli import downloads

    return downloads.run(args, ctx)


def _partial_json(acts: dict, f) -> dict:
    """A download of this file in progress (any process) or a resumable partial, else null."""
    a = acts.get(f.file)
    if a is None:
        return {"partial": None}
    return {
        "partial": {
            "state": a.state,  # "downloading" (a process holds it) or "partial" (resumable)
            "bytesDone": a.done,
            "total": a.size,
            "pid": a.pid if a.pid and a.pid > 0 else None,
        }
    }


def _source_json(f) -> dict:
    """Where a file comes from and how its bytes are checked."""
    return {
        "sizeEstimated": f.size_estimated,
        "sha256": f.sha256,
        "sources": list(f.sources),
    }


def models_json(ctx: CoreContext) -> dict:
    from distill_tui.downloads.activity import scan

    inv, res = ctx.inventory, ctx.resolver
    active = ctx.settings.settings.active_model_id
    acts = {a.key: a for a in scan(inv.models_dir, ctx.catalog)}
    out_models = []
    for m in ctx.catalog.models:
        sel = ctx.settings.selection(m.id)
        comps: dict = {}
        for comp in ("diffusion", "textEncoder"):
            section = m.section(comp)
            comps[comp] = {
                "name": section.name or m.name,
                "quants": [
                    {
                        "id": q.id,
                        "label": q.label,
                        "file": q.file,
                        "size": q.size,
                        **_source_json(q),
                        "downloaded": inv.is_present(q.file),
                        "verified": _verified(inv, q.file),
                        "linkedOriginalGone": _gone(inv, q.file),
                        **_partial_json(acts, q),
                        "selected": sel.get(comp) == q.id,
                    }
                    for q in section.quants
                ],
            }
        comps["vae"] = {
            "file": m.vae.file,
            "size": m.vae.size,
            **_source_json(m.vae),
            "downloaded": inv.is_present(m.vae.file),
            "verified": _verified(inv, m.vae.file),
            "linkedOriginalGone": _gone(inv, m.vae.file),
            **_partial_json(acts, m.vae),
        }
        missing = res.missing(m.id)
        out_models.append(
            {
                "id": m.id,
                "name": m.name,
                "type": m.type,
                "ready": not missing,
                "missing": missing,
                "active": m.id == active,
                "usedBytes": inv.model_usage(m),
                "license": (
                    {
                        "name": m.license.name,
                        "url": m.license.url,
                        "commercialUse": m.license.commercial,
                    }
                    if m.license
                    else None
                ),
                "selection": {
                    "diffusion": sel.diffusion_quant,
                    "textEncoder": sel.text_encoder_quant,
                },
                "components": comps,
            }
        )
    return {
        "version": 1,
        "modelsDir": str(inv.models_dir),
        "activeModelId": active,
        "storage": {"usedBytes": inv.total_usage(), "freeBytes": inv.free_bytes()},
        "models": out_models,
    }


def _verified(inv, rel: str) -> bool:
    """Downloaded AND checked against a reference sha256 (catalog or Hub)."""
    return inv.is_present(rel) and not inv.is_unverified(rel)


def _gone(inv, rel: str) -> str | None:
    """A symlink of ``rel`` whose original was removed: that original's path (issue 23.9)."""
    gone = inv.gone_original(rel)
    return None if gone is None else str(gone)


def _have(f: dict, model_id: str) -> str:
    if not f["downloaded"] and f.get("linkedOriginalGone"):
        return (
            f"the linked original ({f['linkedOriginalGone']}) is gone; rerun distill models "
            f"download {model_id} to fetch it"
        )
    if not f["downloaded"]:
        return _partial_text(f["partial"])
    return "downloaded" if f["verified"] else "downloaded, unverified (no reference hash)"


def _partial_text(p: dict | None) -> str:
    if not p:
        return "-"
    pct = f"{100 * p['bytesDone'] / p['total']:.0f}%" if p["total"] else "?"
    if p["state"] == "downloading":
        return f"downloading {pct}" + (f" (pid {p['pid']})" if p["pid"] else "")
    return f"partial {pct} (download resumes it)"


def cmd_list(args: argparse.Namespace, ctx: CoreContext) -> int:
    data = models_json(ctx)
    if args.json:
        json.dump(data, sys.stdout, indent=2)  # ensure_ascii: control characters escaped
        sys.stdout.write("\n")
        return 0
    data = visible_tree(data)  # catalog text reaches a terminal: control characters shown
    w = sys.stdout.write
    for m in data["models"]:
        badge = "Ready" if m["ready"] else "Setup Required"
        star = "*" if m["active"] else " "
        w(f"{star} {m['name']} ({m['id']})  [{badge}]  on disk {human_size(m['usedBytes'])}\n")
        for comp, title in (("diffusion", "Diffusion Model"), ("textEncoder", "Text Encoder")):
            c = m["components"][comp]
            name = f" ({c['name']})" if comp == "textEncoder" else ""
            w(f"    {title}{name}\n")
            for q in c["quants"]:
                mark = ">" if q["selected"] else " "
                have = _have(q, m["id"])
                size = ("~" if q["sizeEstimated"] else "") + human_size(q["size"])
                w(f"      {mark} {q['id']:<8} {size:>9}  {have}\n")
        v = m["components"]["vae"]
        w(f"    VAE  {v['file']}  {human_size(v['size'])}  {_have(v, m['id'])}\n")
        if m["missing"]:
            w(f"    missing: {'; '.join(m['missing'])}\n")
        w("\n")
    st = data["storage"]
    w(
        f"models dir {data['modelsDir']}: {human_size(st['usedBytes'])} used, "
        f"{human_size(st['freeBytes'])} free   (* active model, > selected quant)\n"
    )
    return 0


def cmd_use(args: argparse.Namespace, ctx: CoreContext) -> int:
    try:
        model = ctx.catalog.require(args.model)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    if not args.diffusion and not args.text_encoder:
        raise CliError("nothing to do: give --diffusion Q and/or --text-encoder Q")
    changes = []
    for comp, qid in (("diffusion", args.diffusion), ("textEncoder", args.text_encoder)):
        if not qid:
            continue
        try:
            f = ctx.resolver.file_for(model.id, comp, qid)
        except UnknownQuantError as e:
            raise CliError(str(e)) from None
        if not ctx.inventory.is_present(f.file):
            flag = "--diffusion" if comp == "diffusion" else "--text-encoder"
            raise CliError(
                f"{model.id} {qid} is not downloaded; run: distill models download {model.id} "
                f"{flag} {qid}"
            )
        changes.append((comp, qid))
    for comp, qid in changes:
        ctx.settings.set_quant(model.id, comp, qid)
    if not args.no_activate:
        ctx.settings.update(active_model_id=model.id)
    if ctx.settings.read_only_reason:
        raise CliError(ctx.settings.read_only_reason)
    sel = ctx.settings.selection(model.id)
    ready = (
        "ready"
        if ctx.resolver.is_model_ready(model.id)
        else ("not ready: " + "; ".join(ctx.resolver.missing(model.id)))
    )
    print(
        visible(
            f"{model.id}: diffusion {sel.diffusion_quant}, text encoder "
            f"{sel.text_encoder_quant} ({ready})"
        )
    )
    return 0
