"""``distill`` command line. No textual import on the headless paths (fast start)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

from distill_tui import __version__
from distill_tui.textsafe import visible

RENDERERS = ("auto", "sixel", "kitty", "halfcell", "unicode")

if TYPE_CHECKING:
    #: what ``add_subparsers`` returns; each ``_add_*_parser`` puts its command on one
    _Subcommands: TypeAlias = argparse._SubParsersAction["_Parser"]


class CliError(Exception):
    """A one-line reason; the process exits non-zero with it."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog is computed when help is shown (model ids and default
    quants come from the catalog: never loaded just to parse the command line)."""

    epilog_fn: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.epilog_fn is not None:
            try:
                self.epilog = self.epilog_fn()
            except Exception as e:  # help must always print
                self.epilog = f"(the catalog could not be read: {visible(e)})"
        return super().format_help()


def _catalog_models_help(kind: str | None = None) -> str:
    """The catalog's models (``kind``: only those of that type), their quants and defaults
    (for --help)."""
    from distill_tui.catalog import load_catalog
    from distill_tui.paths import AppPaths

    cat = load_catalog(AppPaths.from_env().user_catalog_file, seed=False).catalog
    head = {
        None: "models (--model / MODEL; --quant ROLE=Q per component; default quants marked *):",
        "image-generation": "image-generation models (--model ID; --quant ROLE=Q per "
        "component; default quants marked *):",
        "upscaler": "upscalers (--upscaler ID):",
    }
    lines = [head.get(kind, head[None])]
    for m in cat.models:
        if kind is not None and m.type != kind:
            continue
        r = m.recommended
        lines.append(f"  {m.id}: {m.name}  ({m.spec.label}, {m.type})")
        for comp in m.components:
            if not comp.has_quants:
                continue
            d = m.default_quant(comp.role)
            ids = " ".join(q + ("*" if q == d else "") for q in comp.ids)
            alias = {"diffusion": "--diffusion", "textEncoder": "--text-encoder"}.get(comp.role)
            label = alias or f"--quant {comp.role}="
            lines.append(f"    {label:<15} {ids}")
        if m.spec.is_generator:
            lines.append(
                f"    recommended     {r.width}x{r.height}, {r.steps} steps, cfg {r.cfg_scale:g}, "
                f"sampler {r.sampler}, scheduler {r.scheduler}"
            )
    return visible("\n".join(lines), multiline=True)


def _generate_epilog() -> str:
    return (
        _catalog_models_help("image-generation")
        + "\n(upscalers, for --upscale: distill upscale --help)"
        + "\n\ndefaults, weakest first: the model's recommended values, the `generation` "
        "settings, the flags.\n-o FILE: .png (parameters in the A1111 `parameters` text chunk), "
        ".jpg/.jpeg or .webp (parameters in EXIF UserComment, as A1111 writes them); any other "
        "extension is refused."
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each command's parser is built by its ``_add_*`` below (the
    order of the calls is the order of ``--help`` and of the completion script)."""
    p = _Parser(
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
    _add_models_parser(sub)
    _add_generate_parser(sub)
    _add_compare_parser(sub)
    _add_upscale_parser(sub)
    _add_catalog_parser(sub)
    _add_doctor_parser(sub)
    _add_completion_parser(sub)
    sub.add_parser("tui", help="start the TUI (same as no command)")
    return p


# ---- models ----------------------------------------------------------------------------


def _add_models_parser(sub: _Subcommands) -> None:
    """``distill models ACTION``: one ``_add_models_*`` per action (verify and clean: a line)."""
    models = sub.add_parser("models", help="list, download, select, verify and remove models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    _add_models_list(msub)
    _add_models_use(msub)
    _add_models_download(msub)
    _add_models_status(msub)
    _add_models_check(msub)
    ver = msub.add_parser("verify", help="re-hash downloaded files against the inventory")
    ver.add_argument("model", nargs="?")
    _add_models_remove(msub)
    msub.add_parser("clean", help="remove partial downloads and stale locks (never outputs/)")
    _add_models_import(msub)
    _add_models_recommend(msub)


def _add_models_list(msub: _Subcommands) -> None:
    ls = msub.add_parser("list", help="models, quants, sizes, what is downloaded and active")
    ls.add_argument("--json", action="store_true", help="machine-readable output (stable shape)")


_QUANT_HELP = (
    "the quant of one component, repeatable: --quant diffusion=Q4_K --quant text-encoder=Q8_0 "
    "(roles: the model's; te = text-encoder)"
)


def _add_models_use(msub: _Subcommands) -> None:
    use = msub.add_parser("use", help="choose the active quants (and make the model active)")
    use.add_argument("model")
    use.add_argument("--quant", action="append", metavar="ROLE=Q", help=_QUANT_HELP)
    use.add_argument("--diffusion", metavar="Q", help="= --quant diffusion=Q")
    use.add_argument("--text-encoder", metavar="Q", help="= --quant text-encoder=Q")
    use.add_argument("--no-activate", action="store_true", help="do not change active_model_id")


def _add_models_download(msub: _Subcommands) -> None:
    """The epilog lists the catalog's models and quants (read only when help is shown)."""
    dl = msub.add_parser("download", help="download a model's files (resumable, verified)")
    dl.add_argument("model")
    dl.add_argument(
        "--quant",
        action="append",
        metavar="ROLE=Q",
        help=_QUANT_HELP + "; default: the selected, else recommended, quant of each",
    )
    dl.add_argument("--diffusion", metavar="Q", help="= --quant diffusion=Q")
    dl.add_argument("--text-encoder", metavar="Q", help="= --quant text-encoder=Q")
    dl.add_argument("--no-vae", action="store_true", help="skip the VAE")
    dl.add_argument(
        "--only",
        metavar="PARTS",
        help="only these components of the set, comma-separated roles: e.g. "
        "diffusion,text-encoder,vae (an upscaler: upscaler)",
    )
    dl.add_argument("--connections", type=int, metavar="N", help="Range segments per file")
    dl.add_argument(
        "--json",
        action="store_true",
        help="print the result of every file as JSON on stdout (progress stays on stderr)",
    )
    dl.add_argument(
        "--quiet", "-q", action="store_true", help="no progress: only errors and the final lines"
    )
    dl.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be fetched, from where, how big (the Hub's size; offline: the "
        "catalog's, marked estimate) and whether it fits on disk; exit 0 (fits) or 1",
    )
    dl.add_argument(
        "--detach",
        action="store_true",
        help="download in a background process of its own (survives the end of the SSH "
        "session; progress in `distill models status`, output in a log file) and return at once",
    )
    dl.epilog_fn = _catalog_models_help
    dl.formatter_class = argparse.RawDescriptionHelpFormatter


def _add_models_status(msub: _Subcommands) -> None:
    st = msub.add_parser(
        "status", help="downloads on this box, by any distill process, and resumable partials"
    )
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")


def _add_models_check(msub: _Subcommands) -> None:
    chk = msub.add_parser(
        "check",
        help="ask the Hub whether installed files changed upstream (never downloads)",
        description="HEAD the resolve URL of every installed file (of MODEL, or all) and "
        "compare the Hub's sha256, size and revision with the inventory: up to date, upstream "
        "changed, gone (404), or cannot check (offline, unreachable). Exit 0: all up to date; "
        "1: something changed or is gone; 3: nothing could be checked.",
    )
    chk.add_argument("model", nargs="?")
    chk.add_argument("--json", action="store_true", help="machine-readable output")


def _add_models_remove(msub: _Subcommands) -> None:
    """Exactly one of the parts (or --all) must be named: nothing is removed by default."""
    rm = msub.add_parser("remove", help="delete downloaded files")
    rm.add_argument("model")
    g = rm.add_mutually_exclusive_group(required=True)
    g.add_argument("--quant", action="append", metavar="ROLE=Q", help=_QUANT_HELP)
    g.add_argument("--diffusion", metavar="Q", help="= --quant diffusion=Q")
    g.add_argument("--text-encoder", metavar="Q", help="= --quant text-encoder=Q")
    g.add_argument("--vae", action="store_true")
    g.add_argument("--all", action="store_true", help="every file of the model")
    rm.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="do not ask (a file other models use is then kept unless --force)",
    )
    rm.add_argument(
        "--force",
        action="store_true",
        help="also remove the active quant (its selection is cleared) and a file other models "
        "use (a shared VAE or text encoder)",
    )


def _add_models_import(msub: _Subcommands) -> None:
    imp = msub.add_parser(
        "import",
        help="link model files already on this machine (a ComfyUI models/ folder...) into place",
        description="Scan PATHs (files or folders; default: the import_dirs setting) for files "
        "whose bytes are a catalog file's: size first, then sha256 against the catalog's (or "
        "the Hub's). A match is hard-linked into the models dir (a symlink when that is "
        "impossible: said so), never copied, and recorded as a download would be. Files that "
        "match nothing are listed with what they look like (GGUF architecture and quant type).",
    )
    imp.add_argument("paths", nargs="*", metavar="PATH")
    imp.add_argument(
        "--remember", action="store_true", help="also add the PATHs to the import_dirs setting"
    )


def _add_models_recommend(msub: _Subcommands) -> None:
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


# ---- generate --------------------------------------------------------------------------


def _add_generate_parser(sub: _Subcommands) -> None:
    """``distill generate``: its options in four steps, in the order ``--help`` shows them."""
    gen = sub.add_parser(
        "generate",
        help="generate images headless with the active model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.epilog_fn = _generate_epilog
    _add_generate_recipe(gen)
    _add_generate_inputs(gen)
    _add_engine_knobs(gen)
    _add_generate_output(gen)


def _add_params(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *names: str) -> None:
    """The flags of these ``distill_tui.recipe.PARAMS`` rows, as the rows declare them."""
    from distill_tui.recipe import BY_NAME, cli_options

    for name in names:
        p = BY_NAME[name]
        parser.add_argument(p.flag, **cli_options(p))


def _rows(side: str) -> tuple[str, ...]:
    """The flagged rows of ``PARAMS``: "recipe" (the picture), "inputs" (images and LoRAs
    it starts from) or "knobs" (the engine knobs), in table order."""
    from distill_tui.recipe import PARAMS

    def part(p) -> str:  # type: ignore[no-untyped-def]
        if p.is_knob:
            return "knobs"
        if p.name == "upscaler":  # after the picture: distill generate's output options
            return "output"
        return (
            "inputs" if p.kind in ("path", "paths", "loras") or p.name == "strength" else "recipe"
        )

    return tuple(p.name for p in PARAMS if p.flag and part(p) == side)


def _add_generate_recipe(gen: _Parser) -> None:
    """The prompt and the parameters a history record keeps (what ``--reuse`` fills in)."""
    from distill_tui.recipe import BY_NAME

    gen.add_argument("prompt", nargs="?", help=BY_NAME["prompt"].help)
    gen.add_argument(
        "--reuse",
        metavar="ID",
        help="generate an image of the history again: its prompt, parameters, images, LoRAs, "
        "engine knobs, model and quants (id from the Gallery or history.jsonl, a unique "
        "prefix, or 'last'); flags override",
    )
    _add_params(gen, *_rows("recipe"))
    gen.add_argument("--model", metavar="ID", help="default: the active model (ids below)")
    gen.add_argument(
        "--quant",
        action="append",
        metavar="ROLE=Q",
        help="generate with this quant of a component (repeat per role, e.g. diffusion=Q8_0, "
        "text-encoder=Q4_K_M); default: the model's selected ones",
    )


def _add_generate_inputs(gen: _Parser) -> None:
    """Images and LoRAs the generation starts from (edit, img2img)."""
    _add_params(gen, *_rows("inputs"))
    gen.add_argument(
        "--lora-dir", metavar="DIR", help="the LoRA folder (default: the lora_dir setting)"
    )


def _add_engine_knobs(gen: _Parser) -> None:
    """The engine's settings; None (not given) leaves each to the generation settings."""
    knobs = gen.add_argument_group("engine knobs (default: the generation settings)")
    _add_params(knobs, *_rows("knobs"))


def _add_generate_output(gen: _Parser) -> None:
    """Where the images go and what is printed about them."""
    out = gen.add_mutually_exclusive_group()
    out.add_argument(
        "-o", "--output", metavar="FILE", help="the image file: .png (default), .jpg or .webp"
    )
    out.add_argument("--out-dir", metavar="DIR", help="default: the outputs folder")
    gen.add_argument(
        "--overwrite",
        action="store_true",
        help="let -o replace an existing regular file (without it an existing file is refused; "
        "a device, FIFO or folder is never replaced)",
    )
    gen.add_argument(
        "--json",
        action="store_true",
        help="print paths, seed, timings, model and quants as JSON on stdout",
    )
    gen.add_argument(
        "--quiet", "-q", action="store_true", help="no progress: only errors and the result"
    )
    _add_params(gen, *_rows("output"))  # --upscale [ID]


# ---- the other commands -----------------------------------------------------------------


def _add_compare_parser(sub: _Subcommands) -> None:
    """Built here, not in cli/compare.py: building it must not import Pillow or the engine."""
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
    cmp.add_argument("--seed", type=int, default=None, help="-1 = one random seed for all cells")
    cmp.add_argument("--model", metavar="ID", help="default: the active model")
    cmp.add_argument(
        "--diffusion", action="append", metavar="Q,Q", help="diffusion quants (comma-separated)"
    )
    cmp.add_argument("--text-encoder", action="append", metavar="Q,Q", help="text encoder quants")
    cmp.add_argument(
        "--quant",
        action="append",
        metavar="ROLE=Q,Q",
        help="the quants of a component to compare (diffusion=Q4_K,Q8_0 or text-encoder=...; "
        "--diffusion / --text-encoder are the same)",
    )
    # the picture's parameters and the engine knobs: the rows of distill_tui.recipe.PARAMS
    _add_params(cmp, *(n for n in _rows("recipe") if n not in ("seed", "batch_count")))
    knobs = cmp.add_argument_group("engine knobs (default: the generation settings)")
    _add_params(knobs, *_rows("knobs"))
    cmp.add_argument("-o", "--output", metavar="FILE", help="the sheet (default: in outputs/)")
    cmp.add_argument(
        "--overwrite",
        action="store_true",
        help="let -o replace an existing regular file (a device, FIFO or folder never)",
    )


def _add_upscale_parser(sub: _Subcommands) -> None:
    """``distill upscale``; run by cli/upscale.py (building this imports no engine)."""
    up = sub.add_parser(
        "upscale",
        help="upscale images with an ESRGAN upscaler (4x with Real-ESRGAN x4plus)",
        description=textwrap.fill(  # the raw formatter (the upscalers' list) keeps lines
            "Upscale each IMAGE with the upscaler (a catalog upscaler, the active or "
            "first installed one by default, or a .pth/.safetensors file). The result keeps the "
            "source's metadata plus the upscaler, goes to the outputs folder (the Gallery lists "
            "it, linked to its source) and its path is printed. Sources: PNG, JPEG, WebP or "
            "BMP, at most 4096 px a side; results at most 16384 px a side and 67 megapixels.",
            78,
        ),
    )
    up.add_argument("images", nargs="+", metavar="IMAGE")
    out = up.add_mutually_exclusive_group()
    out.add_argument(
        "-o", "--output", metavar="FILE", help="the result (one IMAGE only): .png, .jpg or .webp"
    )
    out.add_argument("--out-dir", metavar="DIR", help="default: the outputs folder")
    up.add_argument("--upscaler", metavar="ID|PATH", help="a catalog upscaler id or an ESRGAN file")
    up.add_argument(
        "--tile-size",
        type=int,
        metavar="PX",
        help="tile side the engine works in (32-256, default 128): larger needs more memory "
        "(its square)",
    )
    up.add_argument(
        "--overwrite",
        action="store_true",
        help="let -o replace an existing regular file (a device, FIFO or folder never)",
    )
    up.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    up.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    up.epilog_fn = partial(_catalog_models_help, "upscaler")
    up.formatter_class = argparse.RawDescriptionHelpFormatter


def _add_catalog_parser(sub: _Subcommands) -> None:
    """Built here, not in cli/catalog.py: building it must not import the check's modules."""
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


def _add_doctor_parser(sub: _Subcommands) -> None:
    doc = sub.add_parser("doctor", help="backend, GPU, paths, disk, token present yes/no")
    doc.add_argument("--json", action="store_true", help="machine-readable output")


def _add_completion_parser(sub: _Subcommands) -> None:
    comp = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for the shell, generated from this parser. "
        'bash: eval "$(distill completion bash)" in ~/.bashrc; zsh: eval "$(distill '
        'completion zsh)" in ~/.zshrc; fish: distill completion fish > '
        "~/.config/fish/completions/distill.fish",
    )
    comp.add_argument("shell", choices=("bash", "zsh", "fish"))


#: the exit status of a command whose reader went away (`distill models list | head -1`):
#: 128 + SIGPIPE, what a shell reports for any program a closed pipe ended
EXIT_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A closed stdout (a pipe into ``head``) ends it quietly with 141."""
    try:
        try:
            code = _main(argv)
        finally:
            _say_set_aside()
        sys.stdout.flush()  # what is still buffered must fail here, not at interpreter exit
        return code
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_PIPE


def _say_set_aside() -> None:
    """Files of ours that a command found unusable and moved aside (a partial download's
    progress file of the wrong shape): one warning line each, once."""
    sidecar = sys.modules.get("distill_tui.downloads.sidecar")  # never imported just for this
    if sidecar is None:
        return
    for note in sidecar.drain_notes():
        print(f"warning: {visible(note)}", file=sys.stderr)


def _drop_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush must not fail again."""
    import os

    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:  # the completion scripts' values (hidden, no parser)
        from distill_tui.cli.complete_values import main as complete

        return complete(words[1:])
    args = build_parser().parse_args(argv)
    command = args.command or "tui"
    if command == "tui":
        # the terminal probe waits for the terminal's answers: let it wait while the
        # imports below run (see image_probe)
        from distill_tui import image_probe

        image_probe.start()
    if command == "completion":
        from distill_tui.cli.completion import script

        sys.stdout.write(script(build_parser(), args.shell))
        return 0
    from distill_tui.catalog import CatalogError
    from distill_tui.hftoken import HFEnvError, check_env

    try:
        # HF_ENDPOINT / token: one line before anything (the TUI: the endpoint only; reading the
        # token imports huggingface_hub's token code, and a download reports a bad token itself)
        # the CA variables matter to the commands that ask a server (the TUI's downloads report
        # a TLS problem on their own rows)
        network = command == "catalog" or (
            command == "models"
            and getattr(args, "models_command", None) in ("download", "check", "recommend")
        )
        check_env(token=command != "tui", ca=network)
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
        if command == "upscale":
            from distill_tui.cli.upscale import run_upscale

            return run_upscale(args, ctx)
        if command == "catalog":
            from distill_tui.cli import catalog

            return catalog.run(args, ctx)
        if command == "doctor":
            from distill_tui.cli.doctor import run_doctor

            return run_doctor(args, ctx)
    except BrokenPipeError:
        raise
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
