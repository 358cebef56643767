"""``distill models import PATH…``: files already on this machine, whatever they are called
(a ComfyUI ``models/`` folder, an sd.cpp folder), matched against the catalog and linked into
place (localreuse.py has the rules: size first, then sha256 against the catalog's or the
Hub's; hard link, else symlink; never a copy). The bytes hashed are the linked ones: a
same-size file is linked under a temp name in the models dir, that inode is hashed, and only a
match is moved into place (issue 19.3: a file swapped in after the hash is never published).

An imported file is recorded in the inventory exactly as a download would be, under the
file's download lock, and its quant becomes the selection of a component that has none.
No textual import.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from distill_tui.downloads import localreuse as lr

if TYPE_CHECKING:
    from distill_tui.catalog import Catalog, CatalogFile
    from distill_tui.inventory import Inventory
    from distill_tui.settings import SettingsStore

#: an estimated catalog size this close to a file's size makes the Hub worth asking
NEAR = 0.10


@dataclass
class Target:
    """One catalog file (one key) and every (model, component, quant) that uses it."""

    key: str
    file: CatalogFile
    uses: list[tuple[str, str, str | None]] = field(default_factory=list)
    size: int | None = None  #: exact size (catalog, else the Hub); None: only an estimate
    sha256: str | None = None  #: the catalog's, else the Hub's
    revision: str | None = None
    hub_error: str | None = None


@dataclass
class Found:
    """What became of one scanned file."""

    path: Path
    size: int
    status: str  #: linked | present | unmatched | mismatch | locked | error
    key: str | None = None
    words: str = ""  #: for a person (how it was linked, or why not)
    looks_like: str | None = None  #: an unmatched/mismatched file's header (GGUF arch/quant)


def targets(catalog: Catalog) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for m in catalog.models:
        for comp, qid, f in m.files():
            t = out.get(f.file)
            if t is None:
                t = out[f.file] = Target(
                    f.file,
                    f,
                    size=None if f.size_estimated else f.size,
                    sha256=f.sha256,
                    revision=None,
                )
            t.uses.append((m.id, comp, qid))
    return out


def hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return False


async def _ask_hub(todo: list[Target], token: str | None) -> None:
    """HEAD each target's first source that answers (concurrently); fills size/sha256."""
    from distill_tui.downloads.errors import DownloadError
    from distill_tui.downloads.hub import head, new_client

    client = new_client(30.0, 4)
    try:

        async def one(t: Target) -> None:
            last: Exception | None = None
            for url in t.file.sources:
                try:
                    meta = await head(client, url, token, retries=2, backoff=0.5)
                except DownloadError as e:
                    last = e
                    continue
                if t.file.sha256 and meta.sha256 and meta.sha256 != t.file.sha256:
                    last = DownloadError("upstream_changed", "serves other bytes")
                    continue
                t.size = meta.size
                t.sha256 = t.sha256 or meta.sha256
                t.revision = meta.revision
                return
            t.hub_error = str(last) if last else "no source answered"

        await asyncio.gather(*(one(t) for t in todo))
    finally:
        await client.aclose()


async def import_paths(
    catalog: Catalog,
    settings: SettingsStore,
    inventory: Inventory,
    paths: Iterable[str | Path],
    *,
    token: str | None = None,
    offline: bool | None = None,
    on_hash: Callable[[Path, int, int], None] | None = None,
) -> tuple[list[Found], list[str]]:
    """Scan ``paths`` (files or folders), link every file whose bytes are a catalog file's.
    Returns what became of each scanned model file, and problems with the paths themselves.
    ``on_hash(path, bytes hashed, size)`` is called (from a worker thread) while a file is
    hashed."""
    index = await asyncio.to_thread(lr.FolderIndex, list(paths), skip=inventory.models_dir)
    tmap = targets(catalog)
    sizes = {s for _p, s, _r in index.files}
    offline = hub_offline() if offline is None else offline
    # the Hub is asked only about catalog files some scanned file could be
    need_hub = [
        t
        for t in tmap.values()
        if (t.sha256 is None and t.size in sizes)
        or (t.size is None and any(abs(s - t.file.size) <= NEAR * t.file.size for s in sizes))
    ]
    if need_hub and not offline:
        await _ask_hub(need_hub, token)
    by_size: dict[int, list[Target]] = {}
    for t in tmap.values():
        if t.size is not None:
            by_size.setdefault(t.size, []).append(t)
    out: list[Found] = []
    for path, size, _root in index.files:
        on_bytes = None
        if on_hash is not None:
            on_bytes = functools.partial(_tell, on_hash, path, size)
        out.append(
            await asyncio.to_thread(
                _one, path, size, by_size.get(size, []), settings, inventory, on_bytes
            )
        )
    return out, list(index.problems)


def _tell(on_hash: Callable[[Path, int, int], None], path: Path, size: int, done: int) -> None:
    on_hash(path, done, size)


def _one(
    path: Path,
    size: int,
    same_size: list[Target],
    settings: SettingsStore,
    inventory: Inventory,
    on_bytes: Callable[[int], None] | None = None,
) -> Found:
    if not same_size:
        from distill_tui.engine.preflight import describe_model_file

        valid, looks = describe_model_file(path)  # header counts bounded (issue 19.20)
        if not valid:  # a crafted or damaged GGUF/safetensors header: one line, an error
            return Found(path, size, "error", words=looks)
        return Found(
            path, size, "unmatched", words="no catalog file has this size", looks_like=looks
        )
    judged = [t for t in same_size if t.sha256]
    if not judged:
        why = "; ".join(
            f"{t.key}: {t.hub_error or 'no sha256 to compare with (offline?)'}" for t in same_size
        )
        return Found(
            path, size, "mismatch", words=f"same size, nothing to check it against ({why})"
        )
    # linked under a temp name beside the first candidate's final name; THAT inode is hashed
    first = inventory.abs_path(judged[0].key)
    try:
        staged = lr.stage(path, first.parent, first.name)
    except OSError as e:
        return Found(path, size, "error", words=f"cannot link it: {e.strerror or e}")
    try:
        try:
            digest = lr.hash_staged(staged, size, on_bytes)
        except lr.NotUsable as e:
            return Found(path, size, "error", words=str(e))
        except OSError as e:
            return Found(path, size, "error", words=f"cannot read it ({e.strerror or e})")
        t = next((t for t in judged if t.sha256 == digest), None)
        if t is None:
            keys = ", ".join(t.key for t in judged)
            return Found(
                path,
                size,
                "mismatch",
                words=f"same size as {keys} but other bytes: sha256 mismatch ({digest[:12]}…, "
                f"expected {judged[0].sha256[:12]}…)",  # type: ignore[index]
                looks_like=lr.describe(path),
            )
        return _link(path, size, t, staged, settings, inventory)
    finally:
        lr.discard(staged)  # (nothing left once published)


def _link(
    path: Path,
    size: int,
    t: Target,
    staged: lr.Staged,
    settings: SettingsStore,
    inventory: Inventory,
) -> Found:
    """Publish the staged, hashed link as ``t``'s file, under its download lock."""
    from distill_tui.downloads.lock import DestLock
    from distill_tui.downloads.sidecar import lock_path

    inventory.refresh()
    if inventory.is_present(t.key):
        return Found(path, size, "present", t.key, words="already installed")
    dest = inventory.abs_path(t.key)
    lock = DestLock(lock_path(dest))
    if not lock.try_acquire():
        return Found(
            path,
            size,
            "locked",
            t.key,
            words=f"being downloaded by another distill process (pid {lock.holder_pid() or '?'})",
        )
    try:
        lr.publish(staged, dest)
        lr.clear_partial(dest)
        inventory.record(
            t.key, size, staged.sha256, source_url=t.file.download_url, revision=t.revision
        )
    except lr.NotUsable as e:
        return Found(path, size, "error", t.key, words=str(e))
    except OSError as e:
        return Found(path, size, "error", t.key, words=f"cannot link it: {e.strerror or e}")
    finally:
        lock.release(unlink=True)
    for model_id, comp, qid in t.uses:
        if qid and settings.selection(model_id).get(comp) is None:  # a quant: choose it
            settings.set_quant(model_id, comp, qid)
    words = (
        "hard link, no copy"
        if staged.how == lr.HARD
        else lr.symlink_words(staged.src, staged.why)  # the real reason (owner, filesystem)
    )
    return Found(path, size, "linked", t.key, words=words)


__all__ = ["Found", "Target", "hub_offline", "import_paths", "targets"]
