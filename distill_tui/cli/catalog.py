"""``distill catalog check [--model ID] [--json] [--write] [--timeout S]``.

Asks the Hub (HEAD of each resolve URL, 8 at a time) about every source of every file of the
runtime catalog and compares the answers with the catalog; see :mod:`distill_tui.catalog_check`.

Exit codes: 0 every file is served with the catalog's bytes; 1 a file is missing, unreachable
(e.g. only gated sources and no approved token) or differs (size against an exact catalog
size, sha256, a mirror serving other bytes); 3 the Hub could not be reached at all.

``--json`` shape (version 1)::

    {"version": 1, "endpoint": str, "tokenPresent": bool, "ok": bool, "error": str|null,
     "summary": {"files": int, "ok": int, "withProblems": int},
     "problems": [str],
     "files": [{"model", "component", "quant": str|null, "file", "ok": bool,
                "catalog": {"size", "sizeEstimated", "sha256": str|null, "revision": str|null},
                "problems": [str], "notes": [str],
                "record": {"size"?, "sha256"?, "revision"?},   # what --write records
                "sources": [{"role": "primary"|"mirror", "url", "repo": str|null, "path",
                             "status": "ok"|"differs"|"missing"|"gated"|"denied"
                                       |"unreachable"|"error",
                             "message": str|null, "problems": [str],
                             "hub": {"size": int|null, "sha256": str|null,
                                     "revision": str|null}}]}],
     "written": {"path", "sizes", "sha256", "revisions", "notFound": [str]} | null}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap

from distill_tui.catalog import CatalogError, UnknownModelError
from distill_tui.catalog_check import (
    CheckReport,
    FileCheck,
    WriteResult,
    check_catalog,
    record_exact,
    safe,
)
from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.formatting import human_size
from distill_tui.hftoken import offline, offline_message, token_to_send

EXIT_PROBLEMS = 1
EXIT_UNREACHABLE = 3
WIDTH = 79
#: FILE, SOURCE, STATUS, SIZE, SHA256 (after a 2-space indent): 77 columns
COLS = (16, 28, 9, 10, 8)
STATUS_WORDS = {"unreachable": "no answer"}


def run(args: argparse.Namespace, ctx: CoreContext) -> int:
    if args.catalog_command == "check":
        return cmd_check(args, ctx)
    raise AssertionError(args.catalog_command)


def cmd_check(args: argparse.Namespace, ctx: CoreContext) -> int:
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds", code=2)
    if offline():
        raise CliError(offline_message("cannot check the catalog"), code=EXIT_UNREACHABLE)
    try:
        report = check_catalog(
            ctx.catalog, model_id=args.model, token=token_to_send(), timeout=args.timeout
        )
    except UnknownModelError as e:
        raise CliError(str(e)) from None
    down = report.unreachable
    written: WriteResult | None = None
    if args.write and not down:
        try:
            written = record_exact(ctx.paths.user_catalog_file, report.files)
        except (CatalogError, OSError) as e:
            raise CliError(f"--write: {safe(str(e).splitlines()[0])}") from None
    if args.json:
        json.dump(report_json(report, written, down), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if not down:
            sys.stdout.write(render_table(report, written, ctx))
    if down:
        raise CliError(safe(down), code=EXIT_UNREACHABLE)
    return 0 if report.ok else EXIT_PROBLEMS


# ---- JSON --------------------------------------------------------------------------------


def file_json(fc: FileCheck) -> dict:
    e = fc.entry
    return {
        "model": fc.model_id,
        "component": fc.component,
        "quant": fc.quant_id,
        "file": e.file,
        "ok": fc.ok,
        "catalog": {
            "size": e.size,
            "sizeEstimated": e.size_estimated,
            "sha256": e.sha256,
            "revision": e.revision,
        },
        "problems": fc.problems,
        "notes": fc.notes,
        "record": fc.to_record,
        "sources": [
            {
                "role": s.role,
                "url": s.url,
                "repo": s.repo,
                "path": s.path,
                "status": s.verdict,
                "message": s.answer.message,
                "problems": s.problems,
                "hub": {
                    "size": s.answer.size,
                    "sha256": s.answer.sha256,
                    "revision": s.answer.revision,
                },
            }
            for s in fc.sources
        ],
    }


def report_json(report: CheckReport, written: WriteResult | None, error: str | None) -> dict:
    n_ok = sum(1 for f in report.files if f.ok)
    return {
        "version": 1,
        "endpoint": report.endpoint,
        "tokenPresent": report.token_present,
        "ok": report.ok and not error,
        "error": error,
        "summary": {
            "files": len(report.files),
            "ok": n_ok,
            "withProblems": len(report.files) - n_ok,
        },
        "problems": [p for f in report.files for p in f.problems],
        "files": [file_json(f) for f in report.files],
        "written": None
        if written is None
        else {
            "path": str(written.path),
            "sizes": written.sizes,
            "sha256": written.sha256,
            "revisions": written.revisions,
            "notFound": written.not_found,
        },
    }


# ---- table -------------------------------------------------------------------------------


def _fit(text: str, width: int) -> str:
    text = safe(text)
    return text if len(text) <= width else text[: width - 2] + ".."


def _row(cells: tuple[str, ...]) -> str:
    fw, sw, tw, zw, hw = COLS
    f, s, t, z, h = cells
    line = f"  {_fit(f, fw):<{fw}} {_fit(s, sw):<{sw}} {_fit(t, tw):<{tw}} {z:>{zw}} {h:<{hw}}"
    return line.rstrip() + "\n"


def _detail(mark: str, text: str) -> str:
    return (
        textwrap.fill(
            safe(text),
            WIDTH,
            initial_indent=f"    {mark} ",
            subsequent_indent="      ",
            break_on_hyphens=False,
            break_long_words=True,
        )
        + "\n"
    )


def _counts(sizes: int, shas: int, revisions: int) -> str:
    parts = [
        f"{n} {word}{'s' if n != 1 and plural else ''}"
        for n, word, plural in (
            (sizes, "exact size", True),
            (shas, "sha256", False),
            (revisions, "revision", True),
        )
        if n
    ]
    return " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0]


def render_table(report: CheckReport, written: WriteResult | None, ctx: CoreContext) -> str:
    out: list[str] = []
    w = out.append
    n_sources = sum(len(f.sources) for f in report.files)
    w(
        _fit(
            f"Hub {report.endpoint}, token: {'yes' if report.token_present else 'no'}; "
            f"{len(report.files)} files, {n_sources} sources",
            WIDTH,
        )
        + "\n\n"
    )
    w(_row(("FILE", "SOURCE", "STATUS", "SIZE", "SHA256")))
    names = {m.id: m.name for m in ctx.catalog.models}
    current = None
    estimated = False
    revisions: dict[str, str] = {}
    for fc in report.files:
        if fc.model_id != current:
            current = fc.model_id
            w(_fit(f"{fc.model_id}  {names.get(fc.model_id, '')}", WIDTH).rstrip() + "\n")
        for i, s in enumerate(fc.sources):
            a = s.answer
            size = "-"
            if a.size is not None:
                size = human_size(a.size, 2)
                if fc.entry.size_estimated:
                    size += "*"
                    estimated = True
            label = fc.label if i == 0 else f"  {s.role}"
            status = STATUS_WORDS.get(s.verdict, s.verdict)
            w(_row((label, s.repo or a.host, status, size, (a.sha256 or "-")[:8])))
            if s.verdict not in ("ok", "differs") and a.message:
                w(_detail("-" if fc.served else "!", a.message))
            for p in s.problems:
                w(_detail("!", p))
            if a.revision and s.repo:
                revisions.setdefault(s.repo, a.revision)
        for p in fc.own_problems:
            w(_detail("!", p if fc.served else "no source serves this file"))
        for n in fc.own_notes:
            w(_detail("-", n))
    w("\n")
    if estimated:
        w("* the catalog's size is an estimate; the Hub's exact size is shown\n")
    if revisions:
        w("revisions:\n")
        for repo, rev in revisions.items():
            w(_fit(f"  {repo} @ {rev[:12]}", WIDTH) + "\n")
    bad = [f for f in report.files if not f.ok]
    pending = [f.to_record for f in report.files if f.to_record]
    path = safe(str(ctx.paths.user_catalog_file))
    if written is not None:
        if written.changed:
            counts = _counts(written.sizes, written.sha256, written.revisions)
            w(textwrap.fill(f"recorded {counts} in {path}", WIDTH) + "\n")
        else:
            w(f"nothing to record in {path}\n")
        for nf in written.not_found:
            w(_detail("-", f"{nf}: not in your catalog copy with this URL; not recorded"))
    elif pending:
        sizes = sum(1 for r in pending if "size" in r)
        shas = sum(1 for r in pending if "sha256" in r)
        revs = sum(1 for r in pending if "revision" in r)
        counts = _counts(sizes, shas, revs)
        w(textwrap.fill(f"--write would record {counts} in {path}", WIDTH) + "\n")
    if bad:
        w(f"{len(bad)} of {len(report.files)} files have problems:\n")
        for f in bad:
            w(_detail("!", f.where))
    else:
        w(f"all {len(report.files)} files are served with the catalog's bytes\n")
    return "".join(out)
