"""``distill models list|use`` here; download/verify/remove/clean in ``cli.downloads``.

``distill models list --json`` shape (stable, version 1; fields are only ever added)::

    {"version": 1, "modelsDir": str, "activeModelId": str, "activeUpscalerId": str|null,
     "storage": {"usedBytes": int, "freeBytes": int},
     "models": [{"id", "name", "type", "family", "familyLabel",
                 "ready": bool, "missing": [str],
                 "active": bool, "usedBytes": int,   ("active": the active upscaler, for one)
                 "license": {"name", "url", "commercialUse": bool|null} | null,
                 "selection": {ROLE: str|null, ...},      (each component with quants)
                 "components": {ROLE: COMPONENT, ...}}],  (catalog order)
     "files": [{"file", "size", "sha256", "downloaded": bool, "verified": bool,
                "usedBy": [model id...]}]}                (each file once, shared ones too)
    ROLE = "diffusion" | "textEncoder" | "vae" | "upscaler" | ... (the family's roles)
    COMPONENT = {"role", "label", "name", "slot", "quants": [QUANT...]}     (quants)
              | {"role", "label", "name", "slot", FILE...}                  (one file:
                "file", "size", SOURCE..., "downloaded", "verified", "linkedOriginalGone",
                PARTIAL, "sharedWith")
    ("vae": {"file", "size", ...} as before: a component of one file keeps its file's
    fields at its top level; "slot": the engine slot it loads into, e.g. "llm_path")
    QUANT = {"id", "label", "file", "size", SOURCE..., "downloaded": bool, "verified": bool,
             "linkedOriginalGone": str|null, PARTIAL, "selected": bool, "sharedWith"}
    ("sharedWith": the other models whose component is the same file - one copy on disk,
    e.g. Klein 4B's Qwen3-4B text encoder quants and Z-Image-Turbo's)
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

from distill_tui.catalog import UnknownModelError
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


def _file_json(inv, acts: dict, f, model_id: str, users: dict[str, list[str]]) -> dict:
    """One file's facts: where it comes from, what is on disk, who else uses it."""
    return {
        "file": f.file,
        "size": f.size,
        **_source_json(f),
        "downloaded": inv.is_present(f.file),
        "verified": _verified(inv, f.file),
        "linkedOriginalGone": _gone(inv, f.file),
        **_partial_json(acts, f),
        "sharedWith": [u for u in users.get(f.file, ()) if u != model_id],
    }


def models_json(ctx: CoreContext) -> dict:
    from distill_tui.downloads.activity import scan

    inv, res = ctx.inventory, ctx.resolver
    active = ctx.settings.settings.active_model_id
    active_up = getattr(ctx.settings.settings, "active_upscaler_id", None)
    acts = {a.key: a for a in scan(inv.models_dir, ctx.catalog)}
    users: dict[str, list[str]] = {}  # file -> the models that have it (catalog order)
    files: dict[str, object] = {}
    for m in ctx.catalog.models:
        for _r, _q, f in m.files():
            if m.id not in users.setdefault(f.file, []):
                users[f.file].append(m.id)
            files.setdefault(f.file, f)
    out_models = []
    for m in ctx.catalog.models:
        sel = ctx.settings.selection(m.id)
        comps: dict = {}
        for c in m.components:
            head = {
                "role": c.role,
                "label": c.label,
                "name": c.name or m.name,
                "slot": c.engine_slot(m.family),
            }
            if c.has_quants:
                comps[c.role] = {
                    **head,
                    "quants": [
                        {
                            "id": q.id,
                            "label": q.label,
                            **_file_json(inv, acts, q, m.id, users),
                            "selected": sel.get(c.role) == q.id,
                        }
                        for q in c.quants or ()
                    ],
                }
            elif c.file is not None:
                comps[c.role] = {**head, **_file_json(inv, acts, c.file, m.id, users)}
        missing = res.missing(m.id)
        out_models.append(
            {
                "id": m.id,
                "name": m.name,
                "type": m.type,
                "family": m.family,
                "familyLabel": m.spec.label,
                "ready": not missing,
                "missing": missing,
                # the model Generate uses; for an upscaler: the one distill upscale uses
                "active": m.id == (active if m.spec.is_generator else active_up),
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
                "selection": {role: sel.get(role) for role in m.quant_roles},
                "components": comps,
            }
        )
    return {
        "version": 1,
        "modelsDir": str(inv.models_dir),
        "activeModelId": active,
        "activeUpscalerId": active_up,
        "storage": {"usedBytes": inv.total_usage(), "freeBytes": inv.free_bytes()},
        "models": out_models,
        "files": [
            {
                "file": rel,
                "size": getattr(f, "size", None),
                "sha256": getattr(f, "sha256", None),
                "downloaded": inv.is_present(rel),
                "verified": _verified(inv, rel),
                "usedBy": users[rel],
            }
            for rel, f in files.items()
        ],
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
        w(
            f"{star} {m['name']} ({m['id']})  [{badge}]  on disk {human_size(m['usedBytes'])}  "
            f"{m['familyLabel']} ({m['family']}, {m['type']})\n"
        )
        for c in m["components"].values():
            title = c["label"]
            if c["name"] and c["name"] != m["name"] and c["label"].lower() not in c["name"].lower():
                title += f" ({c['name']})"
            if "quants" in c:
                with_ = sorted({u for q in c["quants"] for u in q["sharedWith"]})
                w(f"    {title}" + (f"  shared with {', '.join(with_)}" if with_ else "") + "\n")
                for q in c["quants"]:
                    mark = ">" if q["selected"] else " "
                    have = _have(q, m["id"])
                    size = ("~" if q["sizeEstimated"] else "") + human_size(q["size"])
                    w(f"      {mark} {q['id']:<8} {size:>9}  {have}\n")
            else:
                shared = f"  shared with {', '.join(c['sharedWith'])}" if c["sharedWith"] else ""
                w(
                    f"    {title}  {c['file']}  {human_size(c['size'])}  {_have(c, m['id'])}"
                    f"{shared}\n"
                )
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
    from distill_tui.cli.roles import quant_args, quant_flag, role_word

    try:
        model = ctx.catalog.require(args.model)
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    if model.type == "upscaler":
        return _use_upscaler(args, ctx, model)
    chosen = quant_args(args, model)
    if not chosen:
        # `models use MODEL`: the model as it is selected becomes the active one (what `ollama
        # run` does with a pulled model); the selection must be downloaded
        if args.no_activate:
            roles = ", ".join(model.quant_roles)
            raise CliError(
                f"nothing to do: give --quant ROLE=Q (roles of {model.id}: {roles}; "
                "--diffusion Q / --text-encoder Q are the same)"
            )
        sel = ctx.settings.selection(model.id)
        chosen = {r: sel.get(r) or model.default_quant(r) for r in model.quant_roles}
        missing = [
            f"{model.section(r).label} {q}"
            for r, q in chosen.items()
            if not ctx.inventory.is_present(ctx.resolver.file_for(model.id, r, q).file)
        ]
        if missing:
            raise CliError(
                f"{model.id} is not downloaded ({', '.join(missing)}); run: distill models "
                f"download {model.id}, or choose downloaded quants with --quant ROLE=Q"
            )
    for role, qid in chosen.items():
        f = ctx.resolver.file_for(model.id, role, qid)
        if not ctx.inventory.is_present(f.file):
            flag = " ".join(quant_flag(role, qid))
            raise CliError(
                f"{model.id} {qid} is not downloaded; run: distill models download {model.id} "
                f"{flag}"
            )
    for role, qid in chosen.items():
        ctx.settings.set_quant(model.id, role, qid)
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
    picked = ", ".join(f"{role_word(r)} {sel.get(r) or '(none)'}" for r in model.quant_roles)
    now = "" if args.no_activate else f"; now the active model ({model.name})"
    print(visible(f"{model.id}: {picked} ({ready}){now}"))
    return 0


def _use_upscaler(args: argparse.Namespace, ctx: CoreContext, model) -> int:
    """``models use UPSCALER``: it becomes the active upscaler (what ``distill upscale`` and
    the Gallery's u use without --upscaler). It has no quants to choose."""
    if getattr(args, "quant", None) or args.diffusion or args.text_encoder:
        raise CliError(f"{model.id} is an upscaler: it has no quants to choose")
    missing = ctx.resolver.missing(model.id)
    if missing:
        raise CliError(f"{missing[0]}; run: distill models download {model.id}")
    ctx.settings.update(active_upscaler_id=model.id)
    if ctx.settings.read_only_reason:
        raise CliError(ctx.settings.read_only_reason)
    print(visible(f"{model.id}: the active upscaler (ready)"))
    return 0
