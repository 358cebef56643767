"""A catalog file with ``mirrors``: the VAE downloads with no token, from the next source when the
first refuses or fails, and bytes from any source are verified against the catalog's sha256.

The shape is the real one (catalog v2): the FLUX.2 VAE first from the ungated Comfy-Org/flux2-dev,
then from BFL's gated FLUX.2-dev (same bytes) — served by the loopback fake Hub.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from distill_tui.downloads import DownloadState
from distill_tui.downloads.sidecar import part_path
from tests.fakehub import VALID_TOKEN, Fault
from tests.hub_fixtures import build_hub_catalog

M4 = "flux2-klein-4b"
VAE = (M4, "vae", None)
COMFY = "Comfy-Org/flux2-dev"
BFL = "black-forest-labs/FLUX.2-dev"
COMFY_PATH = "split_files/vae/flux2-vae.safetensors"
BFL_PATH = "vae/diffusion_pytorch_model.safetensors"


@pytest.fixture
def hc(fake_hub, isolated_dirs):
    from distill_tui.paths import AppPaths

    sizes = {"vae/flux2-vae.safetensors": 1_200_000}
    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes=sizes)


async def run(hc, items, **kw):
    mgr = hc.manager(**kw)
    seen = []
    mgr.subscribe(seen.append)
    try:
        res = await mgr.download_plan(items)
    finally:
        await mgr.aclose()
    return res, seen


def drop_first_source(fake_hub) -> None:
    """Comfy-Org's file is gone (404 EntryNotFound: the repo itself still exists)."""
    del fake_hub.files[(COMFY, COMFY_PATH)]
    fake_hub.add_file(COMFY, "README.md", b"# flux2-dev\n")


def hub_paths(fake_hub) -> list[str]:
    return [r.path for r in fake_hub.requests if r.server == "hub"]


def published(hc, rel):
    p = hc.context().inventory.abs_path(rel)
    return p.read_bytes() if p.exists() else None


async def test_vae_downloads_with_no_token_from_the_first_source(hc, fake_hub):
    res, seen = await run(hc, [VAE])
    assert res[0].state == DownloadState.DONE, res[0].error
    rel = res[0].key
    assert published(hc, rel) == hc.payload(rel)
    assert all(BFL not in p for p in hub_paths(fake_hub))  # the gated mirror was never asked
    assert all(r.authorization is None for r in fake_hub.requests)
    assert {e.source for e in seen} == {COMFY}  # the UI can say where the bytes come from


async def test_first_source_404_moves_to_the_mirror(hc, fake_hub):
    drop_first_source(fake_hub)
    fake_hub.set_gated(BFL, False)  # a mirror that answers
    res, seen = await run(hc, [VAE])
    assert res[0].state == DownloadState.DONE, res[0].error
    rel = res[0].key
    assert published(hc, rel) == hc.payload(rel)
    paths = hub_paths(fake_hub)
    assert any(COMFY in p for p in paths) and any(BFL in p for p in paths)
    assert seen[-1].source == BFL
    rec = hc.context().inventory.get(rel)
    assert rec.sha256 == hashlib.sha256(hc.payload(rel)).hexdigest()
    assert BFL in (rec.source_url or "")


async def test_gated_mirror_with_token_after_a_404(hc, fake_hub):
    drop_first_source(fake_hub)
    res, _ = await run(hc, [VAE], token=VALID_TOKEN)
    assert res[0].state == DownloadState.DONE, res[0].error
    # the token went to the Hub only; never to the CDN
    assert fake_hub.cdn_requests() and all(r.authorization is None for r in fake_hub.cdn_requests())


async def test_every_source_failing_names_each_source_and_why(hc, fake_hub):
    drop_first_source(fake_hub)  # 404 here, gated (no token) at BFL
    res, _ = await run(hc, [VAE])
    ev = res[0]
    assert ev.state == DownloadState.FAILED
    assert ev.error_kind == "sources"
    assert COMFY in ev.error and "404" in ev.error
    assert BFL in ev.error and "gated" in ev.error and "HF_TOKEN" in ev.error
    assert "\n" not in ev.error
    assert fake_hub.cdn_requests() == []


async def test_a_mirror_announcing_other_bytes_is_refused(hc, fake_hub):
    """The first source 404s; the mirror's X-Linked-Etag is not the catalog's sha256: it is not
    used, and with no source left the error says that it serves other bytes."""
    rel = "vae/flux2-vae.safetensors"
    drop_first_source(fake_hub)
    fake_hub.add_file(BFL, BFL_PATH, b"other bytes" * 1000)
    res, _ = await run(hc, [VAE], token=VALID_TOKEN)
    ev = res[0]
    assert ev.state == DownloadState.FAILED
    assert "other bytes" in ev.error and COMFY in ev.error and BFL in ev.error
    assert fake_hub.cdn_requests() == [] and published(hc, rel) is None


async def test_corrupt_bytes_from_every_source_are_never_published(hc, fake_hub):
    """Each source announces the right sha256 but every CDN answer has a flipped byte: the bad
    bytes are refused at each source in turn, nothing is published, the error names both."""
    rel = "vae/flux2-vae.safetensors"
    fake_hub.set_gated(BFL, False)
    fake_hub.faults.append(Fault("flip", offset=1000, times=None, method="GET"))
    res, _ = await run(hc, [VAE])
    ev = res[0]
    assert ev.state == DownloadState.FAILED and ev.error_kind == "checksum", ev.error
    assert COMFY in ev.error and BFL in ev.error
    assert published(hc, rel) is None
    assert not part_path(hc.context().inventory.abs_path(rel)).exists()


async def test_corrupt_bytes_from_the_first_source_come_right_from_the_mirror(hc, fake_hub):
    rel = "vae/flux2-vae.safetensors"
    fake_hub.set_gated(BFL, False)
    # the first source's one download is corrupt (one flipped byte); the mirror's is clean
    fake_hub.faults.append(Fault("flip", offset=1000, times=1, method="GET"))
    res, seen = await run(hc, [VAE], connections=1)
    assert res[0].state == DownloadState.DONE, res[0].error
    assert published(hc, rel) == hc.payload(rel)
    assert seen[-1].source == BFL


async def test_partial_from_one_source_resumes_from_the_mirror(hc, fake_hub):
    """Same sha256 = same bytes: a partial started on the first source is resumed, not
    restarted, when the download continues from the mirror."""
    import asyncio

    rel = "vae/flux2-vae.safetensors"
    size = len(hc.payload(rel))
    fake_hub.rate = 300_000  # slow enough to stop it part-way
    mgr = hc.manager(connections=1)
    try:
        key = mgr.enqueue(*VAE)
        for _ in range(400):
            ev = mgr.status(key)
            if ev is not None and ev.bytes_done > 200_000:
                break
            await asyncio.sleep(0.01)
        mgr.cancel(key)
        first = await asyncio.wait_for(mgr.wait(key), 10)
    finally:
        await mgr.aclose()
    assert first.state == DownloadState.CANCELLED and first.resumable
    assert 0 < first.bytes_done < size
    drop_first_source(fake_hub)
    fake_hub.set_gated(BFL, False)
    fake_hub.rate = None
    served_before = fake_hub.bytes_served()
    res, seen = await run(hc, [VAE])
    assert res[0].state == DownloadState.DONE, res[0].error
    assert published(hc, rel) == hc.payload(rel)
    assert seen[-1].source == BFL
    # only what was missing came from the mirror
    assert fake_hub.bytes_served() - served_before <= size - first.bytes_done + 64 * 1024


def test_models_list_json_shows_sources(hc):
    """`models list --json` shows every source of a file, so a user can see the mirror."""
    from tests.test_cli_models import distill

    out = distill("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    vae = json.loads(out.stdout)["models"][0]["components"]["vae"]
    assert COMFY in vae["sources"][0] and BFL in vae["sources"][1]
    assert vae["sha256"] == hc.context().catalog.require(M4).vae.sha256


async def test_a_mirror_announcing_another_size_is_left_for_the_next_source(hc, fake_hub):
    """The first source serves a file of another size (and no sha256 to compare): it is not
    used; the mirror with the catalog's size is."""
    rel = "vae/flux2-vae.safetensors"
    fake_hub.set_gated(BFL, False)
    fake_hub.add_file(COMFY, COMFY_PATH, b"x" * 1000)  # same path, other (smaller) bytes
    fake_hub.report_sha = False  # no X-Linked-Etag: only the size can tell
    res, seen = await run(hc, [VAE])
    assert res[0].state == DownloadState.DONE, res[0].error
    assert published(hc, rel) == hc.payload(rel)
    assert seen[-1].source == BFL
