"""``distill models download MODEL --dry-run [--json]``: what would be fetched, from where, how
big, and whether it fits on disk. Nothing is written.

Sizes are the Hub's exact ones (one HEAD per file, as a download's preflight does); with
``HF_HUB_OFFLINE`` (or a Hub that does not answer for a file) the catalog's size is used and
marked as an estimate. Exit 0: it fits (or nothing is left to fetch); 1: it does not fit, or a
file cannot be downloaded (gated, missing).

``--json`` shape (stable, version 1)::

    {"version": 1, "model": str, "modelsDir": str, "offline": bool,
     "files": [{"file", "component", "quant": str|null, "url": str, "installed": bool,
                "partialBytes": int, "size": int, "sizeSource": "hub"|"catalog",
                "estimate": bool, "sha256": str|null, "revision": str|null,
                "problem": str|null}],
     "needBytes": int, "marginBytes": int, "freeBytes": int, "fits": bool, "exitCode": int}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from distill_tui.catalog import CatalogModel
from distill_tui.context import CoreContext
from distill_tui.formatting import human_size
from distill_tui.textsafe import visible


def _files(ctx: CoreContext, model: CatalogModel, items: list[tuple]) -> list[dict]:
    rows = []
    for _m, comp, qid in items:
        f = ctx.resolver.file_for(model.id, comp, qid)
        rows.append(
            {
                "file": f.file,
                "component": comp,
                "quant": None if comp == "vae" else qid,
                "url": f.sources[0],
                "installed": ctx.inventory.is_present(f.file),
                "partialBytes": 0,
                "size": f.size,
                "sizeSource": "catalog",
                "estimate": True,
                "sha256": f.sha256,
                "revision": f.pinned_revision,
                "problem": None,
                "_entry": f,
            }
        )
    return rows


async def _ask_hub(rows: list[dict]) -> None:
    from distill_tui.downloads.errors import DownloadError
    from distill_tui.downloads.hub import head, new_client
    from distill_tui.hftoken import token_to_send

    token = token_to_send()
    client = new_client(30.0, 8)

    async def one(row: dict) -> None:
        for url in row["_entry"].sources:  # the first source that answers, as a download
            try:
                meta = await head(client, url, token, retries=2, backoff=0.5)
            except DownloadError as e:
                row["problem"] = e.message
                continue
            row.update(
                url=url,
                size=meta.size,
                sizeSource="hub",
                estimate=False,
                sha256=meta.sha256 or row["sha256"],
                revision=meta.revision,
                problem=None,
            )
            return

    try:
        await asyncio.gather(*(one(r) for r in rows if not r["installed"]))
    finally:
        await client.aclose()


def cmd_dry_run(
    args: argparse.Namespace, ctx: CoreContext, model: CatalogModel, items: list[tuple]
) -> int:
    from distill_tui.downloads.sidecar import partial_allocated, partial_bytes
    from distill_tui.hftoken import offline

    rows = _files(ctx, model, items)
    off = offline()
    if not off:
        asyncio.run(_ask_hub(rows))
    need = 0
    for r in rows:
        if r["installed"]:
            continue
        dest = ctx.inventory.abs_path(r["file"])
        have = max(partial_bytes(dest, r["size"]), partial_allocated(dest))
        r["partialBytes"] = min(have, r["size"])
        need += max(0, r["size"] - have)
    margin = max(100_000_000, need // 50) if need else 0  # as the download itself checks
    try:
        free = ctx.inventory.free_bytes()
    except OSError:
        free = 0
    fits = need + margin <= free
    unavailable = [r for r in rows if r["problem"] and not r["installed"] and r["estimate"]]
    code = 0 if fits and not unavailable else 1
    if getattr(args, "json", False):
        doc = {
            "version": 1,
            "model": model.id,
            "modelsDir": str(ctx.inventory.models_dir),
            "offline": off,
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "needBytes": need,
            "marginBytes": margin,
            "freeBytes": free,
            "fits": fits,
            "exitCode": code,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return code
    w = sys.stdout.write
    w(f"dry run: {model.name} ({model.id}) into {ctx.inventory.models_dir}\n")
    for r in rows:
        label = r["component"] + (f" {r['quant']}" if r["quant"] else "")
        if r["installed"]:
            w(visible(f"  installed  {label:<22} {r['file']}") + "\n")
            continue
        size = ("~" if r["estimate"] else "") + human_size(r["size"])
        how = "catalog size, estimate" if r["estimate"] else "the Hub's size"
        part = (
            f", {human_size(r['partialBytes'])} already in a partial" if r["partialBytes"] else ""
        )
        w(visible(f"  fetch      {label:<22} {size:>10} ({how}{part})  {r['file']}") + "\n")
        w(visible(f"             from {r['url']}") + "\n")
        if r["problem"]:
            w(visible(f"             problem: {r['problem']}") + "\n")
    if off:
        w("HF_HUB_OFFLINE is set: sizes are the catalog's (estimates); nothing was asked\n")
    verdict = "fits" if fits else "does NOT fit"
    w(
        f"need {human_size(need)} (+ {human_size(margin)} margin), {human_size(free)} free: "
        f"{verdict}\n"
    )
    if unavailable:
        w(f"{len(unavailable)} file(s) cannot be downloaded now (see problem above)\n")
    return code
