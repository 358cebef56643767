"""How a line that tells the user to run distill (or ``hf``) names the command: the name when
a new shell finds THIS installation by it, else the absolute path that works. No textual.

``python3 -m venv .venv && .venv/bin/pip install .`` puts ``distill`` in ``.venv/bin`` only:
a new login shell answers "command not found" to ``distill models status``. Messages built
with :func:`distill_command` say ``/home/me/distill/.venv/bin/distill models status`` then.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _script(name: str) -> Path | None:
    """This installation's entry script ``name``: the one we were started as, else the one
    beside this interpreter (a venv's bin/)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == name and argv0.is_file():
        return Path(os.path.abspath(argv0))
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return Path(os.path.abspath(beside))
    return None


def command_for(name: str, fallback: str) -> str:
    """``name`` when PATH resolves it to this installation's script (or there is none to
    compare with), else that script's absolute path; ``fallback`` when neither exists."""
    mine = _script(name)
    found = shutil.which(name)
    if found and (mine is None or _same(Path(found), mine)):
        return name
    if mine is not None:
        return shlex.quote(str(mine))
    return fallback


def distill_command() -> str:
    """What to type to run this distill: ``distill``, or e.g. ``/srv/distill/.venv/bin/distill``."""
    return command_for("distill", f"{shlex.quote(sys.executable)} -m distill_tui")


def hf_login_command() -> str:
    """What to type to log in to the Hub with this installation's huggingface_hub."""
    hf = command_for("hf", "")
    return f"{hf} auth login" if hf else "export HF_TOKEN=hf_..."


def fetch_line(path: str, environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """(text, over_ssh): over SSH an ``scp`` line that fetches ``path`` from this box when
    pasted in a terminal on the laptop (the address and port the SSH client connected to,
    from ``SSH_CONNECTION``); locally the path itself."""
    import getpass

    env = os.environ if environ is None else environ
    conn = (env.get("SSH_CONNECTION") or "").split()
    if len(conn) != 4:
        return path, False
    host, port = conn[2], conn[3]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        user = getpass.getuser()
    except Exception:  # no user name known: scp's default (the laptop's)
        user = ""
    where = f"{user}@{host}" if user else host
    flag = f"-P {port} " if port != "22" else ""
    return f"scp {flag}{shlex.quote(f'{where}:{path}')} .", True
