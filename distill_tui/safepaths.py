"""Paths read from files are checked before anything is moved, linked or deleted.

A path that distill reads back from a file (an ``installed.json`` key, a catalog ``file``, an
HF-cache ``refs/main`` or snapshot symlink) is outside input like any other: a crafted
``../../victim/thesis.txt`` must never make a move, a link or a delete reach outside the folder
the path belongs to. The rules live here, once:

- :func:`rel_problem` / :func:`is_clean_rel`: a relative path in the one canonical spelling
  distill uses (``/`` separators, no empty or ``.``/``..`` parts, no absolute path or drive
  letter, no trailing dot or space in a part, no control character). Canonical matters as much
  as "inside": ``diffusion//x.gguf`` and ``diffusion/./x.gguf`` name the same file as
  ``diffusion/x.gguf`` and would slip past a comparison of strings.
- :func:`file_key`: the key under which two clean paths are "the same file" (case and Unicode
  normalisation folded: macOS and Windows filesystems treat ``X.gguf`` and ``x.gguf`` alike).
- :func:`child`: ``root / rel`` for a clean ``rel``, else :class:`UnsafePathError`.
- :func:`is_within` / :func:`resolved_within`: a path (symlinks followed) stays under a root.
- :func:`is_commit`: a 40-hex commit id (what ``refs/main`` and ``X-Repo-Commit`` hold).

No textual; stdlib only.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

_DRIVE = re.compile(r"^[A-Za-z]:")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class UnsafePathError(ValueError):
    """A path read from a file would leave the folder it belongs to (or is not canonical)."""


def rel_problem(rel: object) -> str | None:
    """None when ``rel`` is a clean, canonical relative path; else why not (one line)."""
    if not isinstance(rel, str) or not rel:
        return "is empty or not text"
    if rel.strip() != rel:
        return f"has surrounding spaces: {rel!r}"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in rel):
        return f"has control characters: {rel.encode('unicode_escape').decode()!r}"
    if "\\" in rel:
        return f"uses a backslash ({rel!r}): separate folders with '/'"
    if rel.startswith("/") or _DRIVE.match(rel):
        return f"must be a relative path, got absolute path {rel!r}"
    parts = rel.split("/")
    if any(p == ".." for p in parts):
        return f"must stay inside its folder ('..' in {rel!r})"
    if any(p in ("", ".") for p in parts):
        return f"is not a clean file path: {rel!r} (empty or '.' parts; write {canonical(rel)!r})"
    if any(p.endswith((".", " ")) for p in parts):
        return f"is not a clean file path: {rel!r} (a part ends with a dot or a space)"
    return None


def is_clean_rel(rel: object) -> bool:
    return rel_problem(rel) is None


def canonical(rel: str) -> str:
    """The canonical spelling of a relative path that has no ``..`` (``a//b/./c`` -> ``a/b/c``);
    for messages: validation refuses the other spellings rather than rewriting them."""
    return "/".join(p for p in rel.replace("\\", "/").split("/") if p not in ("", "."))


def file_key(rel: str) -> str:
    """Two paths with the same key are the same file on some filesystem distill runs on
    (case-insensitive, Unicode-normalising: macOS, Windows/SMB shares)."""
    return unicodedata.normalize("NFC", canonical(rel)).casefold()


def child(root: Path, rel: str) -> Path:
    """``root / rel``, refused unless ``rel`` is clean (it then cannot leave ``root`` by
    itself; symlinks inside ``root`` are the owner's own)."""
    problem = rel_problem(rel)
    if problem:
        raise UnsafePathError(f"path {problem}")
    return Path(root) / rel


def is_within(path: Path | str, root: Path | str) -> bool:
    """``path`` is ``root`` or below it, lexically (both made absolute and normalised)."""
    p = os.path.normpath(os.path.abspath(path))
    r = os.path.normpath(os.path.abspath(root))
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def resolved_within(path: Path | str, root: Path | str) -> bool:
    """``path`` with every symlink followed still lies under ``root`` (symlinks followed too):
    a snapshot link in the HF cache that leads out of the cache is not followed."""
    try:
        p = os.path.realpath(path, strict=False)
        r = os.path.realpath(root, strict=False)
    except (OSError, ValueError):
        return False
    return is_within(p, r)


def is_commit(text: object) -> bool:
    """A full 40-hex commit id (lower case), as ``refs/main`` and ``X-Repo-Commit`` hold."""
    return isinstance(text, str) and bool(_COMMIT.match(text))
