"""The Hugging Face token: ``HF_TOKEN``, else the file the ``hf`` CLI writes. Never printed."""

from __future__ import annotations

import os
from pathlib import Path


def token_path() -> Path:
    if os.environ.get("HF_TOKEN_PATH"):
        return Path(os.environ["HF_TOKEN_PATH"]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "token"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "token"


def get_token() -> str | None:
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        value = token_path().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


def token_source() -> str | None:
    """Where the token comes from (for `distill doctor`), without the token itself."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var, "").strip():
            return var
    p = token_path()
    try:
        if p.read_text(encoding="utf-8").strip():
            return str(p)
    except (OSError, UnicodeDecodeError):
        pass
    return None
