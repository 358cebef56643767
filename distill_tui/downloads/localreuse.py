"""Reuse before download: the same bytes may already be on this machine.

Two places are looked at before a byte moves:

* the Hugging Face cache (``huggingface_hub.constants.HF_HUB_CACHE``: ``HF_HUB_CACHE``, else
  ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), by repository and file name:
  ``models--<owner>--<name>/snapshots/<commit>/<path>`` -> ``../../blobs/<sha256>`` for LFS
  files (the snapshot of ``refs/<rev>`` first, then every other snapshot);
* the folders the user registers (setting ``import_dirs``, e.g. ComfyUI's ``models/``, or the
  paths given to ``distill models import``), by size, whatever the files are called.

How a candidate is confirmed (a choice, documented in the README):

* an HF cache blob is content-addressed: its name IS the sha256 the Hub announced when the hf
  client stored it (and the client checked the size; Xet downloads are checked chunk by
  chunk). When the name equals the reference sha256 (the catalog's, else the Hub's) and the
  size matches, it is linked WITHOUT re-hashing: hashing costs ~0.7 s per GB on this kind of
  box, seconds to tens of seconds for a quant, for no new information. ``distill models
  verify`` re-hashes on demand. When there is no reference (no catalog sha256 and the Hub
  cannot be asked) the blob is hashed and must match its own name.
* a file in a registered folder has no such name: it is size-matched first, then hashed, and
  its sha256 must equal the catalog's or the Hub's. Without a reference it is not used.

A match is hard-linked into place (same filesystem: no copy, no extra space) or, when a hard
link is impossible (another filesystem, a protected file of another user), symlinked: said in
the result, since removing the original then breaks the model file. Never a silent copy.

No textual import here; blocking work (hashing, walking folders) is for worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
HF_CACHE = "hf-cache"
FOLDER = "folder"
#: files in registered folders that are looked at by size (anything else is ignored)
MODEL_SUFFIXES = (".gguf", ".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")
#: a folder walk stops after this many entries (a registered folder that is a whole disk)
MAX_WALK_ENTRIES = 50_000


@dataclass(frozen=True)
class Candidate:
    """A file on this machine that may hold the bytes of a catalog file."""

    path: Path  #: what gets linked (for the HF cache: the blob itself, symlinks resolved)
    size: int
    origin: str  #: HF_CACHE | FOLDER
    where: str  #: for a person: "the HF cache (owner/name)" or the folder
    sha256: str | None = None  #: known from the name (an HF cache blob), not hashed
    revision: str | None = None  #: the snapshot's commit (HF cache)
    shown: Path | None = None  #: the path a person knows (the snapshot path, not the blob)

    @property
    def label(self) -> str:
        return "the HF cache" if self.origin == HF_CACHE else str(self.where)


@dataclass(frozen=True)
class Check:
    ok: bool
    sha256: str | None = None  #: the confirmed sha256 (None when not ok)
    why: str | None = None  #: why not (for a person)


# ---- where -------------------------------------------------------------------------------
def hf_hub_cache() -> Path:
    """The hf client's cache folder, from ``huggingface_hub`` itself (its env contract)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def resolve_parts(url: str) -> tuple[str, str, str] | None:
    """``<endpoint>/<owner>/<name>/resolve/<rev>/<path>`` -> (owner/name, rev, path)."""
    m = re.match(r"^/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", urlsplit(url).path)
    if not m:
        return None
    return m.group(1), unquote(m.group(2)), unquote(m.group(3))


def _snapshots(repo_dir: Path, rev: str) -> list[Path]:
    """Snapshot folders of a cached repo: ``refs/<rev>``'s commit first, then the others
    (newest first)."""
    snaps = repo_dir / "snapshots"
    first: str | None = None
    if _COMMIT.match(rev):
        first = rev
    else:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            first = (repo_dir / "refs" / rev).read_text().strip() or None
    try:
        others = sorted(
            (p for p in snaps.iterdir() if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        others = []
    out = [snaps / first] if first else []
    out += [p for p in others if p.name != first]
    return out


def hf_candidates(file: object) -> list[Candidate]:
    """Files of the HF cache under the repo + path of any of ``file``'s sources."""
    try:
        cache = hf_hub_cache()
    except Exception:  # huggingface_hub missing or broken: no cache to look at
        return []
    out: list[Candidate] = []
    seen: set[Path] = set()
    for url in getattr(file, "sources", ()):
        parts = resolve_parts(url)
        if parts is None:
            continue
        repo, rev, rel = parts
        owner, name = repo.split("/", 1)
        repo_dir = cache / f"models--{owner}--{name}"
        if not repo_dir.is_dir():
            continue
        for snap in _snapshots(repo_dir, rev):
            p = snap / rel
            try:
                real = p.resolve(strict=True)
                st = real.stat()
            except (OSError, RuntimeError):
                continue
            if real in seen or not real.is_file():
                continue
            seen.add(real)
            blob_sha = (
                real.name if real.parent.name == "blobs" and _SHA256.match(real.name) else None
            )
            out.append(
                Candidate(
                    real,
                    st.st_size,
                    HF_CACHE,
                    f"the HF cache ({repo})",
                    sha256=blob_sha,
                    revision=snap.name if _COMMIT.match(snap.name) else None,
                    shown=p,
                )
            )
    return out


class FolderIndex:
    """Model files of the registered folders by size (one walk; cheap to ask many times)."""

    def __init__(self, dirs: Iterable[str | Path], *, skip: Path | None = None):
        self.dirs = tuple(Path(d).expanduser() for d in dirs)
        self.by_size: dict[int, list[tuple[Path, Path]]] = {}  #: size -> [(file, its folder)]
        self.files: list[tuple[Path, int, Path]] = []
        self.problems: list[str] = []
        skip_real = _real(skip) if skip is not None else None
        for d in self.dirs:
            self._walk(d, skip_real)

    def _walk(self, root: Path, skip: Path | None) -> None:
        if root.is_file():
            self._add(root, root.parent)
            return
        if not root.is_dir():
            self.problems.append(f"{root}: not found")
            return
        n = 0
        for base, dirs, names in os.walk(root, onerror=None):
            base_p = Path(base)
            if skip is not None and _real(base_p) == skip:
                dirs[:] = []
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for nm in sorted(names):
                n += 1
                if n > MAX_WALK_ENTRIES:
                    self.problems.append(f"{root}: more than {MAX_WALK_ENTRIES} entries, stopped")
                    return
                if nm.startswith(".") or not nm.lower().endswith(MODEL_SUFFIXES):
                    continue
                self._add(base_p / nm, root)

    def _add(self, p: Path, root: Path) -> None:
        try:
            st = p.stat()
        except OSError:
            return
        if not os.path.isfile(p) or st.st_size <= 0:
            return
        self.files.append((p, st.st_size, root))
        self.by_size.setdefault(st.st_size, []).append((p, root))

    def candidates(self, size: int | None) -> list[Candidate]:
        if size is None:
            return []
        out = []
        for p, root in self.by_size.get(size, []):
            with contextlib.suppress(OSError):
                out.append(Candidate(p.resolve(), size, FOLDER, str(root), shown=p))
        return out


def _real(p: Path) -> Path | None:
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return None


def find(
    file: object,
    *,
    size: int | None,
    import_dirs: Iterable[str | Path] = (),
    index: FolderIndex | None = None,
    dest: Path | None = None,
) -> list[Candidate]:
    """Candidates for ``file``, HF cache first. ``size`` None (only an estimate is known):
    the HF cache's (their name tells the bytes) and no folder file. ``dest``: the file's
    final path, never its own candidate."""
    out = [c for c in hf_candidates(file) if size is None or c.size == size]
    dirs = tuple(import_dirs)
    if dirs or index is not None:
        index = index or FolderIndex(dirs)
        out += index.candidates(size)
    if dest is not None:
        try:
            st = dest.stat()
            out = [c for c in out if not _same_inode(c.path, st)]
        except OSError:
            pass
    uniq: dict[Path, Candidate] = {}
    for c in out:
        uniq.setdefault(c.path, c)
    return list(uniq.values())


def _same_inode(p: Path, st: os.stat_result) -> bool:
    try:
        s = p.stat()
    except OSError:
        return False
    return (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino)


def hint(file: object, index: FolderIndex | None = None) -> str | None:
    """The Model Manager's cheap check: where a size-matching copy of ``file`` is ("the HF
    cache" or a folder), else None. Nothing is hashed; the link itself confirms."""
    size = None if getattr(file, "size_estimated", False) else getattr(file, "size", None)
    for c in hf_candidates(file):
        if size is None or c.size == size:
            return c.label
    if index is not None:
        for c in index.candidates(size):
            return c.label
    return None


# ---- confirm -----------------------------------------------------------------------------
def sha256_of(
    path: Path, on_bytes: Callable[[int], None] | None = None, block: int = 8 << 20
) -> str:
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return h.hexdigest()


def check(
    cand: Candidate,
    size: int | None,
    expected: str | None,
    on_bytes: Callable[[int], None] | None = None,
) -> Check:
    """Are ``cand``'s bytes the file's? (module docstring: when the bytes are read)."""
    try:
        actual_size = cand.path.stat().st_size
    except OSError as e:
        return Check(False, why=f"cannot read it ({e.strerror or e})")
    if size is not None and actual_size != size:
        return Check(False, why=f"{actual_size} bytes, expected {size}")
    if cand.sha256 is not None:  # content-addressed: its name is its sha256
        if expected is not None:
            if cand.sha256 != expected:
                return Check(
                    False,
                    why=f"other bytes (sha256 {cand.sha256[:12]}…, expected {expected[:12]}…)",
                )
            return Check(True, cand.sha256)
        try:
            got = sha256_of(cand.path, on_bytes)
        except OSError as e:
            return Check(False, why=f"cannot read it ({e.strerror or e})")
        if got != cand.sha256:
            return Check(
                False, why=f"damaged: its sha256 {got[:12]}… is not its name {cand.sha256[:12]}…"
            )
        return Check(True, got)
    if expected is None:
        return Check(
            False,
            why="nothing to compare its sha256 with (the catalog has none and the Hub was not "
            "asked)",
        )
    try:
        digest = sha256_of(cand.path, on_bytes)
    except OSError as e:
        return Check(False, why=f"cannot read it ({e.strerror or e})")
    if digest != expected:
        return Check(False, why=f"other bytes (sha256 {digest[:12]}…, expected {expected[:12]}…)")
    return Check(True, digest)


# ---- link --------------------------------------------------------------------------------
#: errors of os.link that mean "not here": another filesystem, not allowed, too many links
_NO_HARDLINK = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP}
if hasattr(errno, "EOPNOTSUPP"):
    _NO_HARDLINK.add(errno.EOPNOTSUPP)

HARD = "hard link"
SYMLINK = "symlink"


def link_into_place(src: Path, dest: Path) -> str:
    """Publish ``src``'s bytes under ``dest`` without copying them: a hard link, else a
    symlink to ``src``'s real path. Atomic (a temp name beside ``dest``, then ``os.replace``;
    the temp name is one ``distill models clean`` removes if this process dies in between).
    Returns HARD or SYMLINK. The caller holds ``dest``'s download lock."""
    src = Path(src).resolve(strict=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
        how = HARD
    except OSError as e:
        if e.errno not in _NO_HARDLINK:
            raise
        log.info("hard link %s -> %s impossible (%s); symlinking", src, dest, e.strerror)
        os.symlink(src, tmp)
        how = SYMLINK
    try:
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    return how


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clear_partial(dest: Path) -> None:
    """A partial download of ``dest`` is stale once the file is linked into place."""
    from distill_tui.downloads.sidecar import part_path, sidecar_path

    for p in (part_path(dest), sidecar_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def how_words(how: str, cand: Candidate) -> str:
    """'linked from the HF cache (hard link)' / '... (symlink to …: removing that breaks it)'"""
    if how == HARD:
        return f"linked from {cand.label} (hard link, no copy)"
    return (
        f"linked from {cand.label} (symlink to {cand.path}: another filesystem; removing the "
        "original breaks it)"
    )


# ---- what an unmatched file looks like -------------------------------------------------------
def describe(path: Path) -> str:
    """A short description from the file's header: GGUF architecture and quant type, or a
    safetensors tensor count and dtypes; for a crafted or damaged header "not a valid GGUF
    file: <why>" (engine/preflight.py reads the headers, every count bounded). Never raises."""
    from distill_tui.engine.preflight import describe_model_file

    return describe_model_file(path)[1]


__all__ = [
    "FOLDER",
    "HARD",
    "HF_CACHE",
    "SYMLINK",
    "Candidate",
    "Check",
    "FolderIndex",
    "check",
    "clear_partial",
    "describe",
    "find",
    "hf_candidates",
    "hf_hub_cache",
    "hint",
    "how_words",
    "link_into_place",
    "resolve_parts",
    "sha256_of",
]
