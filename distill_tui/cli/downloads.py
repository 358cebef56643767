"""``distill models download|verify|remove|clean`` (rich progress; no textual import)."""

from __future__ import annotations

import argparse
import asyncio
import builtins
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from distill_tui.catalog import COMPONENT_LABELS, CatalogModel, UnknownModelError
from distill_tui.cli import CliError
from distill_tui.context import CoreContext
from distill_tui.formatting import eta_text, human_size
from distill_tui.textsafe import visible

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def print(*values: object, **kwargs: Any) -> None:
    """``builtins.print`` with control characters shown (textsafe): the lines of this module
    quote inventory keys, names found on disk (maybe not UTF-8) and catalog text."""
    builtins.print(*(visible(v, multiline=True) for v in values), **kwargs)


def run(args: argparse.Namespace, ctx: CoreContext) -> int:
    cmd = args.models_command
    if cmd == "download":
        return cmd_download(args, ctx)
    if cmd == "verify":
        return cmd_verify(args, ctx)
    if cmd == "remove":
        return cmd_remove(args, ctx)
    if cmd == "clean":
        return cmd_clean(args, ctx)
    if cmd == "status":
        return cmd_status(args, ctx)
    raise CliError(f"unknown models command {cmd!r}")


def _model(ctx: CoreContext, model_id: str) -> CatalogModel:
    try:
        return ctx.catalog.require(model_id)
    except UnknownModelError as e:
        raise CliError(str(e)) from None


def _quant(model: CatalogModel, comp: str, qid: str) -> str:
    section = model.section(comp)
    if section.get(qid) is None:
        label = COMPONENT_LABELS[comp].lower()
        raise CliError(
            f"unknown {label} quant {qid!r} for {model.id}; valid: {', '.join(section.ids)}"
        )
    return qid


# ---- download ------------------------------------------------------------------------------
def _detach(args: argparse.Namespace, ctx: CoreContext, model: CatalogModel, items) -> int:
    from distill_tui.downloads.handoff import detach_command, spawn_detached

    argv = detach_command(model.id, items, args.connections)
    pid, log = spawn_detached(argv, ctx.paths.log_dir, model.id)
    print(f"downloading {model.id} in the background (pid {pid}); you can close this terminal")
    print(detached_message(pid, log))
    return 0


def detached_message(pid: int, log: object) -> str:
    """How to follow and stop a detached download, naming the distill a new shell runs."""
    from distill_tui.selfcmd import distill_command

    return (
        f"  progress: {distill_command()} models status --watch    log: {log}\n"
        f"  stop it:  kill {pid}   (partials are kept; rerun to resume)"
    )


# ---- status --------------------------------------------------------------------------------
def status_json(ctx: CoreContext, acts=None) -> dict:
    from distill_tui.downloads.activity import scan

    acts = scan(ctx.inventory.models_dir, ctx.catalog) if acts is None else acts
    return {
        "version": 1,
        "modelsDir": str(ctx.inventory.models_dir),
        "downloads": [
            {
                "file": a.key,
                "model": a.model_id,
                "component": a.component,
                "quant": a.quant_id,
                "state": a.state,
                "bytesDone": a.done,
                "total": a.size,
                "fraction": round(a.fraction, 4),
                "pid": a.pid if a.pid and a.pid > 0 else None,
                "speed": a.speed,
                # the holder stopped beating (SIGSTOP, ctrl+z, hung): seconds it has been quiet
                "stalledFor": round(a.holder.quiet_for, 1) if a.stalled and a.holder else None,
                # every model whose component is this file (one download serves them all)
                "usedBy": [m.id for m in ctx.catalog.users_of(a.key)],
            }
            for a in acts
        ],
    }


def _status_lines(ctx: CoreContext, acts) -> list[str]:
    if not acts:
        return [f"no downloads and no partial downloads in {ctx.inventory.models_dir}"]
    lines = []
    for a in acts:
        pct = f"{a.fraction * 100:5.1f}%"
        size = f"{human_size(a.done)} of {human_size(a.size)}" if a.size else human_size(a.done)
        if a.stalled and a.holder is not None:  # held, but its holder is not running
            lines.append(f"  stalled      {a.key}  {pct}  {size}  {a.holder.quiet_text()}")
            lines.append(f"               {a.holder.advice()[0].upper()}{a.holder.advice()[1:]}")
        elif a.running:
            who = f"pid {a.pid}" if a.pid and a.pid > 0 else "another process"
            rate = ""
            if a.speed is not None:
                eta = (a.size - a.done) / a.speed if a.speed > 0 else None
                rate = f"  {human_size(a.speed)}/s  ETA {eta_text(eta)}"
            lines.append(f"  downloading  {a.key}  {pct}  {size}{rate}  ({who})")
        else:
            lines.append(f"  partial      {a.key}  {pct}  {size}  (resume: {resume_hint(a)})")
    return lines


def resume_hint(a) -> str:
    """The command that resumes exactly this partial: its model, its quant and only its part
    (a bare ``models download MODEL`` fetches the selected set, maybe other quants), run by the
    distill a new shell finds (selfcmd)."""
    import shlex

    from distill_tui.selfcmd import distill_command

    if not a.model_id:
        return f"{distill_command()} models download"
    from distill_tui.cli.roles import quant_flag, role_flag

    words = ["models", "download", a.model_id]
    if a.component and a.quant_id:
        words += quant_flag(a.component, a.quant_id)
    if a.component:
        words += ["--only", role_flag(a.component)]
    return f"{distill_command()} {shlex.join(words)}"


def cmd_status(args: argparse.Namespace, ctx: CoreContext) -> int:
    import time

    from distill_tui.downloads.activity import ActivityWatch

    watch = ActivityWatch(ctx.inventory.models_dir, ctx.catalog)
    if args.json and not args.watch:
        json.dump(status_json(ctx, watch.scan()), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not args.watch:
        print("\n".join(_status_lines(ctx, watch.scan())))
        return 0
    try:
        while True:
            acts = watch.scan()
            if args.json:
                sys.stdout.write(json.dumps(status_json(ctx, acts)) + "\n")
            else:
                tty = sys.stdout.isatty()
                text = "\n".join(_status_lines(ctx, acts))
                sys.stdout.write(("\x1b[H\x1b[J" if tty else "") + text + "\n")
            sys.stdout.flush()
            moving = any(a.running and not a.stalled for a in acts)  # a stalled one never ends
            if not moving and not args.json and not sys.stdout.isatty():
                return 0
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


def plan_for(args: argparse.Namespace, ctx: CoreContext, model: CatalogModel) -> list[tuple]:
    """(model id, role, quant id or None) of every file of the set to download: each component
    with quants at the quant given (``--quant ROLE=Q``, ``--diffusion``...), else the selected,
    else the recommended one; each component of one file (a VAE unless ``--no-vae``, an
    upscaler) as it is; ``--only`` keeps some roles."""
    from distill_tui.cli.roles import parts_arg, quant_args

    sel = ctx.settings.selection(model.id)
    chosen = quant_args(args, model)
    items: list[tuple] = []
    for comp in model.components:
        if comp.has_quants:
            qid = chosen.get(comp.role) or sel.get(comp.role) or model.default_quant(comp.role)
            items.append((model.id, comp.role, _quant(model, comp.role, qid)))
        elif not (comp.role == "vae" and args.no_vae):
            items.append((model.id, comp.role, None))
    only = getattr(args, "only", None)
    if only:
        wanted = parts_arg(only, model)
        items = [it for it in items if it[1] in wanted]
        if not items:
            raise CliError("--only leaves nothing to download (the VAE is skipped by --no-vae)")
    return items


def cmd_download(args: argparse.Namespace, ctx: CoreContext) -> int:
    model = _model(ctx, args.model)
    items = plan_for(args, ctx, model)
    if args.connections is not None and not 1 <= args.connections <= 32:
        raise CliError("--connections must be between 1 and 32")
    if getattr(args, "dry_run", False):
        from distill_tui.cli.dryrun import cmd_dry_run

        return cmd_dry_run(args, ctx, model, items)
    _refuse_offline(ctx, model, items)
    if getattr(args, "detach", False):
        return _detach(args, ctx, model, items)
    previous = {sig: signal.getsignal(sig) for sig in SIGNAL_EXIT}
    code = asyncio.run(
        _download(
            ctx,
            model,
            items,
            args.connections,
            json_out=bool(getattr(args, "json", False)),
            quiet=bool(getattr(args, "quiet", False)),
        )
    )
    if code not in SIGNAL_EXIT.values():
        # after a signal they stay ignored: the process is exiting, and another Ctrl-C
        # must not turn a clean stop into a traceback
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    return code


def _refuse_offline(ctx: CoreContext, model: CatalogModel, items: list[tuple]) -> None:
    """``HF_HUB_OFFLINE``: one line at once when anything would need the Hub. Files already
    installed need nothing, and a copy on this machine (the HF cache, an import folder: the
    cheap size/name check of the Model Manager) is linked by the run and hashed there, as
    ``hf download`` returns the cached file offline (issue 23.3)."""
    from distill_tui.downloads import localreuse as lr
    from distill_tui.hftoken import offline, offline_message

    if not offline():
        return
    files = [ctx.resolver.file_for(m, c, q) for m, c, q in items]
    todo = [f for f in files if not ctx.inventory.is_present(f.file)]
    dirs = tuple(ctx.settings.settings.import_dirs)
    index = lr.FolderIndex(dirs, skip=ctx.inventory.models_dir) if dirs and todo else None
    missing = [f.file for f in todo if lr.hint(f, index) is None]
    if missing:
        raise CliError(
            offline_message(
                f"cannot download {len(missing)} file(s) of {model.id} "
                f"({', '.join(visible(m) for m in missing)} not on this machine)"
            )
            + ", or bring them with `distill models import PATH` (files or a folder holding "
            "them, e.g. a ComfyUI models folder)",
            code=1,
        )


#: seconds between two progress lines when the output is not a terminal (a log, a pipe)
PROGRESS_EVERY = 5.0


def _label(ev) -> str:
    from distill_tui.cli.roles import role_word

    comp = role_word(ev.component)
    q = f" {ev.quant_id}" if ev.quant_id else ""
    src = f" from {ev.source}" if getattr(ev, "source", None) else ""  # a file with mirrors
    return visible(f"{comp}{q}{src}")


async def _download(
    ctx: CoreContext,
    model: CatalogModel,
    items: list[tuple],
    connections: int | None,
    *,
    json_out: bool = False,
    quiet: bool = False,
) -> int:
    from distill_tui.downloads import DownloadManager, DownloadState

    mgr = DownloadManager(ctx.catalog, ctx.settings, ctx.inventory, connections=connections)
    out = _Output(quiet=quiet, json_out=json_out)
    got_signal: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        if not got_signal:
            got_signal.append(sig)
            if sig == signal.SIGHUP:
                out.silence()  # the terminal is gone
            out.note(f"{signal.Signals(sig).name}: stopping, keeping partial downloads resumable…")
            mgr.pause_all()
        else:
            out.note("already stopping; the partial downloads stay consistent")

    # A hang-up the user chose to ignore (nohup, a detached session) stays ignored: the
    # download outlives the terminal. Output to a terminal that is gone is dropped quietly.
    handled = [s for s in SIGNAL_EXIT if signal.getsignal(s) is not signal.SIG_IGN]
    for sig in handled:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)

    present = [k for k in (mgr.key_for(*it) for it in items) if ctx.inventory.is_present(k)]
    out.set_files = {
        k: size for k, size in _set_sizes(model, items, mgr).items() if k not in present
    }
    out.header(model, items, mgr, present)
    unsubscribe = mgr.subscribe(out.event)
    try:
        results = await mgr.download_plan(items)
    finally:
        unsubscribe()
        await mgr.aclose()
        out.stop()
        for sig in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
            if got_signal:  # stopping already: more Ctrl-C must not interrupt the summary
                signal.signal(sig, signal.SIG_IGN)

    failed = [e for e in results if e.state == DownloadState.FAILED]
    nothing_done = bool(failed) and all(e.state == DownloadState.FAILED for e in results)
    for ev in results:
        out.result(ev, ctx, fetched=ev.key in out.fetched and ev.key not in present)
        if ev.state == DownloadState.DONE:
            fetched = ev.key in out.fetched and ev.key not in present
            where = "downloaded and verified" if fetched else "already downloaded"
            reuse = getattr(ev, "reuse", None)
            if reuse and reuse.startswith("linked"):
                where = reuse  # the same bytes were on this machine (localreuse)
            ctx.inventory.refresh()
            if ctx.inventory.is_unverified(ev.key):  # nothing to check the bytes against
                where = (
                    "downloaded" if fetched else "already downloaded"
                ) + ", unverified (no reference hash)"
            if not out.quiet:  # --quiet: errors and the final line only
                out.line(
                    f"  ok      {_label(ev):<22} {human_size(ev.total):>9}  {where}  ({ev.key})"
                )
        elif ev.state == DownloadState.FAILED:
            out.failure(f"  FAILED  {_label(ev):<22} {ev.error}")
        else:
            part = (
                f"{human_size(ev.bytes_done)} of {human_size(ev.total)} kept"
                if ev.resumable
                else "nothing kept"
            )
            out.line(f"  {ev.state.value:<7} {_label(ev):<22} {part}; rerun the command to resume")
    sel = ctx.settings.selection(model.id)
    ready = ctx.resolver.is_model_ready(model.id)
    if got_signal:
        code = SIGNAL_EXIT[signal.Signals(got_signal[0])]
    elif failed:
        kept = [e for e in failed if e.resumable and e.bytes_done > 0]
        if kept:  # a partial is on disk (a full disk...): never "nothing was downloaded"
            have = sum(e.bytes_done for e in kept)
            of = sum(e.total for e in kept)
            out.failure(
                f"nothing was published; kept: {human_size(have)} of {human_size(of)} as "
                f"partial download{'s' if len(kept) > 1 else ''}: fix the problem above and "
                "rerun to resume"
            )
        elif nothing_done:
            out.failure("nothing was downloaded; fix the problem above and rerun")
        code = 1
    else:
        out.line(_selection_line(model, sel, ready))
        code = 0
    if json_out:
        out.dump_json(model, sel, ready, code)
    return code


def _set_sizes(model: CatalogModel, items: list[tuple], mgr) -> dict[str, int]:
    """key -> catalog size of every file of the plan (the overall bar's total before a file
    starts; its event's total replaces it then)."""
    out: dict[str, int] = {}
    for mid, comp, qid in items:
        c = model.component(comp)
        f = None if c is None else (c.file if c.file is not None else c.get(qid or ""))
        out[mgr.key_for(mid, comp, qid)] = int(getattr(f, "size", 0) or 0)
    return out


def _selection_line(model: CatalogModel, sel, ready: bool) -> str:
    """The last line of a download (and of a detached hand-off's log): the quants in use, or
    that none is selected yet and how to choose (never "None", issue 23.9). A model without
    quants (an upscaler) says whether it is ready."""
    from distill_tui.cli.roles import role_word

    roles = model.quant_roles
    if not roles:
        return f"{model.id}: " + ("ready" if ready else "not ready")
    if all(sel.get(r) for r in roles):
        picked = ", ".join(f"{role_word(r)} {sel.get(r)}" for r in roles)
        return f"{model.id}: selected {picked}" + ("  (ready)" if ready else "")
    parts = [
        f"{role_word(r)} {sel.get(r)}" if sel.get(r) else f"no {role_word(r)} quant selected yet"
        for r in roles
    ]
    example = " ".join(f"--quant {r}=Q" for r in roles)
    return (
        f"{model.id}: {', '.join(parts)} (download one, or `distill models use {model.id} "
        f"{example}`)"
    )


class _Output:
    """Rich progress bars on a terminal; plain lines otherwise (logs, pipes, CI)."""

    def __init__(self, *, quiet: bool = False, json_out: bool = False) -> None:
        self.silent = False
        self.quiet = quiet  # no progress: errors and the final lines only
        self.json_out = json_out  # stdout is the JSON document; the human lines go to stderr
        self.results: list[dict] = []
        self.last_line: dict[str, float] = {}  # key -> monotonic time of its last progress line
        from distill_tui.hftoken import progress_bars_disabled

        #: no bars and no periodic progress lines (--quiet, HF_HUB_DISABLE_PROGRESS_BARS)
        self.no_progress = quiet or progress_bars_disabled()
        self.tty = sys.stderr.isatty() and not self.no_progress
        self.progress = None
        self.tasks: dict[str, Any] = {}  # rich TaskIDs
        self.last_state: dict[str, str] = {}
        self.fetched: set[str] = set()  # keys that moved bytes in this run
        self.reuse_said: set[str] = set()  # "not reused: …" lines already printed
        #: the files this run downloads (key -> catalog size) and their latest events: one
        #: overall bar / line for the set when it has several (issue 22.11)
        self.set_files: dict[str, int] = {}
        self.set_events: dict[str, Any] = {}
        self.set_task: Any = None
        self._state_widths: dict[str, int] = {}  #: key -> length of its state words
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
            )

            self.console = Console(stderr=True)
            self.bar = BarColumn()
            self.progress = Progress(
                TextColumn("{task.description:<28}", markup=False),  # outside text
                self.bar,
                DownloadColumn(binary_units=False),
                # the service's speed and ETA (a window of seconds of the bytes received in
                # this run: rate.py), not rich's own estimate from ``completed``, which counts
                # a resumed partial's bytes as speed
                TextColumn("{task.fields[rate]:>10}", markup=False),
                TextColumn("{task.fields[eta]:>11}", markup=False),
                TextColumn("{task.fields[state]}", markup=False),
                console=self.console,
                transient=False,
                refresh_per_second=8,
            )

    def silence(self) -> None:
        self.silent = True
        with contextlib.suppress(Exception):
            if self.progress is not None:
                self.progress.stop()
        self.progress = None

    def _print(self, text: str, err: bool = False) -> None:
        if self.silent:
            return
        try:
            stream = sys.stderr if err else sys.stdout
            stream.write(visible(text, multiline=True) + "\n")
            stream.flush()
        except (OSError, ValueError):
            self.silent = True

    def header(self, model, items, mgr, present) -> None:
        todo = len(items) - len(present)
        if self.quiet:
            return
        self._print(
            f"{model.name} ({model.id}): {todo} file(s) to download"
            + (f", {len(present)} already present" if present else ""),
            err=self.json_out,
        )
        if self.progress is not None and todo:
            self.progress.start()

    def event(self, ev) -> None:
        if ev.state.value == "downloading":
            self.fetched.add(ev.key)
        if self.silent:
            return
        reuse = getattr(ev, "reuse", None)
        if reuse and reuse.startswith("not reused") and reuse not in self.reuse_said:
            self.reuse_said.add(reuse)  # a local copy with other bytes: said once
            self.note(f"  {reuse}")
        try:
            self._event(ev)
        except (OSError, ValueError):
            self.silent = True

    def overall(self):
        """The set's progress (downloads/setprogress.py), or None for a set of one file."""
        if len(self.set_files) < 2:
            return None
        from distill_tui.downloads.setprogress import set_progress

        return set_progress(
            (size, False, self.set_events.get(k)) for k, size in self.set_files.items()
        )

    def _overall_bar(self) -> None:
        sp = self.overall()
        if sp is None or self.progress is None:
            return
        fields: dict[str, Any] = {
            "rate": f"{human_size(sp.speed)}/s" if sp.speed > 0 else "",
            "eta": f"ETA {sp.eta_words()}" if sp.eta is not None else "",
            "state": f"{sp.files_done} of {sp.files} files",
        }
        if self.set_task is None:
            self.set_task = self.progress.add_task("whole set", total=sp.total, **fields)
        self.progress.update(self.set_task, completed=sp.bytes_done, total=sp.total, **fields)

    def _overall_line(self) -> None:
        """Not a terminal: the set's line every PROGRESS_EVERY seconds, with the file lines."""
        sp = self.overall()
        if sp is None or self.no_progress or not sp.active:
            return
        now = time.monotonic()
        if now - self.last_line.get("\0set", 0.0) >= PROGRESS_EVERY:
            self.last_line["\0set"] = now
            self._print(f"  {sp.text()}", err=True)

    def _event(self, ev) -> None:
        state = ev.state.value
        if state == "downloading":
            self.fetched.add(ev.key)
        if self.quiet:
            return
        if ev.key in self.set_files:
            self.set_events[ev.key] = ev
            if self.progress is not None:
                self._overall_bar()
            elif state == "downloading" and ev.total:
                self._overall_line()
        if self.progress is not None:
            tid = self.tasks.get(ev.key)
            desc = _label(ev)
            activity = getattr(ev, "activity", None)  # retrying, stalled
            retry = getattr(ev, "retry", None)
            if retry is not None and activity:
                activity = retry.text(short=True)  # "retry 2/7 (HTTP 503), next in 1 s"
            extra = visible(activity or ev.note or ("" if state == "downloading" else state))
            extra = self._fit(ev.key, extra)
            rate = eta = ""
            if state == "downloading" and not activity:
                rate = f"{human_size(ev.speed)}/s" if ev.speed else ""
                eta = f"ETA {eta_text(ev.eta)}" if ev.eta is not None else ""  # hidden: unknown
            fields: dict[str, Any] = {"state": extra, "rate": rate, "eta": eta}
            if tid is None:
                tid = self.progress.add_task(desc, total=ev.total or None, **fields)
                self.tasks[ev.key] = tid
            self.progress.update(
                tid, description=desc, completed=ev.bytes_done, total=ev.total or None, **fields
            )
            return
        # a note (waiting for a lock, a Retry-After), a retry or a stall is printed once when it
        # starts, not with every tick (nor with every second of its "next in")
        retry = getattr(ev, "retry", None)
        stalled = getattr(ev, "stalled", None) is not None
        how = f"{retry.reason}#{retry.attempt}" if retry else ("stalled" if stalled else "")
        seen = f"{state}\0{ev.note or ''}\0{how}"
        if self.last_state.get(ev.key) != seen:
            self.last_state[ev.key] = seen
            size = f" {human_size(ev.total)}" if ev.total else ""
            note = f" ({ev.note})" if ev.note else ""
            activity = getattr(ev, "activity", None)
            if activity:  # "retrying (HTTP 503, attempt 2 of 7, next in 1 s)", "stalled (...)"
                note = f": {activity}{note}"
            src = f" from {ev.source}" if getattr(ev, "source", None) else ""
            self._print(f"  {state:<11} {ev.key}{size}{src}{note}", err=True)
            self.last_line[ev.key] = time.monotonic()
        elif state == "downloading" and ev.total and not self.no_progress:
            # not a terminal (a log, a pipe, CI): a progress line every PROGRESS_EVERY seconds
            now = time.monotonic()
            if now - self.last_line.get(ev.key, now) >= PROGRESS_EVERY:
                self.last_line[ev.key] = now
                eta = eta_text(ev.eta) if ev.speed > 0 else "--:--"
                # retrying / stalled: those words, not "0 B/s ETA --:--"
                how = getattr(ev, "activity", None) or f"{human_size(ev.speed)}/s  ETA {eta}"
                self._print(
                    f"  downloading {ev.key} {100 * ev.bytes_done / ev.total:5.1f}%  "
                    f"{human_size(ev.bytes_done)} of {human_size(ev.total)}  {how}",
                    err=True,
                )

    #: the bar's columns besides the bar and the state words: the label (28), the sizes, the
    #: speed (10), the ETA (11) and the gaps between them
    FIXED_CELLS = 28 + 14 + 10 + 11 + 5

    def _fit(self, key: str, words: str) -> str:
        """The state words within the terminal's width (issue 22.13: a retry line wider than
        120 columns made rich squeeze the sizes to "0.0/…"): the bar gives up cells first
        (down to 8), then the words end in an ellipsis."""
        if self.progress is None:
            return words
        width = self.console.width
        self._state_widths[key] = len(words)
        longest = max(self._state_widths.values())
        self.bar.bar_width = max(8, min(40, width - self.FIXED_CELLS - longest))
        room = max(8, width - self.FIXED_CELLS - self.bar.bar_width)
        return words if len(words) <= room else words[: room - 1] + "…"

    def note(self, text: str) -> None:
        if self.progress is not None and not self.silent:
            with contextlib.suppress(Exception):
                self.progress.console.print(
                    visible(text, multiline=True), markup=False, highlight=False
                )
                return
        self._print(text, err=True)

    def line(self, text: str) -> None:
        self._print(text, err=self.json_out)

    def failure(self, text: str) -> None:
        """A reason something failed: stderr, always (with --quiet and --json too)."""
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress.stop()  # a bar must not be drawn over the line
        self._print(text, err=True)

    def result(self, ev, ctx: CoreContext, *, fetched: bool) -> None:
        """The final result of one file, for ``--json``."""
        rec = ctx.inventory.get(ev.key) if ev.state.value == "done" else None
        how = None
        if ev.state.value == "done":
            reuse = getattr(ev, "reuse", None)
            how = "downloaded" if fetched else "already"
            if reuse and reuse.startswith("linked"):
                how = "linked"
        self.results.append(
            {
                "file": ev.key,
                "component": ev.component,
                "quant": ev.quant_id,
                "state": ev.state.value,  # done | failed | cancelled | paused
                "result": how,  # downloaded | already | linked | null (not done)
                "size": ev.total or None,
                "sha256": rec.sha256 if rec else None,
                "verified": rec is not None and not rec.unverified,
                "revision": rec.revision if rec else None,
                "source": rec.source_url if rec else None,
                "bytesDone": ev.bytes_done,
                "error": ev.error,
                "errorKind": ev.error_kind,
                "resumable": ev.resumable,
            }
        )

    def dump_json(self, model: CatalogModel, sel, ready: bool, code: int) -> None:
        doc = {
            "version": 1,
            "model": model.id,
            "files": self.results,
            "selection": {role: sel.get(role) for role in model.quant_roles},
            "ready": ready,
            "exitCode": code,
        }
        try:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress.stop()


# ---- verify --------------------------------------------------------------------------------
def _model_files(model: CatalogModel) -> list[str]:
    return sorted({f.file for _c, _q, f in model.files()})


def cmd_verify(args: argparse.Namespace, ctx: CoreContext) -> int:
    from distill_tui.downloads.service import sha256_file

    inv = ctx.inventory
    records = inv.records()
    if args.model:
        model = _model(ctx, args.model)
        rels = [r for r in _model_files(model) if r in records]
    else:
        rels = sorted(records)
    if not rels:
        print(
            "nothing to verify: no downloaded files" + (f" for {args.model}" if args.model else "")
        )
        return 0
    bad = unverified = 0
    for rel in rels:
        rec = records[rel]
        path = inv.abs_path(rel)
        try:
            size = path.stat().st_size
        except OSError:
            print(f"  MISSING   {rel} (recorded in the inventory, not on disk)")
            bad += 1
            continue
        if size != rec.size:
            print(f"  BAD SIZE  {rel}: {size} bytes, expected {rec.size}")
            bad += 1
            continue
        digest = sha256_file(path)
        if rec.sha256 and digest != rec.sha256:
            print(f"  MISMATCH  {rel}: sha256 {digest[:12]}…, expected {rec.sha256[:12]}…")
            bad += 1
            continue
        if rec.unverified:  # its sha256 is what was received: only "unchanged" can be said
            unverified += 1
            print(
                f"  UNVERIFIED {rel} ({human_size(size)}): unverified (no reference hash); "
                "unchanged since it was downloaded"
            )
            continue
        inv.mark_verified(rel)
        print(f"  ok        {rel} ({human_size(size)})")
    if bad:
        print(
            f"{bad} of {len(rels)} file(s) failed verification; remove them "
            "(`distill models remove`) and download again"
        )
        return 1
    if unverified:
        print(
            f"{len(rels) - unverified} of {len(rels)} file(s) verified; {unverified} "
            "unverified (no reference hash: neither the catalog nor the Hub gave a sha256)"
        )
        return 0
    print(f"all {len(rels)} file(s) verified")
    return 0


# ---- remove --------------------------------------------------------------------------------
def cmd_remove(args: argparse.Namespace, ctx: CoreContext) -> int:
    """The Model Manager's del rules (distill_tui/removal.py), with a question on a terminal.
    A file other models use (a shared VAE or text encoder) is removed only when the question,
    which names them, is answered yes, or with --force."""
    from distill_tui.cli.roles import quant_args
    from distill_tui.removal import plan_removal, remove

    model = _model(ctx, args.model)
    if args.all:
        items: list[tuple[str, str | None]] = [(role, qid) for role, qid, _f in model.files()]
    elif args.vae:
        if model.component("vae") is None:
            raise CliError(f"{model.id} has no VAE; its components: {', '.join(model.roles)}")
        items = [("vae", None)]
    else:
        items = list(quant_args(args, model).items())
    force = bool(getattr(args, "force", False))
    ask = not args.yes and sys.stdin.isatty()
    plan = plan_removal(
        ctx, model.id, items, force=force, force_active=bool(args.all), force_shared=ask,
        force_word="--force",
    )  # fmt: skip
    for note in plan.kept:
        print(f"  {note}")
    if not plan.targets:
        print(f"nothing to remove for {model.id}")
        return 1 if plan.kept and (not args.all or plan.refused) else 0
    print(f"will delete from {ctx.inventory.models_dir}:")
    for t in plan.targets:
        users = plan.shared.get(t.rel)
        shared = f"  ({t.rel} is also used by {', '.join(users)})" if users else ""
        print(f"  {t.rel}{shared}")
    if plan.clears:
        cleared = ", ".join(
            f"{mid} {COMPONENT_LABELS.get(c, c).lower()}" for mid, c in sorted(set(plan.clears))
        )
        print(f"  (selection cleared: {cleared})")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to delete files without --yes (no terminal to ask)")
        breaks = sorted({u for t in plan.targets for u in plan.shared.get(t.rel, ())})
        warn = f" {', '.join(breaks)} will not be Ready without it." if breaks else ""
        try:
            answer = input(
                f"delete {len(plan.targets)} file(s), {human_size(plan.size)}?{warn} [y/N] "
            )
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    result = remove(ctx, plan)
    for rel in result.removed:
        print(f"  removed {rel}")
    for why in result.skipped:
        print(f"  skipped {why}")
    for note in result.notes:  # still linked from the HF cache / an imported folder
        print(f"  {note}")
    print(f"freed {human_size(result.freed)}")
    return 1 if result.skipped else 0


# ---- clean ---------------------------------------------------------------------------------
def leftovers(models_dir: Path, outputs_dir: Path | None = None) -> list[Path]:
    """Partials, sidecars, unheld lock files and temp files under the models dir."""
    from distill_tui.downloads.lock import is_stale

    if not models_dir.is_dir():
        return []
    out_res = outputs_dir.resolve() if outputs_dir else None
    found: list[Path] = []
    for root, dirs, files in os.walk(models_dir):
        rp = Path(root)
        if out_res is not None:
            dirs[:] = [d for d in dirs if (rp / d).resolve() != out_res]
        for name in files:
            p = rp / name
            if name == ".installed.json.lock":
                continue
            if name.endswith(".lock"):
                if is_stale(p):
                    found.append(p)
            elif name.endswith((".part", ".part.json")) or (
                name.startswith(".") and name.endswith(".tmp")
            ):
                lock = p.with_name(name.removesuffix(".json").removesuffix(".part") + ".lock")
                if lock.exists() and not is_stale(lock):
                    continue  # an active download
                found.append(p)
    return sorted(found)


def cmd_clean(args: argparse.Namespace, ctx: CoreContext) -> int:
    models_dir = ctx.inventory.models_dir
    found = leftovers(models_dir, ctx.settings.outputs_dir)
    if not found:
        print(f"nothing to clean in {models_dir}")
        return 0
    freed = 0
    for p in found:
        try:
            size = p.stat().st_blocks * 512  # partials are sparse
            p.unlink()
        except OSError as e:
            print(f"  could not remove {p}: {e.strerror or e}")
            continue
        freed += size
        print(f"  removed {p.relative_to(models_dir)}")
    print(f"removed {len(found)} leftover file(s), freed {human_size(freed)}")
    return 0
