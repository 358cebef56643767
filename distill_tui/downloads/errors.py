"""Download errors a person can act on. Messages are already redacted and short."""

from __future__ import annotations

import re


class DownloadError(Exception):
    """A failure of one file. ``kind`` is machine-readable, the message is for people.

    kinds: gated, auth, not_found, disk, checksum, size_mismatch, network, upstream_changed,
    locked, protocol, cancelled, sources (every source of a file with mirrors failed), offline
    (HF_HUB_OFFLINE is set), tls (a certificate or TLS failure: never retried).
    """

    def __init__(self, kind: str, message: str, *, resumable: bool = False):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.resumable = resumable

    def __str__(self) -> str:
        return self.message


_RERUN = re.compile(r"\brerun(?: the command)?\b")


def for_surface(message: str, surface: str) -> str:
    """A core message in the words of one surface. The download core writes each message
    once, with the CLI's verb for starting again ("rerun to resume", "then rerun"); the TUI
    shows it through here and says "press r" (its retry key) instead. ``surface``: "cli" (as
    written) or "tui"."""
    if surface == "tui":
        return _RERUN.sub("press r", message)
    return message
