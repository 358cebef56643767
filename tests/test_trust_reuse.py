"""Issue 19.3: reuse of a file already on this machine (the HF cache, `distill models import`,
``import_dirs``) never trusts a name. The bytes that end up under the model's name are the ones
hashed (linked into a temp name in the models dir first, that inode hashed, then moved into
place); a file with no reference hash is recorded unverified, as a download is; a mismatch is
never published, is said once, and the file comes from the Hub instead. And (NIT) `models remove`
of a file still hard-linked elsewhere does not claim the space as freed.

Every test drives the CLI (`distill_tui.cli.main`) against the loopback Hub (tests/fakehub.py)
with an HF cache and folders under tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from distill_tui.cli import main
from tests.fakehub import COMMIT
from tests.test_local_reuse import (
    M4,
    cdn_gets,
    default_set,
    hf_cache_put,
    model_entry,
    models_dir,
    repo_and_path,
)


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """HF_HOME in tmp (as tests/test_local_reuse.py's fixture)."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def other_bytes(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


def put_named_blob(cache: Path, repo: str, path: str, data: bytes, name_sha: str) -> Path:
    """An HF cache blob NAMED ``name_sha`` holding ``data`` (a lying name)."""
    blob = hf_cache_put(cache, repo, path, data)
    named = blob.with_name(name_sha)
    os.replace(blob, named)
    link = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT / path
    link.unlink()
    link.symlink_to(os.path.relpath(named, link.parent))
    return named


def inventory_record(rel: str):
    from distill_tui.inventory import Inventory

    return Inventory(models_dir()).load().get(rel)


def verify(capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["models", "verify"])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


# ---- the HF cache: a blob whose name is the catalog's sha256, other bytes ------------------------
def test_hf_blob_named_by_the_catalog_sha_but_other_bytes_is_fetched_from_the_hub(
    hub_catalog, fake_hub, hf_home, capsys
):
    f = default_set(hub_catalog)[0]
    good = hub_catalog.payload(f.file)
    repo, path = repo_and_path(f.download_url)
    blob = put_named_blob(hf_home / "hub", repo, path, other_bytes(good), f.sha256)
    assert len(blob.read_bytes()) == len(good) and blob.name == f.sha256

    assert main(["models", "download", M4]) == 0
    cap = capsys.readouterr()
    said = cap.out + cap.err
    assert said.count("not reused") == 1, said  # said once
    assert "other bytes" in said and "HF cache" in said
    dest = models_dir() / f.file
    assert dest.read_bytes() == good  # the Hub's bytes, not the blob's
    assert os.stat(dest).st_ino != os.stat(blob).st_ino
    assert fake_hub.bytes_served(f.sha256) > 0
    # nothing of the rejected blob is left under a temp name in the models dir
    assert not [p for p in models_dir().rglob(".*.tmp")]
    rec = inventory_record(f.file)
    assert rec is not None and rec.sha256 == f.sha256 and not rec.unverified
    assert blob.read_bytes() == other_bytes(good)  # the user's cache is left alone
    rc, out = verify(capsys)
    assert rc == 0 and "MISMATCH" not in out, out
    # a second download does not loop back to the blob: already installed, verified
    assert main(["models", "download", M4]) == 0
    assert os.stat(dest).st_ino != os.stat(blob).st_ino


def test_hf_blob_with_the_right_bytes_is_hashed_then_linked_without_a_request(
    hub_catalog, fake_hub, hf_home, capsys
):
    """Still zero requests, a hard link; and the bytes were read (the output shows the
    'verifying' step of a copy in the HF cache) before it is recorded as verified."""
    blobs = {}
    for f in default_set(hub_catalog):
        repo, path = repo_and_path(f.download_url)
        blobs[f.file] = hf_cache_put(hf_home / "hub", repo, path, hub_catalog.payload(f.file))
    assert main(["models", "download", M4]) == 0
    cap = capsys.readouterr()
    assert "linked from the HF cache (hard link, no copy)" in cap.out
    assert "verifying" in cap.err and "checking a copy in the HF cache" in cap.err, cap.err
    assert fake_hub.requests == [] or all(r.server == "hub" for r in fake_hub.requests)
    assert cdn_gets(fake_hub) == [] and fake_hub.bytes_served() == 0
    for rel, blob in blobs.items():
        assert os.stat(models_dir() / rel).st_ino == os.stat(blob).st_ino
        rec = inventory_record(rel)
        assert rec is not None and not rec.unverified and rec.verified_at
    rc, out = verify(capsys)
    assert rc == 0 and "all 3 file(s) verified" in out


def _drop_catalog_sha(hub_catalog, rel: str, *, estimated: bool = False) -> None:
    from distill_tui.paths import AppPaths

    raw = json.loads(hub_catalog.path.read_text())
    for m in raw["models"]:
        for sec in ("diffusion", "textEncoder"):
            for q in m[sec]["quants"]:
                if q["file"] == rel:
                    q.pop("sha256", None)
                    if estimated:
                        q["sizeEstimated"] = True
                        q["size"] = q["size"] + 1000
    AppPaths.from_env().user_catalog_file.write_text(json.dumps(raw))


def test_hf_blob_without_a_reference_hash_is_recorded_unverified(
    hub_catalog, fake_hub, hf_home, capsys
):
    """Neither the catalog nor the Hub gives a sha256: the blob is linked, but recorded
    unverified exactly as a download without a reference would be; `models verify` never says
    ok for it."""
    f = default_set(hub_catalog)[0]
    _drop_catalog_sha(hub_catalog, f.file)
    fake_hub.report_sha = False
    repo, path = repo_and_path(f.download_url)
    blob = hf_cache_put(hf_home / "hub", repo, path, hub_catalog.payload(f.file))
    assert main(["models", "download", M4]) == 0
    out = capsys.readouterr().out
    assert "unverified (no reference hash)" in out, out
    dest = models_dir() / f.file
    assert os.stat(dest).st_ino == os.stat(blob).st_ino
    rec = inventory_record(f.file)
    assert rec is not None and rec.unverified and rec.verified_at is None
    quants = model_entry(capsys)["components"]["diffusion"]["quants"]
    q = next(q for q in quants if q["downloaded"] and q["id"] == f.id)  # type: ignore[attr-defined]
    assert q["verified"] is False
    rc, out = verify(capsys)
    assert "UNVERIFIED" in out and f"ok        {f.file}" not in out, out


async def test_offline_link_of_an_estimated_size_blob_is_unverified(
    hub_catalog, fake_hub, hf_home, monkeypatch
):
    """The Model Manager's enter on a "found in the HF cache" row while HF_HUB_OFFLINE is set,
    for a catalog file with only an estimated size and no sha256 (the service call the row
    makes): linked, recorded unverified (it read "Downloaded ✓" before)."""
    f = default_set(hub_catalog)[0]
    _drop_catalog_sha(hub_catalog, f.file, estimated=True)
    repo, path = repo_and_path(f.download_url)
    blob = hf_cache_put(hf_home / "hub", repo, path, hub_catalog.payload(f.file))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (hftoken reloads huggingface_hub's constants)
    mgr = hub_catalog.manager()
    try:
        key = mgr.enqueue(M4, "diffusion", f.id)  # type: ignore[attr-defined]
        ev = await mgr.wait(key)
    finally:
        await mgr.aclose()
    assert ev.state.value == "done", ev
    assert os.stat(models_dir() / f.file).st_ino == os.stat(blob).st_ino
    rec = inventory_record(f.file)
    assert rec is not None and rec.unverified and rec.verified_at is None
    assert fake_hub.requests == []


def test_hf_blob_damaged_without_a_reference_is_not_linked(hub_catalog, fake_hub, hf_home, capsys):
    """No reference hash anywhere and a blob whose bytes are not its own name: not linked (the
    hf client's own record says it is damaged); downloaded from the Hub (unverified)."""
    f = default_set(hub_catalog)[0]
    _drop_catalog_sha(hub_catalog, f.file)
    fake_hub.report_sha = False
    good = hub_catalog.payload(f.file)
    repo, path = repo_and_path(f.download_url)
    blob = put_named_blob(hf_home / "hub", repo, path, other_bytes(good), f.sha256)
    assert main(["models", "download", M4]) == 0
    cap = capsys.readouterr()
    assert "not reused" in cap.out + cap.err and "damaged" in cap.out + cap.err
    dest = models_dir() / f.file
    assert dest.read_bytes() == good and os.stat(dest).st_ino != os.stat(blob).st_ino


# ---- TOCTOU: the source is replaced after it was hashed ---------------------------------------
def _swap_after_hash(monkeypatch, src: Path, evil: bytes) -> list[int]:
    """Hook localreuse.sha256_of: hash, then replace ``src`` (a new inode, same size) with
    ``evil`` before the caller goes on to link."""
    from distill_tui.downloads import localreuse as lr

    real = lr.sha256_of
    calls = []

    def hashed_then_swapped(*a, **kw):
        digest = real(*a, **kw)
        if not calls:
            tmp = src.with_name(src.name + ".evil")
            tmp.write_bytes(evil)
            os.replace(tmp, src)
        calls.append(1)
        return digest

    monkeypatch.setattr(lr, "sha256_of", hashed_then_swapped)
    return calls


def test_import_publishes_the_bytes_it_hashed_not_a_file_swapped_in_after(
    hub_catalog, fake_hub, tmp_path, monkeypatch, capsys
):
    f = default_set(hub_catalog)[0]
    good = hub_catalog.payload(f.file)
    src = tmp_path / "comfy" / "unet" / "klein.gguf"
    src.parent.mkdir(parents=True)
    src.write_bytes(good)
    calls = _swap_after_hash(monkeypatch, src, other_bytes(good))
    main(["models", "import", str(src.parent)])
    out = capsys.readouterr().out
    assert calls, "the hook ran"
    dest = models_dir() / f.file
    rec = inventory_record(f.file)
    if dest.exists() or rec is not None:  # whatever is published is what is recorded
        assert rec is not None
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == rec.sha256 == f.sha256
    assert dest.read_bytes() == good and "linked" in out, out
    assert not [p for p in models_dir().rglob(".*.tmp")]


def test_download_from_import_dirs_publishes_the_bytes_it_hashed(
    hub_catalog, fake_hub, tmp_path, monkeypatch, capsys
):
    f = default_set(hub_catalog)[1]  # the text encoder: an exact catalog size
    good = hub_catalog.payload(f.file)
    folder = tmp_path / "comfy"
    src = folder / "unet" / "klein.gguf"
    src.parent.mkdir(parents=True)
    src.write_bytes(good)
    hub_catalog.context().settings.update(import_dirs=[str(folder)])
    calls = _swap_after_hash(monkeypatch, src, other_bytes(good))
    assert main(["models", "download", M4]) == 0
    out = capsys.readouterr().out
    assert calls and f"linked from {folder}" in out, out
    dest = models_dir() / f.file
    assert dest.read_bytes() == good
    rec = inventory_record(f.file)
    assert rec is not None and rec.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()


def test_import_of_a_same_size_file_with_other_bytes_is_a_mismatch_and_not_linked(
    hub_catalog, fake_hub, tmp_path, monkeypatch, capsys
):
    """Not published, said; and the hashing of a large file shows (here: from 1 byte on)."""
    from distill_tui.cli import importer as cli_importer

    monkeypatch.setattr(cli_importer, "HASH_SHOWN_FROM", 1)
    f = default_set(hub_catalog)[0]
    src = tmp_path / "comfy" / "unet" / "klein.gguf"
    src.parent.mkdir(parents=True)
    src.write_bytes(other_bytes(hub_catalog.payload(f.file)))
    assert main(["models", "import", str(src.parent)]) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "mismatch" in out and "0 linked" in out
    assert "hashing   klein.gguf (106.5 KB)" in cap.err, cap.err
    assert not (models_dir() / f.file).exists()
    assert inventory_record(f.file) is None
    assert not [p for p in models_dir().rglob(".*.tmp")] if models_dir().exists() else True


# ---- NIT: remove of a file hard-linked elsewhere frees nothing ---------------------------------
def test_remove_of_an_imported_hard_link_does_not_claim_freed_space(
    hub_catalog, fake_hub, tmp_path, capsys
):
    f = default_set(hub_catalog)[0]
    src = tmp_path / "comfy" / "unet" / "klein.gguf"
    src.parent.mkdir(parents=True)
    src.write_bytes(hub_catalog.payload(f.file))
    assert main(["models", "import", str(src.parent)]) == 0
    assert os.stat(src).st_nlink == 2
    capsys.readouterr()
    assert main(["models", "remove", M4, "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"removed {f.file}" in out
    assert "freed 0 B" in out and "still linked" in out, out
    assert src.read_bytes() == hub_catalog.payload(f.file)  # the user's file is there


def test_remove_counts_a_file_that_is_the_last_link(hub_catalog, fake_hub, capsys):
    """A plain download (one link): its size is freed, as before."""
    assert main(["models", "download", M4]) == 0
    capsys.readouterr()
    assert main(["models", "remove", M4, "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "freed 0 B" not in out and "still linked" not in out, out
