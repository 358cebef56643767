"""Hand downloads to a process of their own: no daemon, just ``distill models download``.

``distill models download --detach`` and the TUI (quitting, or losing its terminal, with
downloads running) both start a plain ``distill models download`` in a new session — no
controlling terminal, so no hang-up reaches it — with its output in a log file. It takes each
file's lock (waiting while the old owner lets go) and resumes from the partials: nothing is lost
and nothing is downloaded twice. ``distill models status`` and the Model Manager see it.

No textual import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def detach_command(model_id: str, items: list[tuple], connections: int | None = None) -> list[str]:
    """The argv of a ``distill models download`` that fetches exactly ``items`` of one model."""
    argv = [sys.executable, "-m", "distill_tui", "models", "download", model_id]
    from distill_tui.quantflag import ALIASES

    parts = []
    for _m, comp, qid in items:  # each component by its role; a quant by its (old) flag
        if qid:
            alias = ALIASES.get(comp)
            argv += [alias, str(qid)] if alias else ["--quant", f"{comp}={qid}"]
        parts.append(comp)
    argv += ["--only", ",".join(parts)]
    if connections:
        argv += ["--connections", str(connections)]
    return argv


def spawn_detached(argv: list[str], log_dir: Path, name: str) -> tuple[int, Path]:
    """Start ``argv`` in a session of its own (no terminal: a hang-up cannot reach it), output
    to a log file; return (pid, log path). It resumes any partials (same locks, same sidecars)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"download-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    from distill_tui.atomic import private_opener

    with open(log, "ab", opener=private_opener) as fh:  # private, as the settings are
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "DISTILL_DETACHED": "1"},
        )
    return proc.pid, log


def hand_off(
    items: Iterable[tuple[str, str, str | None]], log_dir: Path, connections: int | None = None
) -> list[tuple[str, int, Path]]:
    """One detached download per model for ``items``; returns (model id, pid, log) of each."""
    by_model: dict[str, list[tuple[str, str, str | None]]] = {}
    for item in items:
        by_model.setdefault(item[0], []).append(item)
    out = []
    for model_id, its in by_model.items():
        pid, log = spawn_detached(detach_command(model_id, its, connections), log_dir, model_id)
        out.append((model_id, pid, log))
    return out
