"""Upstream drift of installed files (``distill models check``). No textual import; never
downloads anything.

For every file the inventory holds (of one model, or of every catalog model) the Hub is asked
(one ``HEAD`` of the resolve URL the file came from - its pinned revision when the catalog pins
one - 8 at a time, ``hub.head``: token only to the Hub, ``HF_HUB_ETAG_TIMEOUT``) for its current
sha256, size and revision, and compared with what was installed:

- ``up_to_date``: the Hub serves the installed bytes (same sha256; same size when the Hub gives
  no sha256);
- ``changed``: upstream changed (another sha256 or size): ``distill models remove`` + download
  gets the new file;
- ``gone``: the Hub answers 404 (file, revision or repository removed);
- ``unknown``: cannot check (unreachable, gated without a token, TLS...): the reason says why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distill_tui.redact import redact_url

if TYPE_CHECKING:
    from distill_tui.catalog import Catalog, CatalogFile
    from distill_tui.downloads.hub import HubMeta
    from distill_tui.inventory import FileRecord, Inventory

STATUS_WORDS = {
    "up_to_date": "up to date",
    "changed": "upstream changed",
    "gone": "gone",
    "unknown": "cannot check",
}


@dataclass
class FileDrift:
    key: str
    model_id: str
    component: str
    quant_id: str | None
    url: str  #: the resolve URL asked (no query)
    local: FileRecord
    pinned: str | None = None
    status: str = "unknown"
    hub_sha256: str | None = None
    hub_size: int | None = None
    hub_revision: str | None = None
    reason: str | None = None
    hub: str | None = None  #: the file's own catalog URL: the token goes to the Hub only

    @property
    def words(self) -> str:
        """One line: "up to date", "upstream changed (new sha256 1234abcd…, new size 2.1 GB)"."""
        from distill_tui.formatting import human_size

        base = STATUS_WORDS[self.status]
        if self.status == "changed":
            what = []
            if self.hub_sha256 and self.hub_sha256 != self.local.sha256:
                what.append(f"new sha256 {self.hub_sha256[:12]}…")
            if self.hub_size is not None and self.hub_size != self.local.size:
                what.append(f"new size {human_size(self.hub_size)}")
            if self.hub_revision and self.hub_revision != self.local.revision:
                what.append(f"revision {self.hub_revision[:12]}")
            return f"{base} ({', '.join(what)})" if what else base
        if self.status in ("gone", "unknown") and self.reason:
            return f"{base} ({self.reason})"
        if self.status == "up_to_date" and self.pinned:
            return f"{base} (pinned to {self.pinned[:12]})"
        return base

    def to_json(self) -> dict:
        return {
            "file": self.key,
            "model": self.model_id,
            "component": self.component,
            "quant": self.quant_id,
            "url": self.url,
            "pinnedRevision": self.pinned,
            "status": self.status,
            "summary": self.words,
            "local": {
                "sha256": self.local.sha256,
                "size": self.local.size,
                "revision": self.local.revision,
            },
            "hub": None
            if self.status in ("unknown", "gone")
            else {"sha256": self.hub_sha256, "size": self.hub_size, "revision": self.hub_revision},
            "reason": self.reason,
        }


@dataclass
class DriftReport:
    endpoint: str
    files: list[FileDrift] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def unreachable(self) -> bool:
        """Nothing could be checked (every file ``unknown``)."""
        return bool(self.files) and all(f.status == "unknown" for f in self.files)

    def to_json(self) -> dict:
        return {
            "version": 1,
            "endpoint": self.endpoint,
            "files": [f.to_json() for f in self.files],
            "summary": {
                "upToDate": self.count("up_to_date"),
                "changed": self.count("changed"),
                "gone": self.count("gone"),
                "unknown": self.count("unknown"),
            },
        }


def installed_files(
    catalog: Catalog, inventory: Inventory, model_id: str | None = None
) -> list[FileDrift]:
    """The installed files of ``model_id`` (or of every catalog model), once each."""
    records = inventory.records()
    models = [catalog.require(model_id)] if model_id else list(catalog.models)
    out: dict[str, FileDrift] = {}
    for m in models:
        for comp, qid, f in m.files():
            rec = records.get(f.file)
            if rec is None or f.file in out or not inventory.is_present(f.file):
                continue
            out[f.file] = FileDrift(
                f.file,
                m.id,
                comp,
                qid,
                _url_for(f, rec),
                rec,
                pinned=f.pinned_revision,
                hub=f.sources[0],
            )
    return list(out.values())


def _url_for(f: CatalogFile, rec: FileRecord) -> str:
    """The source the file came from (one of the catalog's, e.g. a mirror), else the first."""
    sources = f.sources
    if rec.source_url:
        for u in sources:
            if redact_url(u).replace("?<redacted>", "") == rec.source_url:
                return u
    return sources[0]


def compare(fd: FileDrift, meta: HubMeta) -> None:
    fd.hub_sha256, fd.hub_size, fd.hub_revision = meta.sha256, meta.size, meta.revision
    local = fd.local
    if meta.sha256 and local.sha256 and not local.unverified:
        same = meta.sha256 == local.sha256 and meta.size == local.size
    else:  # no reference hash on one side: the size, and the revision when both know it
        same = meta.size == local.size and (
            not (meta.revision and local.revision) or meta.revision == local.revision
        )
    fd.status = "up_to_date" if same else "changed"


async def check_files(
    files: list[FileDrift], token: str | None, *, concurrency: int = 8
) -> list[FileDrift]:
    """HEAD every file's URL (bounded) and fill in its status. Never raises for one file."""
    from distill_tui.downloads.errors import DownloadError
    from distill_tui.downloads.hub import head, new_client
    from distill_tui.hftoken import etag_timeout

    sem = asyncio.Semaphore(concurrency)
    client = new_client(30.0, concurrency)
    bound = 2 * etag_timeout() + 10  # head() retries within ~2 x HF_HUB_ETAG_TIMEOUT

    async def one(fd: FileDrift) -> None:
        async with sem:
            try:
                meta = await asyncio.wait_for(
                    head(client, fd.url, token, retries=2, backoff=0.5, hub=fd.hub), bound
                )
            except DownloadError as e:
                if e.kind == "not_found":
                    fd.status, fd.reason = "gone", e.message
                else:
                    fd.status, fd.reason = "unknown", e.message
                return
            except TimeoutError:
                fd.status, fd.reason = "unknown", f"no answer within {bound:g} s"
                return
            except Exception as e:  # an answer head() does not map: one line, not a traceback
                fd.status, fd.reason = "unknown", f"{type(e).__name__}: {e}"[:200]
                return
            compare(fd, meta)

    try:
        await asyncio.gather(*(one(f) for f in files))
    finally:
        await client.aclose()
    return files


def check_installed(
    catalog: Catalog,
    inventory: Inventory,
    model_id: str | None = None,
    token: str | None = None,
) -> DriftReport:
    """The whole check (``asyncio.run``: call it from a thread in the TUI)."""
    from distill_tui.hftoken import endpoint

    files = installed_files(catalog, inventory, model_id)
    report = DriftReport(endpoint())
    if files:
        report.files = asyncio.run(check_files(files, token))
    return report
