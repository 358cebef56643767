"""Download errors a person can act on. Messages are already redacted and short."""

from __future__ import annotations


class DownloadError(Exception):
    """A failure of one file. ``kind`` is machine-readable, the message is for people.

    kinds: gated, auth, not_found, disk, checksum, size_mismatch, network, upstream_changed,
    locked, protocol, cancelled, sources (every source of a file with mirrors failed).
    """

    def __init__(self, kind: str, message: str, *, resumable: bool = False):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.resumable = resumable

    def __str__(self) -> str:
        return self.message
