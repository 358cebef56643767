"""The download service against a real loopback fake Hub (tests/fakehub.py) with faults."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from distill_tui.downloads import DownloadEvent, DownloadState
from distill_tui.downloads.sidecar import RangeSet, Sidecar, part_path, sidecar_path
from tests.fakehub import UNAPPROVED_TOKEN, VALID_TOKEN, Fault
from tests.hub_fixtures import build_hub_catalog

M4 = "flux2-klein-4b"
M9 = "flux2-klein-9b"
DIFF = (M4, "diffusion", "Q4_K_S")
TE = (M4, "textEncoder", "Q3_K_M")
VAE = (M4, "vae", None)


@pytest.fixture
def big(fake_hub, isolated_dirs):
    """The 2-model catalog with payloads of 1.5-3.5 MiB (several 64 KiB pieces each)."""
    from distill_tui.paths import AppPaths

    sizes = {
        "diffusion/flux-2-klein-4b-Q4_K_S.gguf": 3_407_872,
        "text_encoders/Qwen3-4B-Q3_K_M.gguf": 2_097_152 + 12_345,
        "vae/flux2-vae.safetensors": 1_572_864 + 1,
    }
    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes=sizes)


def rel_of(hc, item) -> str:
    return hc.manager().key_for(*item)


def leftovers(models_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(models_dir))
        for p in models_dir.rglob("*")
        if p.is_file()
        and p.name not in ("installed.json", ".installed.json.lock")
        and not p.name.endswith((".gguf", ".safetensors"))
    )


async def run_plan(hc, items, **kw) -> tuple[list[DownloadEvent], list[DownloadEvent], object]:
    mgr = hc.manager(**kw)
    seen: list[DownloadEvent] = []
    mgr.subscribe(seen.append)
    try:
        res = await mgr.download_plan(items)
    finally:
        await mgr.aclose()
    return res, seen, mgr


def published(hc, rel: str) -> bytes | None:
    p = hc.context().inventory.abs_path(rel)
    return p.read_bytes() if p.exists() else None


# ---- the happy path ---------------------------------------------------------------------
async def test_clean_download_publishes_verified_files(big, fake_hub):
    res, seen, _ = await run_plan(big, [DIFF, TE, VAE])
    assert [e.state for e in res] == [DownloadState.DONE] * 3
    ctx = big.context()
    for e in res:
        assert published(big, e.key) == big.payload(e.key)
        rec = ctx.inventory.get(e.key)
        assert rec is not None and rec.sha256 == hashlib.sha256(big.payload(e.key)).hexdigest()
        assert rec.revision == fake_hub.commit
        assert "?" not in (rec.source_url or "") and "Signature" not in (rec.source_url or "")
    # the downloaded quants became the selection (none was selected before)
    sel = ctx.settings.selection(M4)
    assert (sel.diffusion_quant, sel.text_encoder_quant) == ("Q4_K_S", "Q3_K_M")
    assert ctx.resolver.is_model_ready(M4)
    # nothing else left in the model dir: no .part, no sidecar, no lock
    assert leftovers(ctx.inventory.models_dir) == []
    # protocol: Accept-Encoding identity everywhere, parallel ranges, no auth anywhere (no token)
    assert all(r.headers.get("accept-encoding") == "identity" for r in fake_hub.requests)
    cdn = fake_hub.cdn_requests()
    assert cdn and all(r.range and r.status == 206 for r in cdn)
    assert fake_hub.bytes_served() == sum(len(big.payload(e.key)) for e in res)
    # events: progress is monotonic per key and throttled; final DONE delivered
    for e in res:
        mine = [x for x in seen if x.key == e.key]
        done = [x.bytes_done for x in mine if x.state == DownloadState.DOWNLOADING]
        assert done == sorted(done)
        assert mine[-1].state == DownloadState.DONE and mine[-1].fraction == 1.0
        assert len(mine) < 100


async def test_enqueue_same_file_twice_downloads_once(big, fake_hub):
    mgr = big.manager()
    try:
        k1 = mgr.enqueue(*VAE)
        k2 = mgr.enqueue(M9, "vae", None)  # the shared VAE: same key, one download
        k3 = mgr.enqueue(*VAE)
        assert k1 == k2 == k3 == "vae/flux2-vae.safetensors"
        ev = await mgr.wait(k1)
    finally:
        await mgr.aclose()
    assert ev.state == DownloadState.DONE
    assert fake_hub.bytes_served() == len(big.payload(k1))
    assert len([r for r in fake_hub.requests if r.server == "hub"]) == 1


async def test_already_present_file_needs_no_network(big, fake_hub):
    await run_plan(big, [VAE])
    n = len(fake_hub.requests)
    res, _, _ = await run_plan(big, [VAE])
    assert res[0].state == DownloadState.DONE
    assert len(fake_hub.requests) == n


# ---- faults on the wire ----------------------------------------------------------------
async def test_dropped_connection_resumes_at_exact_offset(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("drop", after=10_000, times=3, method="GET"))
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    drops = [r for r in fake_hub.cdn_requests() if r.fault == "drop"]
    assert len(drops) == 3
    for d in drops:  # the retry asks for exactly the bytes that did not arrive
        start, end = (int(x) for x in d.range.removeprefix("bytes=").split("-"))
        retry = [r for r in fake_hub.cdn_requests() if r.range == f"bytes={start + 10_000}-{end}"]
        assert retry and retry[-1].status == 206
    # nothing fetched twice: total = size + nothing (the dropped bytes were kept)
    assert fake_hub.bytes_served() == len(big.payload(rel))


async def test_range_ignored_200_is_never_appended(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("ignore_range", times=3, method="GET", only_ranged=True))
    res, _, _ = await run_plan(big, [DIFF], connections=1)
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    assert [r.status for r in fake_hub.cdn_requests()].count(200) == 3


async def test_wrong_content_range_is_rejected(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("bad_range", times=2, method="GET"))
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)


async def test_416_rechecks_the_hub_then_continues(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("416", times=1, method="GET"))
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    assert len([r for r in fake_hub.requests if r.server == "hub"]) >= 2


async def test_complete_partial_is_verified_without_fetching(big, fake_hub):
    rel = rel_of(big, DIFF)
    data = big.payload(rel)
    dest = big.context().inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part_path(dest).write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    url = big.context().catalog.require(M4).diffusion.get("Q4_K_S").download_url
    Sidecar(url, fake_hub.commit, sha, len(data), RangeSet([(0, len(data))])).save(
        sidecar_path(dest)
    )
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert fake_hub.cdn_requests() == []
    assert dest.read_bytes() == data


async def test_cdn_403_gets_a_fresh_url_and_resumes(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("expired", times=1, method="GET"))
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    heads = [r for r in fake_hub.requests if r.server == "hub"]
    assert len(heads) == 2  # preflight + one refresh
    locations = {r.query for r in fake_hub.cdn_requests() if r.status == 206}
    assert fake_hub.bytes_served() == len(big.payload(rel))
    assert locations


async def test_really_expired_signed_url_is_refreshed(big, fake_hub):
    """The CDN checks the signature's expiry for real: URLs expire while the file is fetched."""
    rel = rel_of(big, DIFF)
    fake_hub.url_ttl = 0.3
    fake_hub.rate = 2_000_000
    res, _, _ = await run_plan(big, [DIFF], connections=2)
    assert res[0].state == DownloadState.DONE, res[0].error
    assert published(big, rel) == big.payload(rel)
    assert any(r.status == 403 for r in fake_hub.cdn_requests())
    assert len([r for r in fake_hub.requests if r.server == "hub"]) >= 2


async def test_one_flipped_byte_retries_once_from_scratch(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(
        Fault(
            "flip",
            offset=123_457,
            times=1,
            method="GET",
            path=hashlib.sha256(big.payload(rel)).hexdigest(),
        )
    )
    # the flip applies to whichever request covers the offset: make it the only one
    res, _, _ = await run_plan(big, [DIFF], connections=1, fetch_overrides={"min_piece": 8 << 20})
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    assert fake_hub.bytes_served() == 2 * len(big.payload(rel))


async def test_bad_bytes_are_never_published(big, fake_hub):
    rel = rel_of(big, DIFF)
    data = big.payload(rel)
    fake_hub.faults.append(Fault("flip", offset=1000, times=None, method="GET"))
    res, _, _ = await run_plan(big, [DIFF], fetch_overrides={"min_piece": 8 << 20})
    ev = res[0]
    assert ev.state == DownloadState.FAILED and ev.error_kind == "checksum"
    expected = hashlib.sha256(data).hexdigest()
    bad = bytearray(data)
    bad[1000] ^= 0xFF
    actual = hashlib.sha256(bytes(bad)).hexdigest()
    assert expected[:12] in ev.error and actual[:12] in ev.error
    assert fake_hub.bytes_served() == 2 * len(data)  # one retry from scratch, not more
    ctx = big.context()
    dest = ctx.inventory.abs_path(rel)
    assert not dest.exists() and not part_path(dest).exists() and ctx.inventory.get(rel) is None


async def test_size_mismatch_fails_without_publishing(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("size", delta=77, times=None, method="GET"))
    res, _, _ = await run_plan(big, [DIFF])
    ev = res[0]
    assert ev.state == DownloadState.FAILED and ev.error_kind == "size_mismatch"
    n = len(big.payload(rel))
    assert str(n) in ev.error and str(n + 77) in ev.error
    assert not big.context().inventory.abs_path(rel).exists()


async def test_stalled_connection_is_cut_and_resumed(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults.append(Fault("stall", after=5000, seconds=20, times=1, method="GET"))
    t0 = time.monotonic()
    res, _, _ = await run_plan(big, [DIFF], stall_timeout=0.5)
    assert res[0].state == DownloadState.DONE
    assert time.monotonic() - t0 < 8
    assert published(big, rel) == big.payload(rel)


async def test_503_then_success_and_429_retry_after(big, fake_hub):
    rel = rel_of(big, DIFF)
    fake_hub.faults += [
        Fault("status", server="hub", status=503, times=1),
        Fault("status", status=503, times=2, method="GET"),
        Fault("status", status=429, headers={"Retry-After": "1"}, times=1, method="GET"),
    ]
    t0 = time.monotonic()
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert time.monotonic() - t0 >= 0.9  # Retry-After honoured
    assert published(big, rel) == big.payload(rel)


async def test_persistent_5xx_fails_as_network_resumable(big, fake_hub):
    fake_hub.faults.append(Fault("status", status=502, times=None, method="GET"))
    res, _, _ = await run_plan(big, [DIFF], retries=2)
    assert res[0].state == DownloadState.FAILED and res[0].error_kind == "network"
    assert res[0].resumable


# ---- the Hub's answers -----------------------------------------------------------------
async def test_gated_without_token_fails_in_preflight(big, fake_hub):
    fake_hub.set_gated(big.vae_repo)
    res, _, _ = await run_plan(big, [DIFF, TE, VAE])
    assert len(res) == 1 and res[0].key == "vae/flux2-vae.safetensors"
    ev = res[0]
    assert ev.state == DownloadState.FAILED and ev.error_kind == "gated"
    assert f"https://huggingface.co/{big.vae_repo}" in ev.error and "HF_TOKEN" in ev.error
    assert fake_hub.cdn_requests() == []  # no byte of the other files moved


async def test_gated_with_token_succeeds_and_no_auth_reaches_cdn(big, fake_hub):
    fake_hub.set_gated(big.vae_repo)
    res, seen, _ = await run_plan(big, [DIFF, VAE], token=VALID_TOKEN)
    assert [e.state for e in res] == [DownloadState.DONE] * 2
    hub_auth = [r.authorization for r in fake_hub.requests if r.server == "hub"]
    assert hub_auth and all(a == f"Bearer {VALID_TOKEN}" for a in hub_auth)
    assert fake_hub.cdn_requests() and all(r.authorization is None for r in fake_hub.cdn_requests())
    assert not any(VALID_TOKEN in repr(e) for e in seen)


async def test_unapproved_and_invalid_tokens(big, fake_hub):
    fake_hub.set_gated(big.vae_repo)
    res, _, _ = await run_plan(big, [VAE], token=UNAPPROVED_TOKEN)
    assert res[0].error_kind == "gated" and "not approved" in res[0].error
    assert UNAPPROVED_TOKEN not in res[0].error
    res, _, _ = await run_plan(big, [VAE], token="hf_WrongWrongWrong123456")
    assert res[0].error_kind == "auth" and "HF_TOKEN" in res[0].error
    assert "hf_WrongWrongWrong123456" not in res[0].error


async def test_token_is_reread_so_retry_after_hf_auth_login_works(big, fake_hub):
    """Built without an explicit token, the manager reads it again for every Hub request: after
    a gated error the user runs `hf auth login` (writes the token file) and retries, no restart."""
    from distill_tui.downloads import DownloadManager
    from tests.hub_fixtures import FAST_FETCH

    fake_hub.set_gated(big.vae_repo)
    ctx = big.context()
    mgr = DownloadManager(
        ctx.catalog,
        ctx.settings,
        ctx.inventory,
        stall_timeout=2.0,
        backoff=0.05,
        disk_margin=0,
        fetch_overrides=dict(FAST_FETCH),
    )
    try:
        res = await mgr.download_plan([VAE])  # preflight: gated, nothing downloaded
        assert res[0].state == DownloadState.FAILED and res[0].error_kind == "gated"
        Path(os.environ["HF_TOKEN_PATH"]).write_text(VALID_TOKEN + "\n")  # `hf auth login`
        ev = await mgr.wait(mgr.enqueue(*VAE))  # the TUI's retry
    finally:
        await mgr.aclose()
    assert ev.state == DownloadState.DONE, ev.error
    assert published(big, ev.key) == big.payload(ev.key)
    hub_auth = [r.authorization for r in fake_hub.requests if r.server == "hub"]
    assert hub_auth[0] is None and hub_auth[-1] == f"Bearer {VALID_TOKEN}"
    assert fake_hub.cdn_requests() and all(r.authorization is None for r in fake_hub.cdn_requests())


async def test_missing_file_names_repo_and_file(big, fake_hub):
    repo, path = "unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q4_K_S.gguf"
    del fake_hub.files[(repo, path)]
    res, _, _ = await run_plan(big, [DIFF, TE])
    assert len(res) == 1 and res[0].error_kind == "not_found"
    assert repo in res[0].error and path in res[0].error and "404" in res[0].error


async def test_catalog_sha_differs_from_hub(big, fake_hub):
    rel = rel_of(big, DIFF)
    real = hashlib.sha256(big.payload(rel)).hexdigest()
    fake_hub.sha_override[real] = "ab" * 32
    res, _, _ = await run_plan(big, [DIFF])
    ev = res[0]
    assert ev.error_kind == "upstream_changed" and "upstream file changed" in ev.error
    assert fake_hub.cdn_requests() == []
    dest = big.context().inventory.abs_path(rel)
    assert not part_path(dest).exists() and not dest.exists()


async def test_disk_space_checked_for_the_whole_plan(big, fake_hub):
    res, _, _ = await run_plan(big, [DIFF, TE, VAE], disk_margin=10**16)
    assert [e.error_kind for e in res] == ["disk"] * 3
    assert "not enough disk space" in res[0].error
    assert fake_hub.cdn_requests() == []


# ---- partials, resume, cancel ----------------------------------------------------------
async def test_cancel_keeps_resumable_partial_then_resumes(big, fake_hub):
    rel = rel_of(big, DIFF)
    size = len(big.payload(rel))
    fake_hub.rate = 600_000  # per connection: the file takes ~1.5 s on 4 connections
    mgr = big.manager(connections=4)
    try:
        key = mgr.enqueue(*DIFF)
        while (mgr.status(key).bytes_done or 0) < size * 0.3:
            await asyncio.sleep(0.05)
        assert mgr.cancel(key)
        ev = await mgr.wait(key)
    finally:
        await mgr.aclose()
    assert ev.state == DownloadState.CANCELLED and ev.resumable
    dest = big.context().inventory.abs_path(rel)
    sc = Sidecar.load(sidecar_path(dest))
    assert sc is not None and 0 < sc.done.covered() < size
    data = part_path(dest).read_bytes()
    for a, b in sc.done.to_list():  # every byte the sidecar calls durable is right
        assert data[a:b] == big.payload(rel)[a:b]
    n0 = len(fake_hub.requests)
    fake_hub.rate = None
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert published(big, rel) == big.payload(rel)
    second = sum(r.body_bytes for r in fake_hub.requests[n0:] if r.server == "cdn")
    assert second == size - sc.done.covered()  # exactly the missing bytes, nothing twice
    assert fake_hub.bytes_served() < 1.3 * size


async def test_partial_of_another_upstream_version_starts_over(big, fake_hub):
    rel = rel_of(big, DIFF)
    data = big.payload(rel)
    dest = big.context().inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part_path(dest).write_bytes(b"\0" * len(data))
    url = big.context().catalog.require(M4).diffusion.get("Q4_K_S").download_url
    Sidecar(url, "old-revision", "cd" * 32, len(data), RangeSet([(0, len(data) // 2)])).save(
        sidecar_path(dest)
    )
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE
    assert dest.read_bytes() == data
    assert fake_hub.bytes_served() == len(data)


async def test_unknown_file_under_final_name_is_verified_before_it_counts(big, fake_hub):
    rel = rel_of(big, DIFF)
    data = big.payload(rel)
    dest = big.context().inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)  # right bytes, not in the inventory (crash after os.replace)
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE and fake_hub.cdn_requests() == []
    assert big.context().inventory.get(rel) is not None
    big.context().inventory.forget(rel)
    dest.write_bytes(b"x" * len(data))  # wrong bytes: downloaded again
    res, _, _ = await run_plan(big, [DIFF])
    assert res[0].state == DownloadState.DONE and dest.read_bytes() == data
    assert fake_hub.bytes_served() == len(data)


async def test_locked_by_another_process_waits_then_finds_it(big, fake_hub, tmp_path):
    """A lock held by another process (a real child holding flock) delays the download."""
    rel = rel_of(big, VAE)
    dest = big.context().inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = dest.with_name(dest.name + ".lock")
    holder = subprocess.Popen(  # noqa: ASYNC220
        [
            "python3",
            "-c",
            "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d' % os.getpid()); print('ok', flush=True);"
            " time.sleep(1.0)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ok"
    mgr = big.manager(wait_for_lock=False)
    try:
        key = mgr.enqueue(*VAE)
        ev = await mgr.wait(key)
    finally:
        await mgr.aclose()
    assert ev.error_kind == "locked" and str(holder.pid) in ev.error
    notes: list[str] = []
    mgr = big.manager()
    mgr.subscribe(lambda e: e.note and notes.append(e.note))
    try:
        ev = await mgr.wait(mgr.enqueue(*VAE))
    finally:
        await mgr.aclose()
        holder.wait()
    assert ev.state == DownloadState.DONE and any("waiting" in n for n in notes)


async def test_disk_full_mid_download_fails_cleanly_keeping_partial(
    fake_hub, isolated_dirs, monkeypatch
):
    """A real ENOSPC from a small tmpfs (root), else a clearly-labelled pwrite fault hook."""
    from distill_tui.paths import AppPaths
    from distill_tui.settings import SettingsStore

    mnt = isolated_dirs / "smalldisk"
    mnt.mkdir()
    mounted = (
        subprocess.run(  # noqa: ASYNC221
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        == 0
    )
    try:
        paths = AppPaths.from_env()
        st = SettingsStore(paths)
        st.update(model_base_path=str(mnt))
        hc = build_hub_catalog(
            fake_hub,
            paths.user_catalog_file,
            sizes={"diffusion/flux-2-klein-4b-Q4_K_S.gguf": 2 << 20},
        )
        rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
        if mounted:

            def fill(_handler) -> None:  # another program fills the disk mid-download
                with contextlib.suppress(OSError), open(mnt / "filler", "wb") as fh:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()

            fake_hub.faults.append(Fault("callback", fn=fill, times=1, method="GET"))
        else:  # FAULT HOOK (no tmpfs here): pwrite raises ENOSPC after 1 MiB
            import distill_tui.downloads.fetch as fetch_mod

            real, written = os.pwrite, [0]

            def pwrite(fd, data, off):
                written[0] += len(data)
                if written[0] > (1 << 20):
                    raise OSError(errno.ENOSPC, "No space left on device (fault hook)")
                return real(fd, data, off)

            monkeypatch.setattr(fetch_mod.os, "pwrite", pwrite)
        res, _, _ = await run_plan(hc, [DIFF], connections=2)
        ev = res[0]
        assert ev.state == DownloadState.FAILED and ev.error_kind == "disk"
        assert "disk full" in ev.error and ev.resumable
        dest = mnt / rel
        assert not dest.exists() and part_path(dest).exists()
        sc = Sidecar.load(sidecar_path(dest))
        assert sc is not None
        data = part_path(dest).read_bytes()
        for a, b in sc.done.to_list():
            assert data[a:b] == hc.payload(rel)[a:b]
        # space comes back: the rerun resumes and completes
        with contextlib.suppress(FileNotFoundError):
            (mnt / "filler").unlink()
        monkeypatch.undo() if not mounted else None
        if not mounted:
            st = SettingsStore(paths)
            st.load()
        res, _, _ = await run_plan(hc, [DIFF], connections=2)
        assert res[0].state == DownloadState.DONE, res[0].error
        assert dest.read_bytes() == hc.payload(rel)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)  # noqa: ASYNC221


def test_sidecar_never_stores_the_signed_url(tmp_path):
    sc = Sidecar("http://127.0.0.1:1/a/b/resolve/main/x?Expires=1&Signature=abc", "r", None, 10)
    sc.save(tmp_path / "s.json")
    text = (tmp_path / "s.json").read_text()
    assert "Signature" not in text and "abc" not in json.loads(text)["url"]


def test_rangeset():
    r = RangeSet()
    r.add(10, 20)
    r.add(0, 5)
    r.add(5, 10)
    r.add(30, 40)
    assert r.to_list() == [[0, 20], [30, 40]] and r.prefix_end() == 20
    assert r.gaps(50) == [(20, 30), (40, 50)] and r.covered() == 30
    r.add(15, 35)
    assert r.to_list() == [[0, 40]]


# ---- proxies from the environment --------------------------------------------------------
class _ForwardProxy:
    """A minimal plain-HTTP forward proxy on 127.0.0.1 that records what went through it."""

    def __init__(self) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:
                pass

            def _relay(self) -> None:
                seen.append(f"{self.command} {self.path}")
                u = urlsplit(self.path)
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if not k.lower().startswith("proxy-") and k.lower() != "connection"
                }
                conn.request(
                    self.command, u.path + (f"?{u.query}" if u.query else ""), headers=headers
                )
                resp = conn.getresponse()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    while chunk := resp.read(65536):
                        self.wfile.write(chunk)
                conn.close()

            do_GET = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_env_proxy_is_used_for_hub_and_cdn(big, fake_hub, monkeypatch):
    proxy = _ForwardProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        res, _, _ = await run_plan(big, [VAE])
    finally:
        proxy.stop()
    assert res[0].state == DownloadState.DONE
    assert published(big, res[0].key) == big.payload(res[0].key)
    assert any(s.startswith("HEAD " + fake_hub.url) for s in proxy.seen)
    assert any(s.startswith("GET " + fake_hub.cdn_url) for s in proxy.seen)
