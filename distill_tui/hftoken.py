"""The Hugging Face environment, as ``huggingface_hub`` itself reads it. Never prints a token.

The Hub's conventions come from the Hub's own client library, not from a copy of its rules:

- token: :func:`get_token` is ``huggingface_hub``'s (``HF_TOKEN``, else the file the ``hf`` CLI
  writes at ``HF_TOKEN_PATH`` - ``~`` and ``$VAR`` expanded - or ``$HF_HOME/token``);
  :func:`token_to_send` is what goes to the Hub: none when ``HF_HUB_DISABLE_IMPLICIT_TOKEN``
  is set (``huggingface_hub.utils.get_token_to_send``);
- :func:`endpoint` (``HF_ENDPOINT``), :func:`offline` (``HF_HUB_OFFLINE``),
  :func:`etag_timeout` (``HF_HUB_ETAG_TIMEOUT``: the HEAD asking the Hub about a file),
  :func:`download_timeout` (``HF_HUB_DOWNLOAD_TIMEOUT``: connect/read of the bytes),
  :func:`hub_cache_dir` (``HF_HUB_CACHE``, else ``$HF_HOME/hub``): ``huggingface_hub.constants``.

``huggingface_hub.constants`` reads the environment once, when it is imported; :func:`hf_constants`
re-reads it (``importlib.reload``) when one of the variables it depends on changed since, so a
test's (or a long-running TUI's) environment is always the one in force. Importing this module
imports nothing of ``huggingface_hub``: the constants cost ~1 ms on first use, the token code
(~50 ms: its HTTP stack) only where a token is really needed - never before the TUI's first paint.

Also the checks every command runs first (:func:`check_env`): an ``HF_ENDPOINT`` that is no usable
URL, or a token with characters no token has (it could not even be put in an HTTP header), is one
line for the person, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: every variable ``huggingface_hub.constants`` derives a value of ours from
_CONSTANT_VARS = (
    "HOME",
    "XDG_CACHE_HOME",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN_PATH",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HUGGINGFACE_CO_STAGING",
)
_LOCK = threading.Lock()
_loaded_env: tuple[str | None, ...] | None = None


class HFEnvError(ValueError):
    """The Hugging Face environment is unusable; the message is one line, never the token."""


def hf_constants() -> ModuleType:
    """``huggingface_hub.constants`` for the environment in force now."""
    global _loaded_env
    # expanded: HF_TOKEN_PATH=$VAR/token follows $VAR too
    env = tuple(os.path.expandvars(os.environ.get(v) or "\0") for v in _CONSTANT_VARS)
    with _LOCK:
        already = "huggingface_hub.constants" in sys.modules
        from huggingface_hub import constants

        if _loaded_env is None and not already:
            _loaded_env = env  # imported just now: it read this very environment
        elif env != _loaded_env:
            importlib.reload(constants)
            _loaded_env = env
        return constants


# ---- endpoint, offline, timeouts, cache ----------------------------------------------------
def endpoint() -> str:
    """The Hub's base URL (``HF_ENDPOINT``, default https://huggingface.co), no trailing /."""
    return str(hf_constants().ENDPOINT).rstrip("/")


def offline() -> bool:
    """``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE``): nothing may ask the Hub."""
    return bool(hf_constants().HF_HUB_OFFLINE)


def progress_bars_disabled() -> bool:
    """``HF_HUB_DISABLE_PROGRESS_BARS=1``: no progress bars or progress lines (the results and
    the errors are still printed), as huggingface_hub's own downloads do."""
    return bool(hf_constants().HF_HUB_DISABLE_PROGRESS_BARS)


def offline_message(what: str) -> str:
    """One line for an action that needs the Hub while ``HF_HUB_OFFLINE`` is set."""
    return (
        f"{what}: HF_HUB_OFFLINE is set, so nothing is asked of the Hugging Face Hub; unset it "
        "(or HF_HUB_OFFLINE=0) to go online"
    )


def etag_timeout() -> float:
    """Seconds for the HEAD that asks the Hub about a file (``HF_HUB_ETAG_TIMEOUT``, 10)."""
    return float(hf_constants().HF_HUB_ETAG_TIMEOUT)


def download_timeout() -> float:
    """Seconds to connect to / wait for data from the download server
    (``HF_HUB_DOWNLOAD_TIMEOUT``, 10)."""
    return float(hf_constants().HF_HUB_DOWNLOAD_TIMEOUT)


def stall_window() -> float:
    """Seconds over which a download connection must deliver at least 1 KiB/s, else it is cut
    and retried (a trickle never trips the read timeout): 3 x ``HF_HUB_DOWNLOAD_TIMEOUT``, 30 s
    by default."""
    return 3 * download_timeout()


def hub_cache_dir() -> Path:
    """The Hugging Face cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``): where ``hf download`` keeps blobs and snapshots."""
    return Path(hf_constants().HF_HUB_CACHE)


def implicit_token_disabled() -> bool:
    """``HF_HUB_DISABLE_IMPLICIT_TOKEN``: the token found on the machine is not sent."""
    return bool(hf_constants().HF_HUB_DISABLE_IMPLICIT_TOKEN)


# ---- TLS: which CAs are trusted -------------------------------------------------------------
#: the CA variables, first set wins (issue 23.9). huggingface_hub >= 1.0 talks through httpx,
#: which reads SSL_CERT_FILE, then SSL_CERT_DIR; huggingface_hub < 1.0 talked through requests,
#: which reads REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE (what hf users have set for years). A
#: bundle FILE named explicitly comes before a DIRECTORY: SSL_CERT_DIR is often a system-wide
#: default (/etc/ssl/certs) and must not silently override the REQUESTS_CA_BUNDLE a person set
#: for their proxy's CA.
CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR")


def ca_source() -> tuple[str, str] | None:
    """(variable, value) the trusted CAs come from, or None: certifi's bundle (httpx's default,
    as huggingface_hub's)."""
    for var in CA_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return var, value
    return None


def ca_words() -> str:
    """For a TLS error: which CAs were trusted, and the CA variables set but not used."""
    src = ca_source()
    if src is None:
        return "the CAs trusted are certifi's (none of " + ", ".join(CA_VARS) + " is set)"
    unused = [v for v in CA_VARS if v != src[0] and os.environ.get(v, "").strip()]
    return f"the CAs trusted are those of {src[0]}={src[1]}" + (
        f" ({', '.join(unused)} also set, not used: {src[0]} comes first)" if unused else ""
    )


# ---- token ---------------------------------------------------------------------------------
def token_path() -> Path:
    """The token file ``hf auth login`` writes (``HF_TOKEN_PATH`` with ``~``/``$VAR``
    expanded, else ``$HF_HOME/token``)."""
    return Path(hf_constants().HF_TOKEN_PATH)


def _hf_get_token():
    hf_constants()  # the environment in force
    try:  # the module itself: the package's lazy top level would import its whole API (~200 ms)
        from huggingface_hub.utils._auth import get_token
    except ImportError:  # pragma: no cover - another layout
        from huggingface_hub import get_token
    return get_token


def _no_token_anywhere() -> bool:
    """True when every place ``huggingface_hub`` looks for a token is empty: the token
    variables, the token file, and (only inside Colab) Colab's secrets. Then there is no token
    to find and its token code (~50-100 ms of imports: its HTTP stack) is not imported - a
    ``distill models download`` on a machine without a token starts that much sooner."""
    return not known_tokens() and not os.environ.get("COLAB_RELEASE_TAG")


def get_token() -> str | None:
    """The token on this machine, found as ``huggingface_hub`` finds it (None: no token)."""
    if _no_token_anywhere():
        return None
    try:
        return _hf_get_token()()
    except (OSError, UnicodeDecodeError):
        return None


def token_to_send() -> str | None:
    """The token for a request to the Hub: :func:`get_token`, unless
    ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` forbids sending a token nobody passed explicitly."""
    if _no_token_anywhere():
        return None
    _hf_get_token()
    try:
        from huggingface_hub.utils._headers import get_token_to_send
    except ImportError:  # pragma: no cover - another layout
        from huggingface_hub.utils import get_token_to_send
    try:
        return get_token_to_send(None)
    except (OSError, UnicodeDecodeError):
        return None


def known_tokens() -> tuple[str, ...]:
    """Every token this machine holds where the Hub's client looks (env, token file): what logs
    must redact. Cheap (no import of the token code): for start-up paths."""
    found = [os.environ.get(v, "").strip() for v in TOKEN_VARS]
    try:
        found.append(token_path().read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    return tuple(dict.fromkeys(t for t in found if t))


def token_source() -> str | None:
    """Where the token comes from (for `distill doctor`), without the token itself."""
    for var in TOKEN_VARS:
        if os.environ.get(var, "").strip():
            return var
    p = token_path()
    try:
        if p.read_text(encoding="utf-8").strip():
            return str(p)
    except (OSError, UnicodeDecodeError):
        pass
    return None


# ---- checks ----------------------------------------------------------------------------------
def endpoint_problem(value: str) -> str | None:
    """Why ``HF_ENDPOINT`` cannot be used (None: fine). https, or plain http: a LAN mirror is
    the user's explicit choice (``hf`` accepts it too); the token then goes only to that exact
    origin (``downloads.hub.may_send_token``)."""
    from distill_tui.redact import redact

    # never echoed with its credentials: userinfo, a query, a token inside it (issue 19.8)
    shown = redact(value).encode("unicode_escape").decode()[:80]
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"HF_ENDPOINT={shown!r} is not a URL"
    if any(c.isspace() or ord(c) < 0x20 for c in value.strip()) or not host:
        return f"HF_ENDPOINT={shown!r} is not a URL (expected e.g. https://huggingface.co)"
    if parts.scheme in ("https", "http"):
        if "@" in parts.netloc:
            return (
                f"HF_ENDPOINT={shown!r} carries credentials (user:...@, not shown): set the "
                "token in HF_TOKEN (or `hf auth login`), HF_ENDPOINT is a base URL like "
                "https://host[:port][/path]"
            )
        if parts.query or parts.fragment:
            return (
                f"HF_ENDPOINT={shown!r}: a query or fragment (not shown) is not allowed; "
                "expected a base URL like https://host[:port][/path]"
            )
        return None
    return (
        f"HF_ENDPOINT={shown!r} must be an https (or http) URL, not {parts.scheme or 'no scheme'!r}"
    )


def endpoint_origin() -> tuple[str, str, int] | None:
    """(scheme, host, port) of the user's ``HF_ENDPOINT``, None when unset or unusable."""
    ep = os.environ.get("HF_ENDPOINT", "").strip()
    if not ep or endpoint_problem(ep):
        return None
    parts = urlsplit(ep)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def token_problem(token: str) -> str | None:
    """Why a token cannot be sent (None: fine). Tokens are printable ASCII without spaces."""
    if all(0x21 <= ord(c) <= 0x7E for c in token):
        return None
    return (
        "has characters a Hugging Face token never has (non-ASCII, spaces or control "
        "characters); copy it again from https://huggingface.co/settings/tokens"
    )


def check_env(token: bool = True, ca: bool = True) -> None:
    """Raise :class:`HFEnvError` (one line) for an unusable HF_ENDPOINT or token.

    ``token=False`` skips the token (the TUI: reading it imports the token code, and a
    download reports a bad token on its own row). ``ca=False`` skips the CA variables (a
    command that asks nothing of a server: a stale SSL_CERT_FILE must not stop ``generate``)."""
    ep = os.environ.get("HF_ENDPOINT", "").strip()
    if ep:
        why = endpoint_problem(ep)
        if why:
            raise HFEnvError(why)
    src = ca_source() if ca else None
    if src is not None and not os.path.exists(src[1]):  # a bundle that is not there: one line
        raise HFEnvError(
            f"{src[0]}={src[1]}: no such file or folder (the CAs trusted for https come from "
            f"it: first of {', '.join(CA_VARS)}); point it at a CA bundle (PEM) or unset it"
        )
    if not token:
        return
    value = get_token()
    if value:
        why = token_problem(value)
        if why:
            raise HFEnvError(f"the Hugging Face token from {token_source() or 'HF_TOKEN'} {why}")
