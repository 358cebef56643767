"""``distill`` command line. No textual import on the headless paths (fast start)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from distill_tui import __version__
from distill_tui.textsafe import visible

RENDERERS = ("auto", "sixel", "kitty", "halfcell", "unicode")


class CliError(Exception):
    """A one-line reason; the process exits non-zero with it."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distill",
        description="Keyboard-first terminal studio for local image generation "
        "(FLUX.2 Klein via stable-diffusion.cpp). Without a command, starts the TUI.",
    )
    p.add_argument("--version", action="version", version=f"distill {__version__}")
    p.add_argument("--debug", action="store_true", help="verbose log file")
    p.add_argument(
        "--image-renderer",
        choices=RENDERERS,
        help="how images are drawn in the TUI (default: the setting, 'auto')",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # ---- models ----------------------------------------------------------------------
    models = sub.add_parser("models", help="list, download, select, verify and remove models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = msub.add_parser("list", help="models, quants, sizes, what is downloaded and active")
    ls.add_argument("--json", action="store_true", help="machine-readable output (stable shape)")

    use = msub.add_parser("use", help="choose the active quants (and make the model active)")
    use.add_argument("model")
    use.add_argument("--diffusion", metavar="Q")
    use.add_argument("--text-encoder", metavar="Q")
    use.add_argument("--no-activate", action="store_true", help="do not change active_model_id")

    dl = msub.add_parser("download", help="download a model's files (resumable, verified)")
    dl.add_argument("model")
    dl.add_argument(
        "--diffusion", metavar="Q", help="diffusion quant (default: selected/recommended)"
    )
    dl.add_argument("--text-encoder", metavar="Q", help="text encoder quant")
    dl.add_argument("--no-vae", action="store_true", help="skip the VAE")
    dl.add_argument(
        "--only",
        metavar="PARTS",
        help="only these parts of the set, comma-separated: diffusion,text-encoder,vae",
    )
    dl.add_argument("--connections", type=int, metavar="N", help="Range segments per file")
    dl.add_argument(
        "--detach",
        action="store_true",
        help="download in a background process of its own (survives the end of the SSH "
        "session; progress in `distill models status`, output in a log file) and return at once",
    )

    st = msub.add_parser(
        "status", help="downloads on this box, by any distill process, and resumable partials"
    )
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")

    ver = msub.add_parser("verify", help="re-hash downloaded files against the inventory")
    ver.add_argument("model", nargs="?")

    rm = msub.add_parser("remove", help="delete downloaded files")
    rm.add_argument("model")
    g = rm.add_mutually_exclusive_group(required=True)
    g.add_argument("--diffusion", metavar="Q")
    g.add_argument("--text-encoder", metavar="Q")
    g.add_argument("--vae", action="store_true")
    g.add_argument("--all", action="store_true")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rm.add_argument(
        "--force",
        action="store_true",
        help="also remove the active quant (its selection is cleared) and a VAE other models use",
    )

    msub.add_parser("clean", help="remove partial downloads and stale locks (never outputs/)")

    rec = msub.add_parser(
        "recommend",
        help="which sets fit this machine's GPU (memory model; best set first)",
        description="Estimate the peak device memory of every set (diffusion x text encoder "
        "quant + VAE) at the generation size and fit it to the GPU (the engine's, else the "
        "NVIDIA card NVML reports; no GPU: the RAM). Fake a card with DISTILL_FAKE_DEVICES.",
    )
    rec.add_argument("--model", metavar="ID", help="one model (default: every model)")
    rec.add_argument("--width", type=int, help="default: the generation setting / catalog")
    rec.add_argument("--height", type=int)
    rec.add_argument("--all", action="store_true", help="list every set, not only the best")
    rec.add_argument("--json", action="store_true", help="machine-readable output")

    # ---- generate --------------------------------------------------------------------
    gen = sub.add_parser("generate", help="generate images headless with the active model")
    gen.add_argument("prompt")
    gen.add_argument("--negative", default=None, metavar="TEXT")
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg", type=float)
    gen.add_argument("--seed", type=int, default=-1, help="-1 = random (the used seed is printed)")
    gen.add_argument("--sampler")
    gen.add_argument("--scheduler")
    gen.add_argument("--batch", type=int, default=1)
    gen.add_argument("--model", metavar="ID")
    gen.add_argument("--ref-image", action="append", metavar="PATH", help="Klein edit reference")
    gen.add_argument("--threads", type=int)
    out = gen.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE")
    out.add_argument("--out-dir", metavar="DIR")

    # ---- compare (parser here: building it must not import Pillow or the engine) -----------
    cmp = sub.add_parser(
        "compare",
        help="one prompt and seed through several installed quants: a contact sheet PNG",
        description="Generate the same prompt with the same seed with every chosen pair of "
        "installed quants (diffusion x text encoder; default: every downloaded quant of each) "
        "and write one contact sheet PNG (stdout: its path). The images go to the outputs "
        "folder and the history (Gallery) too. Ctrl-C stops and keeps a sheet of the finished "
        "cells (exit 130).",
    )
    cmp.add_argument("prompt")
    cmp.add_argument("--seed", type=int, default=-1, help="-1 = one random seed for all cells")
    cmp.add_argument("--model", metavar="ID", help="default: the active model")
    cmp.add_argument(
        "--diffusion", action="append", metavar="Q,Q", help="diffusion quants (comma-separated)"
    )
    cmp.add_argument(
        "--text-encoder", action="append", metavar="Q,Q", help="text encoder quants"
    )
    cmp.add_argument("--negative", default=None, metavar="TEXT")
    cmp.add_argument("--width", type=int)
    cmp.add_argument("--height", type=int)
    cmp.add_argument("--steps", type=int)
    cmp.add_argument("--cfg", type=float)
    cmp.add_argument("--sampler")
    cmp.add_argument("--scheduler")
    cmp.add_argument("--threads", type=int)
    cmp.add_argument("-o", "--output", metavar="FILE", help="the sheet (default: in outputs/)")

    # ---- catalog (parser here: building it must not import the check's modules) ---------
    cat = sub.add_parser("catalog", help="check the model catalog against the Hugging Face Hub")
    csub = cat.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    chk = csub.add_parser(
        "check",
        help="ask the Hub about every file: exists, gated, size, sha256, revision",
        description="Ask the Hugging Face Hub (HEAD of each resolve URL, 8 at a time; "
        "HF_ENDPOINT and HF_TOKEN are honoured, the token goes to the Hub only) about every "
        "source of every catalog file (your copy layered on the bundled one: downloadUrl and "
        "mirrors) and compare the answers with the catalog. Exit 0: every file is served with "
        "the catalog's bytes; 1: a file is missing, not reachable (e.g. gated sources only and "
        "no approved token) or differs (size, sha256, a mirror serving other bytes); 3: the Hub "
        "cannot be reached at all.",
    )
    chk.add_argument("--model", metavar="ID", help="check one model only")
    chk.add_argument("--json", action="store_true", help="machine-readable output")
    chk.add_argument(
        "--write",
        action="store_true",
        help="record the Hub's exact sizes, sha256 and revisions in your catalog copy (files "
        "without problems only; a value that contradicts the Hub is never overwritten)",
    )
    chk.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds one source may take, retries included (default 30)",
    )

    doc = sub.add_parser("doctor", help="backend, GPU, paths, disk, token present yes/no")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("tui", help="start the TUI (same as no command)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "tui"
    from distill_tui.catalog import CatalogError
    from distill_tui.hftoken import HFEnvError, check_env

    try:
        check_env()  # HF_ENDPOINT / token: one line before anything (the TUI included)
    except HFEnvError as e:
        print(f"distill: {e}", file=sys.stderr)
        return 2
    try:
        if command == "tui":
            from distill_tui.cli.tui import run_tui

            return run_tui(args)
        from distill_tui.context import CoreContext, setup_logging

        ctx = CoreContext.build()
        setup_logging(ctx.paths, args.debug)
        for w in ctx.warnings:
            print(f"warning: {visible(w)}", file=sys.stderr)
        if command == "models":
            from distill_tui.cli import models

            return models.run(args, ctx)
        if command == "generate":
            from distill_tui.cli.generate import run_generate

            return run_generate(args, ctx)
        if command == "compare":
            from distill_tui.cli.compare import run_compare

            return run_compare(args, ctx)
        if command == "catalog":
            from distill_tui.cli import catalog

            return catalog.run(args, ctx)
        if command == "doctor":
            from distill_tui.cli.doctor import run_doctor

            return run_doctor(args, ctx)
    except CliError as e:
        print(f"distill: {visible(e)}", file=sys.stderr)
        return e.code
    except CatalogError as e:  # e.g. the bundled catalog after HF_ENDPOINT's rewrite
        lines = str(e).splitlines()
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        print(f"distill: {visible(lines[0] if lines else e)}{more}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distill: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(command)
