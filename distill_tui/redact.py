"""Keep secrets out of logs, messages and files: tokens and signed query strings."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

#: a URL of any scheme (userinfo and query are where credentials and signatures live)
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
#: ``token=...`` and its kin outside a URL we could parse (a query glued to a bare host name)
_PARAM = re.compile(
    r"(?i)\b((?:access_|auth_|api_|hf_)?token|api_?key|sig|signature|password|passwd|"
    r"x-amz-signature|x-amz-credential)=([^&\s'\"<>]+)"
)
#: userinfo (``user:secret@``) in text that is not a whole URL
_USERINFO = re.compile(r"(//)[^/@\s'\"<>]+@")


def redact_url(url: str) -> str:
    """Drop the query string and userinfo of a URL (signatures and credentials live there)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def secret_forms(secret: str) -> tuple[str, ...]:
    """The forms a secret may be quoted in: itself and, for a Hugging Face token, the part
    after ``hf_`` (some servers print it without the prefix)."""
    forms = [secret]
    if secret.startswith("hf_") and len(secret) >= 3 + 8:
        forms.append(secret[3:])
    return tuple(forms)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact URLs' userinfo and query strings, ``token=``-like parameters, bearer tokens, hf_
    tokens and any explicit secret (with its forms: :func:`secret_forms`)."""
    out = _URL.sub(lambda m: redact_url(m.group(1)), text)
    out = _USERINFO.sub(r"\1", out)
    out = _PARAM.sub(r"\1=<redacted>", out)
    out = _BEARER.sub(r"\1<redacted>", out)
    out = _HF_TOKEN.sub("hf_<redacted>", out)
    for s in secrets:
        if s and len(s) >= 4:
            for form in secret_forms(s):
                out = out.replace(form, "<redacted>")
    return out


class RedactingFilter(logging.Filter):
    """Logging filter applied to our handlers: nothing secret reaches the log file."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        clean = redact(msg, self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        return True
