"""The Hugging Face token: ``HF_TOKEN``, else the file the ``hf`` CLI writes. Never printed.

Also the checks of the Hugging Face environment every command runs first (:func:`check_env`):
an ``HF_ENDPOINT`` that is no usable URL, or a token with characters no token has (it could
not even be put in an HTTP header), is one line for the person, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit


class HFEnvError(ValueError):
    """The Hugging Face environment is unusable; the message is one line, never the token."""


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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_problem(value: str) -> str | None:
    """Why ``HF_ENDPOINT`` cannot be used (None: fine). Same rule as catalog URLs: https, or
    plain http to a loopback host (a local mirror, tests)."""
    shown = value.encode("unicode_escape").decode()[:80]
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"HF_ENDPOINT={shown!r} is not a URL"
    if any(c.isspace() or ord(c) < 0x20 for c in value.strip()) or not host:
        return f"HF_ENDPOINT={shown!r} is not a URL (expected e.g. https://huggingface.co)"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        if _loopback(host):
            return None
        return (
            f"HF_ENDPOINT={shown!r} is plain http to a non-loopback host: use https (plain "
            "http is allowed only for 127.0.0.1/localhost)"
        )
    return f"HF_ENDPOINT={shown!r} must be an https URL, not {parts.scheme or 'no scheme'!r}"


def token_problem(token: str) -> str | None:
    """Why a token cannot be sent (None: fine). Tokens are printable ASCII without spaces."""
    if all(0x21 <= ord(c) <= 0x7E for c in token):
        return None
    return (
        "has characters a Hugging Face token never has (non-ASCII, spaces or control "
        "characters); copy it again from https://huggingface.co/settings/tokens"
    )


def check_env() -> None:
    """Raise :class:`HFEnvError` (one line) for an unusable HF_ENDPOINT or token."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if endpoint:
        why = endpoint_problem(endpoint)
        if why:
            raise HFEnvError(why)
    token = get_token()
    if token:
        why = token_problem(token)
        if why:
            raise HFEnvError(f"the Hugging Face token from {token_source() or 'HF_TOKEN'} {why}")
