"""Fixtures for the fake Hugging Face Hub (a real HTTP server on 127.0.0.1; see tests/fakehub.py).

- ``fake_hub``: a started :class:`tests.fakehub.FakeHub` (``.add_file(repo, path, data,
  gated=False)``, ``.url``, ``.requests``, ``.faults``, ``.set_gated(repo)``, ``.rate``,
  ``.valid_token``); stopped after the test.
- ``hub_catalog_v3``: the same for the whole bundled catalog v3 (every model: Klein, Z-Image,
  Klein base, the ESRGAN upscalers; shared files served once): ``build_hub_catalog(full=True)``.
- ``hub_catalog``: the fake Hub serving small payloads for every file of a 2-model catalog with
  the bundled catalog's shape (same model ids, quant ids, file names, repos), installed as the
  user catalog (loopback URLs, exact sizes and sha256; a file's mirrors serve the same bytes,
  BFL's FLUX.2-dev gated as on the real Hub). ``hub_catalog.payload(rel)`` gives the
  bytes, ``hub_catalog.context()`` a fresh CoreContext, ``hub_catalog.manager(**kw)`` a
  DownloadManager with fast test timings.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fakehub import UNAPPROVED_TOKEN, VALID_TOKEN, FakeHub, Fault

__all__ = ["Fault", "FakeHub", "HubCatalog", "VALID_TOKEN", "UNAPPROVED_TOKEN", "payload_bytes"]

TEST_CATALOG_VERSION = 1000
#: fast timings for tests (FetchConfig fields)
FAST_FETCH = {"min_piece": 64 * 1024, "flush_interval": 0.2, "backoff": 0.05, "max_backoff": 0.2}


def payload_bytes(name: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes for ``name``."""
    rnd = random.Random(hashlib.sha256(name.encode()).digest())
    return rnd.randbytes(size)


@dataclass
class HubCatalog:
    hub: FakeHub
    path: Path
    raw: dict
    payloads: dict[str, bytes] = field(default_factory=dict)

    def payload(self, rel: str) -> bytes:
        return self.payloads[rel]

    @property
    def model_ids(self) -> list[str]:
        return [m["id"] for m in self.raw["models"]]

    @property
    def vae_repo(self) -> str:
        m = self.raw["models"][0]
        if "vae" in m:
            return _repo(m["vae"]["downloadUrl"])
        vae = next(c for c in m["components"] if c["role"] == "vae")
        return _repo(vae["file"]["downloadUrl"])

    def context(self):
        from distill_tui.context import CoreContext

        return CoreContext.build()

    def manager(self, ctx=None, **kw):
        from distill_tui.downloads import DownloadManager

        ctx = ctx or self.context()
        kw.setdefault("token", None)
        kw.setdefault("stall_timeout", 2.0)
        kw.setdefault("backoff", 0.05)
        kw.setdefault("disk_margin", 0)
        overrides = dict(FAST_FETCH)
        overrides.update(kw.pop("fetch_overrides", {}))
        return DownloadManager(
            ctx.catalog, ctx.settings, ctx.inventory, fetch_overrides=overrides, **kw
        )


def _repo(url: str) -> str:
    path = urlsplit(url).path
    return path.split("/resolve/")[0].strip("/")


def build_hub_catalog(
    hub: FakeHub,
    dest: Path,
    *,
    scale: int = 1,
    sizes: dict[str, int] | None = None,
    full: bool = False,
) -> HubCatalog:
    """Mirror the bundled catalog on ``hub`` with small payloads; write it to ``dest``.
    Default: the Klein pair in the v2 shape (bundled_v2); ``full``: every bundled model, v3."""
    from tests.catalog_raw import bundled_v2, bundled_v3

    raw = bundled_v3() if full else bundled_v2()
    raw["catalogVersion"] = TEST_CATALOG_VERSION
    payloads: dict[str, bytes] = {}
    sizes = sizes or {}
    served: set[tuple[str, str]] = set()
    gated_repos = {"black-forest-labs/FLUX.2-dev"}  # gated on the real Hub too

    def fix(entry: dict, default_size: int) -> None:
        url = entry["downloadUrl"]
        repo = _repo(url)
        path_in_repo = urlsplit(url).path.split("/resolve/", 1)[1].split("/", 1)[1]
        rel = entry["file"]
        if rel not in payloads:
            payloads[rel] = payload_bytes(rel, sizes.get(rel, default_size) * scale)
            hub.add_file(repo, path_in_repo, payloads[rel])
        data = payloads[rel]
        entry["downloadUrl"] = hub.resolve_url(repo, path_in_repo)
        mirrors = []
        for m_url in entry.get("mirrors", []):  # the same bytes at every mirror (BFL's gated repo)
            m_repo = _repo(m_url)
            m_path = urlsplit(m_url).path.split("/resolve/", 1)[1].split("/", 1)[1]
            if (m_repo, m_path) not in served:
                served.add((m_repo, m_path))
                hub.add_file(m_repo, m_path, data, gated=m_repo in gated_repos)
            mirrors.append(hub.resolve_url(m_repo, m_path))
        if mirrors:
            entry["mirrors"] = mirrors
        entry["size"] = len(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()

    base = {"diffusion": 96 * 1024, "textEncoder": 64 * 1024, "vae": 48 * 1024}
    for i, m in enumerate(raw["models"]):
        comps = m.get("components")
        if comps is None:  # v2: the trio as keys
            comps = [
                {"role": "diffusion", **m["diffusion"]},
                {"role": "textEncoder", **m["textEncoder"]},
                {"role": "vae", "file": m["vae"]},
            ]
        for c in comps:
            size = base.get(c["role"], 40 * 1024)
            for j, q in enumerate(c.get("quants") or ()):
                fix(q, size + 8192 * j + 4096 * i)
            if c.get("file") is not None:
                fix(c["file"], size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(raw, indent=2))
    return HubCatalog(hub, dest, raw, payloads)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def hub_catalog_v3(fake_hub: FakeHub, isolated_dirs: Path) -> HubCatalog:
    from distill_tui.paths import AppPaths

    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, full=True)


@pytest.fixture
def hub_catalog(fake_hub: FakeHub, isolated_dirs: Path) -> HubCatalog:
    from distill_tui.paths import AppPaths

    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file)
