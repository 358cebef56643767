"""Keep secrets out of logs, messages and files: tokens and signed query strings."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"(https?://[^\s'\"<>]+)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")


def redact_url(url: str) -> str:
    """Drop the query string and userinfo of a URL (signatures live there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact URLs' query strings, bearer tokens, hf_ tokens and any explicit secret."""
    out = _URL.sub(lambda m: redact_url(m.group(1)), text)
    out = _BEARER.sub(r"\1<redacted>", out)
    out = _HF_TOKEN.sub("hf_<redacted>", out)
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "<redacted>")
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
