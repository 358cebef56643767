"""Reuse before download: the same bytes may already be on this machine.

Two places are looked at before a byte moves:

* the Hugging Face cache (``huggingface_hub.constants.HF_HUB_CACHE``: ``HF_HUB_CACHE``, else
  ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), by repository and file name:
  ``models--<owner>--<name>/snapshots/<commit>/<path>`` -> ``../../blobs/<sha256>`` for LFS
  files (the snapshot of ``refs/<rev>`` first, then those of the other refs and a bounded
  few other snapshots, then ``blobs/<the catalog's sha256>`` itself: never a listing of every
  snapshot, issue 19.22);
* the folders the user registers (setting ``import_dirs``, e.g. ComfyUI's ``models/``, or the
  paths given to ``distill models import``), by size, whatever the files are called.

How a candidate is confirmed (issue 19.3: a name is never trusted):

* cheap refusals first, nothing read: another size; an HF cache blob whose name (the sha256
  the hf client was told) is not the reference sha256 (the catalog's, else the Hub's); a
  folder file when there is no reference at all (its size alone does not say what it is).
* then the candidate is linked under a temp name in the models dir (beside the file's final
  name) and THAT inode is hashed: the bytes that end up under the model's name are the bytes
  that were hashed, whatever happens to the source path meanwhile (a file swapped in after
  the hash and before the link cannot be published). The sha256 must equal the reference;
  only then is the temp name moved into place (``os.replace``) and the file recorded as
  verified. A mismatch is never published: the temp name is removed and the reason given.
* an HF cache blob with no reference sha256 (the catalog has none, the Hub gave none or was
  not asked) must still hash to its own name, and is recorded *unverified* exactly as a
  download without a reference is (``inventory.FileRecord.unverified``).

Hashing costs ~0.7 s per GB on this kind of box; the service reports it as the "verifying"
step with a progress (``on_bytes``).

A match is hard-linked into place (same filesystem: no copy, no extra space) or, when a hard
link is impossible (another filesystem, a protected file of another user), symlinked: said in
the result, since removing the original then breaks the model file. Never a silent copy. A
symlink's target is hashed through the link and checked to be the same inode just before the
link is published; that its bytes stay the same afterwards is up to the other filesystem
(``distill models verify`` re-hashes).

No textual import here; blocking work (hashing, walking folders) is for worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from distill_tui.safepaths import is_clean_rel, is_commit, resolved_within

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


# ---- where -------------------------------------------------------------------------------
def hf_hub_cache() -> Path:
    """The hf client's cache folder, from ``huggingface_hub`` itself (its env contract)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


_RESOLVE = re.compile(r"^/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
#: any path prefix (a path mirror not named by HF_ENDPOINT): the first "/<a>/<b>/resolve/<rev>/"
_RESOLVE_ANYWHERE = re.compile(r"^(?:/[^/]+)*?/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def resolve_parts(url: str) -> tuple[str, str, str] | None:
    """``<endpoint>/<owner>/<name>/resolve/<rev>/<path>`` -> (owner/name, rev, path).

    The endpoint may have a path (Artifactory and other path mirrors:
    ``HF_ENDPOINT=https://host/artifactory/api/hf``, issue 23.2): under ``HF_ENDPOINT`` its path
    is taken off exactly; any other URL (a catalog mirror under a path) is read at its first
    ``/<owner>/<name>/resolve/<rev>/``. The HF cache names a repo by its id alone, whatever
    endpoint filled it."""
    path = urlsplit(url).path
    try:
        from distill_tui.hftoken import endpoint

        ep = endpoint()
    except Exception:  # huggingface_hub missing or broken: the URL's own path
        ep = ""
    ep_path = urlsplit(ep).path.rstrip("/")
    if ep_path and url.startswith(ep.rstrip("/") + "/"):
        path = path[len(ep_path) :] if path.startswith(ep_path + "/") else path
    m = _RESOLVE.match(path) or _RESOLVE_ANYWHERE.match(path)
    if not m:
        return None
    return m.group(1), unquote(m.group(2)), unquote(m.group(3))


#: a cached repo's snapshot folders looked at beyond the ones refs name (a repo with 10,000
#: snapshot folders made every look take seconds: issue 19.22); refs read at most
MAX_OTHER_SNAPSHOTS = 32
MAX_REFS = 16


def _snapshots(repo_dir: Path, rev: str) -> list[Path]:
    """Snapshot folders of a cached repo, bounded: ``refs/<rev>``'s commit (or ``rev`` itself
    when it is a commit) first, then the commits of the other refs (``refs/*``, at most
    MAX_REFS), then at most MAX_OTHER_SNAPSHOTS of the other folders of ``snapshots/`` (the
    first listed, newest first; never a walk of all of them). A blob the catalog names by its
    sha256 is found without any snapshot (``hf_candidates``)."""
    snaps = repo_dir / "snapshots"
    refs = repo_dir / "refs"
    commits: list[str] = []
    if _COMMIT.match(rev):
        commits.append(rev)
    elif is_clean_rel(rev):
        commits += _ref_commit(refs / rev)
    try:
        with os.scandir(refs) as it:
            for n, e in enumerate(it):
                if n >= MAX_REFS:
                    break
                if e.is_file(follow_symlinks=False):
                    commits += _ref_commit(Path(e.path))
    except OSError:
        pass
    others: list[os.DirEntry[str]] = []
    try:
        with os.scandir(snaps) as it:
            for e in it:
                if len(others) >= MAX_OTHER_SNAPSHOTS:
                    break
                if e.name not in commits and e.is_dir(follow_symlinks=False):
                    others.append(e)
    except OSError:
        pass

    def mtime(e: os.DirEntry[str]) -> float:
        try:
            return e.stat(follow_symlinks=False).st_mtime
        except OSError:
            return 0.0

    others.sort(key=mtime, reverse=True)
    return [snaps / c for c in dict.fromkeys(commits)] + [Path(e.path) for e in others]


def _ref_commit(ref: Path) -> list[str]:
    """[the commit a ref file names], or [] (unreadable, or not a commit: "../.." would lead
    out of the cache)."""
    try:
        text = ref.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return []
    return [text] if is_commit(text) else []


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
        if not is_clean_rel(rel):  # a path in the URL with "..": not a file of this repo
            continue
        for snap in _snapshots(repo_dir, rev):
            p = snap / rel
            try:
                real = p.resolve(strict=True)
                st = real.stat()
            except (OSError, RuntimeError):
                continue
            if not resolved_within(real, repo_dir):  # a snapshot link leading out of the cache
                log.info("HF cache: %s leads outside %s; not reused", p, repo_dir)
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
        # the blob the catalog names, whichever snapshot (if any still) leads to it: one stat
        sha = getattr(file, "sha256", None)
        if isinstance(sha, str) and _SHA256.match(sha):
            blob = repo_dir / "blobs" / sha
            try:
                real = blob.resolve(strict=True)
                st = real.stat()
            except (OSError, RuntimeError):
                continue
            if real not in seen and resolved_within(real, repo_dir) and real.is_file():
                seen.add(real)
                out.append(
                    Candidate(
                        real, st.st_size, HF_CACHE, f"the HF cache ({repo})", sha256=sha,
                        shown=blob,
                    )
                )  # fmt: skip
    return out


class FolderIndex:
    """Model files of the registered folders by size (one walk; cheap to ask many times)."""

    def __init__(self, dirs: Iterable[str | Path], *, skip: Path | None = None):
        self.dirs = tuple(Path(d).expanduser() for d in dirs)
        self.by_size: dict[int, list[tuple[Path, Path]]] = {}  #: size -> [(file, its folder)]
        self.files: list[tuple[Path, int, Path]] = []
        self.problems: list[str] = []
        skip_id: tuple[int, int] | None = None
        if skip is not None:
            with contextlib.suppress(OSError):
                st = os.stat(skip)
                skip_id = (st.st_dev, st.st_ino)
        for d in self.dirs:
            self._walk(d, skip_id)

    def _walk(self, root: Path, skip: tuple[int, int] | None) -> None:
        """One folder, iteratively and bounded (scan.py: depth, entries, time; issue 19.16);
        what was skipped becomes one line of ``problems``."""
        from distill_tui.scan import walk_files

        if root.is_file():
            self._add(root, root.parent)
            return
        if not root.is_dir():
            self.problems.append(f"{root}: not found")
            return
        walk = walk_files(
            root,
            MODEL_SUFFIXES,
            max_entries=MAX_WALK_ENTRIES,
            skip=None if skip is None else (lambda st: (st.st_dev, st.st_ino) == skip),
        )
        for p, size in walk.files:
            self.files.append((p, size, root))
            self.by_size.setdefault(size, []).append((p, root))
        if walk.skipped():
            self.problems.append(f"{root}: " + "; ".join(walk.skipped()))

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
    path: Path | BinaryIO,
    on_bytes: Callable[[int], None] | None = None,
    block: int = 8 << 20,
) -> str:
    """The sha256 of a file, by path or of an open binary file (read from where it stands)."""
    if not isinstance(path, (str, os.PathLike)):
        return _sha256_stream(path, on_bytes, block)
    with open(path, "rb") as fh:
        return _sha256_stream(fh, on_bytes, block)


def _sha256_stream(fh: BinaryIO, on_bytes: Callable[[int], None] | None, block: int) -> str:
    h = hashlib.sha256()
    done = 0
    while chunk := fh.read(block):
        h.update(chunk)
        done += len(chunk)
        if on_bytes is not None:
            on_bytes(done)
    return h.hexdigest()


def precheck(cand: Candidate, size: int | None, expected: str | None) -> str | None:
    """Why ``cand`` cannot be the file without reading a byte of it; None when it may be."""
    try:
        actual_size = cand.path.stat().st_size
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if size is not None and actual_size != size:
        return f"{actual_size} bytes, expected {size}"
    if cand.sha256 is not None and expected is not None and cand.sha256 != expected:
        return f"other bytes (sha256 {cand.sha256[:12]}…, expected {expected[:12]}…)"
    if cand.sha256 is None and expected is None:
        return "nothing to compare its sha256 with (the catalog has none and the Hub was not asked)"
    return None


class NotUsable(Exception):
    """The staged bytes cannot be the file (not a regular file, changed while read...)."""


@dataclass
class Staged:
    """A candidate linked under a temp name in the models dir, before it is published."""

    tmp: Path  #: the temp name (".<name>.<pid>.<n>.link.tmp": `distill models clean` removes it)
    how: str  #: HARD | SYMLINK
    src: Path  #: the source's real path
    ident: tuple[int, int] | None = None  #: (st_dev, st_ino) of the bytes that were hashed
    sha256: str | None = None  #: their sha256
    why: str = ""  #: SYMLINK: why no hard link (another filesystem, another owner...)


_seq = itertools.count()


def _tmp_name(folder: Path, name: str) -> Path:
    return folder / f".{name}.{os.getpid()}.{next(_seq)}.link.tmp"


def stage(src: Path, folder: Path, name: str) -> Staged:
    """Link ``src`` under a temp name in ``folder`` (a hard link, else a symlink to its real
    path). Raises OSError when neither is possible."""
    real = Path(src).resolve(strict=True)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(folder, name)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(real, tmp, follow_symlinks=False)
        return Staged(tmp, HARD, real)
    except OSError as e:
        if e.errno not in _NO_HARDLINK:
            raise
        log.info("hard link %s -> %s impossible (%s); symlinking", real, tmp, e.strerror)
        why = no_hardlink_reason(e, real)
    os.symlink(real, tmp)
    return Staged(tmp, SYMLINK, real, why=why)


def no_hardlink_reason(e: OSError, src: Path) -> str:
    """Why ``os.link`` refused, in a person's words: the real reason, not always "another
    filesystem" (EPERM is the kernel's fs.protected_hardlinks for a file of another user)."""
    if e.errno == errno.EXDEV:
        return "another filesystem"
    if e.errno in (errno.EPERM, errno.EACCES):
        try:
            owner = os.stat(src).st_uid
        except OSError:
            owner = os.geteuid()
        if owner != os.geteuid():
            return (
                f"it belongs to another user (uid {owner}), which this user may not hard-link "
                "(fs.protected_hardlinks)"
            )
        return "hard links are not allowed there"
    if e.errno == errno.EMLINK:
        return "it has too many hard links already"
    return "the filesystem has no hard links"


def hash_staged(st: Staged, size: int | None, on_bytes: Callable[[int], None] | None = None) -> str:
    """The sha256 of the bytes ``st.tmp`` holds (its own inode for a hard link; the inode the
    symlink leads to when it is opened). Raises NotUsable or OSError."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if st.how == HARD:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(st.tmp, flags)
    with os.fdopen(fd, "rb") as fh:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise NotUsable("not a regular file")
        if size is not None and before.st_size != size:
            raise NotUsable(f"{before.st_size} bytes, expected {size}")
        digest = sha256_of(fh, on_bytes)
        after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise NotUsable("it changed while it was read")
    st.ident = (before.st_dev, before.st_ino)
    st.sha256 = digest
    return digest


def publish(st: Staged, dest: Path) -> None:
    """Move the staged (and hashed) link to ``dest`` (atomic ``os.replace``). From another
    folder of the models dir: a hard link to the same inode (or the same symlink) beside
    ``dest`` first. The caller holds ``dest``'s download lock."""
    if st.ident is None:
        raise NotUsable("not hashed")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = st.tmp
    if st.tmp.parent != dest.parent:
        src = _tmp_name(dest.parent, dest.name)
        if st.how == HARD:
            os.link(st.tmp, src, follow_symlinks=False)
        else:
            os.symlink(st.src, src)
    try:
        if st.how == SYMLINK:  # the inode it leads to now is the one hashed
            now = os.stat(src)
            if (now.st_dev, now.st_ino) != st.ident:
                raise NotUsable("it was replaced while it was read")
        os.replace(src, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            src.unlink()
        raise
    _fsync_dir(dest.parent)


def discard(st: Staged) -> None:
    """Remove the temp name (nothing when it was published)."""
    with contextlib.suppress(FileNotFoundError):
        st.tmp.unlink()


@dataclass(frozen=True)
class Linked:
    """What ``link_checked`` did."""

    ok: bool
    how: str | None = None  #: HARD | SYMLINK when ok
    sha256: str | None = None  #: the sha256 of the published bytes
    unverified: bool = False  #: no reference sha256: recorded unverified, as a download is
    why: str | None = None  #: why not (for a person)
    link_why: str = ""  #: SYMLINK: why no hard link (Staged.why)


def link_checked(
    cand: Candidate,
    dest: Path,
    size: int | None,
    expected: str | None,
    on_bytes: Callable[[int], None] | None = None,
) -> Linked:
    """Publish ``cand``'s bytes under ``dest`` if they are the file's (module docstring):
    staged beside ``dest``, the staged inode hashed, then moved into place. A mismatch is
    never published. Errors writing into the models dir raise OSError (as a download's do);
    a candidate that cannot be read is a ``Linked(False)``. The caller holds the lock."""
    why = precheck(cand, size, expected)
    if why is not None:
        return Linked(False, why=why)
    st = stage(cand.path, dest.parent, dest.name)
    try:
        try:
            digest = hash_staged(st, size, on_bytes)
        except NotUsable as e:
            return Linked(False, why=str(e))
        except OSError as e:
            return Linked(False, why=f"cannot read it ({e.strerror or e})")
        if expected is not None and digest != expected:
            named = " than its name says" if cand.sha256 == expected else ""
            return Linked(
                False,
                why=f"other bytes{named} (sha256 {digest[:12]}…, expected {expected[:12]}…)",
            )
        if expected is None and digest != cand.sha256:
            return Linked(
                False,
                why=f"damaged: its sha256 {digest[:12]}… is not its name {str(cand.sha256)[:12]}…",
            )
        try:
            publish(st, dest)
        except NotUsable as e:
            return Linked(False, why=str(e))
    finally:
        discard(st)
    return Linked(True, st.how, digest, unverified=expected is None, link_why=st.why)


# ---- link --------------------------------------------------------------------------------
#: errors of os.link that mean "not here": another filesystem, not allowed, too many links
_NO_HARDLINK = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP}
if hasattr(errno, "EOPNOTSUPP"):
    _NO_HARDLINK.add(errno.EOPNOTSUPP)

HARD = "hard link"
SYMLINK = "symlink"


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


def how_words(how: str, cand: Candidate, why: str = "") -> str:
    """'linked from the HF cache (hard link)' / '... (symlink to …: <why>; removing that breaks
    it)', ``why`` being the real reason there is no hard link (:func:`no_hardlink_reason`)."""
    if how == HARD:
        return f"linked from {cand.label} (hard link, no copy)"
    return f"linked from {cand.label} ({symlink_words(cand.path, why)})"


def symlink_words(target: Path, why: str = "") -> str:
    """'symlink to …: <why no hard link>; removing the original breaks it'"""
    why = why or "no hard link possible"
    return f"symlink to {target}: {why}; removing the original breaks it"


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
    "FolderIndex",
    "Linked",
    "NotUsable",
    "Staged",
    "clear_partial",
    "describe",
    "discard",
    "find",
    "hash_staged",
    "hf_candidates",
    "hf_hub_cache",
    "hint",
    "how_words",
    "link_checked",
    "no_hardlink_reason",
    "precheck",
    "publish",
    "resolve_parts",
    "sha256_of",
    "stage",
    "symlink_words",
]
