"""``distill models download MODEL --dry-run [--json]``: what would be fetched, from where, how
big, and whether it fits on disk. Nothing is written.

Sizes are the Hub's exact ones (one HEAD per file, as a download's preflight does); with
``HF_HUB_OFFLINE`` (or a Hub that does not answer for a file) the catalog's size is used and
marked as an estimate. Exit 0: it fits (or nothing is left to fetch); 1: it does not fit, or a
file cannot be downloaded (gated, missing).

Reuse (issue 23.6): a file the real run would link from the HF cache or an import folder
(downloads/localreuse.py) reads "link from HF cache" / "link from import dir" and counts 0
bytes. The check here is the cheap one (size, and the sha256 an HF cache blob is named by;
nothing is read): the real run hashes the copy where it links it ("checked when linked"). As the
real run, a copy named by the catalog's sha256 is not asked about at the Hub.

``--json`` shape (stable, version 1)::

    {"version": 1, "model": str, "modelsDir": str, "offline": bool,
     "files": [{"file", "component", "quant": str|null, "url": str, "installed": bool,
                "partialBytes": int, "size": int, "sizeSource": "hub"|"catalog"|"local",
                "estimate": bool, "sha256": str|null, "revision": str|null,
                "problem": str|null, "reuse": "hf-cache"|"import-dir"|null,
                "reuseFrom": str|null}],
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
                "quant": qid,  # None: a component of one file (a VAE, an upscaler)
                "url": f.sources[0],
                "installed": ctx.inventory.is_present(f.file),
                "partialBytes": 0,
                "size": f.size,
                "sizeSource": "catalog",
                "estimate": True,
                "sha256": f.sha256,
                "revision": f.pinned_revision,
                "problem": None,
                "reuse": None,  #: "hf-cache" | "import-dir": linked by the real run, 0 bytes
                "reuseFrom": None,  #: the copy's path (the snapshot path for the HF cache)
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
                # the token goes to the Hub's origin only, never a mirror's (issue 19.7)
                hub = row["_entry"].sources[0]
                meta = await head(client, url, token, retries=2, backoff=0.5, hub=hub)
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
        await asyncio.gather(*(one(r) for r in rows if not r["installed"] and not r["reuse"]))
    finally:
        await client.aclose()


def _find_reuse(ctx: CoreContext, rows: list[dict], index: object | None) -> None:
    """Mark the rows the real run would link instead of fetch (size + name, nothing hashed).
    A row's size counts only when it is exact; its sha256 is the catalog's, or the Hub's once
    asked."""
    from distill_tui.downloads import localreuse as lr

    for r in rows:
        if r["installed"] or r["reuse"]:
            continue
        f = r["_entry"]
        size = None if r["estimate"] else r["size"]
        cands = lr.find(f, size=size, index=index, dest=ctx.inventory.abs_path(f.file))  # type: ignore[arg-type]
        for c in cands:
            if lr.precheck(c, size, r["sha256"]) is None:
                r["reuse"] = "hf-cache" if c.origin == lr.HF_CACHE else "import-dir"
                r["reuseFrom"] = str(c.shown or c.path)
                if size is None:  # an HF cache blob named by the sha256: its size is the file's
                    r.update(size=c.size, estimate=False, sizeSource="local")
                break


def cmd_dry_run(
    args: argparse.Namespace, ctx: CoreContext, model: CatalogModel, items: list[tuple]
) -> int:
    from distill_tui.downloads import localreuse as lr
    from distill_tui.downloads.sidecar import partial_allocated, partial_bytes
    from distill_tui.hftoken import offline

    rows = _files(ctx, model, items)
    off = offline()
    dirs = tuple(ctx.settings.settings.import_dirs)
    index = (
        lr.FolderIndex(dirs, skip=ctx.inventory.models_dir)
        if dirs and not all(r["installed"] for r in rows)
        else None
    )
    _find_reuse(ctx, rows, index)  # with the catalog's size and sha256: no Hub request for these
    if not off:
        asyncio.run(_ask_hub(rows))
        _find_reuse(ctx, rows, index)  # the Hub's exact size / sha256 for the others
    need = 0
    for r in rows:
        if r["installed"] or r["reuse"]:
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
    unavailable = [
        r for r in rows if r["problem"] and not r["installed"] and not r["reuse"] and r["estimate"]
    ]
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
        if r["reuse"]:
            where = "HF cache" if r["reuse"] == "hf-cache" else "import dir"
            size = ("~" if r["estimate"] else "") + human_size(r["size"])
            w(
                visible(
                    f"  link from {where:<10} {label:<22} {size:>10} (0 B to fetch)  {r['file']}"
                )
            )
            w("\n")
            w(visible(f"             {r['reuseFrom']} (checked when linked)") + "\n")
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
