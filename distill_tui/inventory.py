"""What is installed: ``installed.json`` in the model directory.

One record per published file (relative path, size, sha256, source URL without its query,
revision, when downloaded and last verified). A file whose bytes nothing could be checked
against (neither the catalog nor the Hub gave a sha256) is recorded with ``unverified``: its
sha256 is only what was received, so it is never shown as verified. Read-modify-write happens under a file lock so
the TUI and a CLI run in another shell never lose each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from distill_tui.atomic import atomic_write_json, move_aside
from distill_tui.catalog import CatalogModel, model_file_problem
from distill_tui.formatting import human_size as human_size  # re-export: downloads/ uses it
from distill_tui.jsonfile import JSONFileError
from distill_tui.jsonfile import loads as load_json
from distill_tui.redact import redact_url

log = logging.getLogger(__name__)

INVENTORY_NAME = "installed.json"


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str
    size: int
    sha256: str | None = None
    source_url: str | None = None
    revision: str | None = None
    downloaded_at: str | None = None
    verified_at: str | None = None
    #: no reference sha256 existed (catalog and Hub silent): the size matched, nothing more
    unverified: bool = False


class InventoryData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = 1
    files: dict[str, FileRecord] = {}


class Inventory:
    def __init__(self, models_dir: Path):
        self.models_dir = Path(models_dir)
        self.path = self.models_dir / INVENTORY_NAME
        self._lock = threading.RLock()
        self._data = InventoryData()
        self._mtime: float | None = None
        self.warnings: list[str] = []

    # ---- IO --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with open(self.models_dir / ".installed.json.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> InventoryData:
        try:
            raw = self.path.read_bytes()
            st = self.path.stat()
        except FileNotFoundError:
            self._mtime = None
            return InventoryData()
        except OSError as e:
            self._warn(f"cannot read {self.path}: {e.strerror or e}")
            return InventoryData()
        try:
            data = InventoryData.model_validate(load_json(raw))
        except (JSONFileError, ValueError, ValidationError) as e:
            why = str(e).splitlines()[0] if isinstance(e, JSONFileError) else "not an inventory"
            try:
                moved = move_aside(self.path)
                msg = (
                    f"inventory {self.path} is unreadable ({why}) and was moved aside to "
                    f"{moved.name}; downloaded files will be re-verified before they count"
                )
            except OSError:
                msg = f"inventory {self.path} is unreadable ({why})"
            self._warn(msg)
            return InventoryData()
        self._mtime = st.st_mtime_ns
        return self._sane(data)

    def _sane(self, data: InventoryData) -> InventoryData:
        """Only records whose key is a clean path inside the models dir: a crafted key
        (``../../victim/thesis.txt``, ``/etc/passwd``, ``installed.json``) must never make
        "Move them", verify or remove reach a file that is not a model file here. Such a
        record is ignored (and said); the next write of the inventory drops it."""
        bad = {k: model_file_problem(k) for k in data.files}
        bad = {k: why for k, why in bad.items() if why}
        if not bad:
            return data
        for key, why in bad.items():
            self._warn(f"inventory {self.path}: record {key!r} ignored: the path {why}")
        files = {k: v for k, v in data.files.items() if k not in bad}
        return data.model_copy(update={"files": files})

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        if msg not in self.warnings:
            self.warnings.append(msg)

    def load(self) -> Inventory:
        with self._lock:
            self._data = self._read()
        return self

    def refresh(self) -> None:
        """Re-read if another process changed the file."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime != self._mtime:
            self.load()

    def _write(self) -> None:
        atomic_write_json(self.path, self._data.model_dump(mode="json"))
        with contextlib.suppress(OSError):
            self._mtime = self.path.stat().st_mtime_ns

    # ---- records ---------------------------------------------------------------------
    def get(self, rel: str) -> FileRecord | None:
        with self._lock:
            return self._data.files.get(rel)

    def records(self) -> dict[str, FileRecord]:
        with self._lock:
            return dict(self._data.files)

    def record(
        self,
        rel: str,
        size: int,
        sha256: str | None,
        source_url: str | None = None,
        revision: str | None = None,
        *,
        unverified: bool = False,
    ) -> FileRecord:
        """Record a published file; ``unverified``: no reference sha256 was known for it."""
        stamp = now_iso()
        rec = FileRecord(
            path=rel,
            size=size,
            sha256=sha256,
            source_url=redact_url(source_url) if source_url else None,
            revision=revision,
            downloaded_at=stamp,
            verified_at=None if unverified else stamp,
            unverified=unverified,
        )
        with self._lock, self._file_lock():
            self._data = self._read()
            self._data.files[rel] = rec
            self._write()
        return rec

    def mark_verified(self, rel: str) -> bool:
        """Record when ``rel`` was last verified. Only a time stamp: a models dir this user
        may not write (read-only, another owner) keeps the old one (False, said once in
        ``warnings``) and verifying still works."""
        try:
            with self._lock, self._file_lock():
                self._data = self._read()
                rec = self._data.files.get(rel)
                if rec is not None:
                    self._data.files[rel] = rec.model_copy(update={"verified_at": now_iso()})
                    self._write()
        except OSError as e:
            self._warn(
                f"could not record the verification time in {self.path} "
                f"({e.strerror or e}): the models dir is not writable by this user"
            )
            return False
        return True

    def forget(self, rel: str) -> None:
        with self._lock, self._file_lock():
            self._data = self._read()
            if self._data.files.pop(rel, None) is not None:
                self._write()

    def adopt_records(self, records: dict[str, FileRecord]) -> None:
        """Add records as they are (files moved here from another model directory)."""
        with self._lock, self._file_lock():
            self._data = self._read()
            self._data.files.update(records)
            self._write()

    def rebind(self, models_dir: Path) -> None:
        """Follow a new model directory (the Model Directory setting changed): every holder
        of this Inventory (resolver, download service, screens) then sees the new one."""
        with self._lock:
            self.models_dir = Path(models_dir)
            self.path = self.models_dir / INVENTORY_NAME
            self._mtime = None
            self._data = self._read()

    # ---- queries ---------------------------------------------------------------------
    def abs_path(self, rel: str) -> Path:
        return self.models_dir / rel

    def is_unverified(self, rel: str) -> bool:
        """Recorded without a reference sha256 (see :class:`FileRecord`)."""
        rec = self.get(rel)
        return rec is not None and rec.unverified

    def is_present(self, rel: str) -> bool:
        """Recorded as verified AND the file is on disk with the recorded size."""
        rec = self.get(rel)
        if rec is None:
            return False
        try:
            return self.abs_path(rel).stat().st_size == rec.size
        except OSError:
            return False

    def gone_original(self, rel: str) -> Path | None:
        """The path a models-dir symlink of ``rel`` points at when that original is gone (an
        HF cache copy removed after it was symlinked: reuse/import link across filesystems),
        else None. Two syscalls, nothing read (issue 23.9)."""
        p = self.abs_path(rel)
        try:
            if not stat.S_ISLNK(os.lstat(p).st_mode) or p.exists():
                return None
            target = Path(os.readlink(p))
        except OSError:
            return None
        return target if target.is_absolute() else Path(os.path.normpath(p.parent / target))

    def model_usage(self, model: CatalogModel) -> int:
        """Bytes on disk of this model's verified files (the shared VAE counts for each)."""
        seen: set[str] = set()
        total = 0
        for _c, _q, f in model.files():
            if f.file not in seen and self.is_present(f.file):
                seen.add(f.file)
                total += f.size
        return total

    def total_usage(self) -> int:
        return sum(r.size for rel, r in self.records().items() if self.is_present(rel))

    def free_bytes(self) -> int:
        probe = self.models_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free
