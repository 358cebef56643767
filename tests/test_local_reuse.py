"""Reuse before download (issue 14.2): the same bytes already on this machine — a Hugging Face
cache (blobs named by sha256 + snapshot symlinks, as the hf client lays it out) or a ComfyUI-like
folder — are linked into place instead of fetched; the loopback Hub's request log proves that no
byte came from the CDN. Real processes, real files, real links; the only fake is os.link raising
EXDEV to stand for a second filesystem."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_tui.cli import main
from tests.fakehub import COMMIT

M4 = "flux2-klein-4b"
ROOT = Path(__file__).resolve().parent.parent


# ---- helpers ---------------------------------------------------------------------------------
def hf_cache_put(cache: Path, repo: str, path_in_repo: str, data: bytes, rev: str = "main") -> Path:
    """Lay out one file as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/<path> a
    relative symlink to it, refs/<rev> the commit. Returns the blob."""
    owner, name = repo.split("/")
    repo_dir = cache / f"models--{owner}--{name}"
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / COMMIT / path_in_repo
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / rev).write_text(COMMIT)
    return blob


def repo_and_path(url: str) -> tuple[str, str]:
    from distill_tui.downloads.localreuse import resolve_parts

    parts = resolve_parts(url)
    assert parts is not None
    return parts[0], parts[2]


def default_set(hub_catalog) -> list:
    """The catalog files ``distill models download flux2-klein-4b`` fetches."""
    model = hub_catalog.context().catalog.require(M4)
    return [
        model.diffusion.get(model.default_quant("diffusion")),
        model.text_encoder.get(model.default_quant("textEncoder")),
        model.vae,
    ]


def fill_hf_cache(hub_catalog, cache: Path) -> dict[str, Path]:
    out = {}
    for f in default_set(hub_catalog):
        repo, path = repo_and_path(f.download_url)
        out[f.file] = hf_cache_put(cache, repo, path, hub_catalog.payload(f.file))
    return out


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """HF_HOME in tmp (for child processes) and huggingface_hub's cache constant (in-process:
    it is computed when huggingface_hub is imported, as in the hf client itself)."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def listing(capsys) -> dict:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def model_entry(capsys, model_id: str = M4) -> dict:
    return next(m for m in listing(capsys)["models"] if m["id"] == model_id)


def cdn_gets(hub) -> list:
    return [r for r in hub.requests if r.server == "cdn" and r.method == "GET"]


# ---- the HF cache ------------------------------------------------------------------------------
def test_download_links_the_hf_cache_and_fetches_nothing(hub_catalog, fake_hub, hf_home, capsys):
    """A real `distill models download` process with HF_HOME pointing at a cache that holds the
    set: 0 CDN requests (not even a HEAD: the catalog's sha256 names the blob), Ready, and every
    file is the cache's blob itself (same inode: a hard link, no copy)."""
    blobs = fill_hf_cache(hub_catalog, hf_home / "hub")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "distill_tui", "models", "download", M4],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "linked from the HF cache (hard link, no copy)" in proc.stdout
    assert "(ready)" in proc.stdout
    assert cdn_gets(fake_hub) == [] and fake_hub.bytes_served() == 0
    assert [r for r in fake_hub.requests if r.server == "cdn"] == []
    for rel, blob in blobs.items():
        dest = models_dir() / rel
        assert not dest.is_symlink()
        assert os.stat(dest).st_ino == os.stat(blob).st_ino
    m = model_entry(capsys)
    assert m["ready"] is True
    assert all(q["verified"] for q in m["components"]["diffusion"]["quants"] if q["downloaded"])
    # the inventory knows the snapshot's commit, as for a download
    from distill_tui.inventory import Inventory

    rec = Inventory(models_dir()).load().get(default_set(hub_catalog)[0].file)
    assert rec is not None and rec.revision == COMMIT and not rec.unverified


def test_hf_cache_blob_of_same_size_but_other_bytes_is_not_linked(
    hub_catalog, fake_hub, hf_home, capsys
):
    """The cache has the path with other bytes of the same size (another revision): it is not
    linked, the reason is said, and the file comes from the Hub (verified) instead."""
    f = default_set(hub_catalog)[0]
    repo, path = repo_and_path(f.download_url)
    good = hub_catalog.payload(f.file)
    other = bytes(b ^ 0xFF for b in good)
    blob = hf_cache_put(hf_home / "hub", repo, path, other)
    assert main(["models", "download", M4]) == 0
    cap = capsys.readouterr()
    said = cap.out + cap.err
    assert "not reused" in said and "other bytes" in said and "HF cache" in said
    dest = models_dir() / f.file
    assert dest.read_bytes() == good
    assert os.stat(dest).st_ino != os.stat(blob).st_ino
    assert fake_hub.bytes_served() > 0


def test_symlink_when_a_hard_link_is_impossible(
    hub_catalog, fake_hub, hf_home, monkeypatch, capsys
):
    """Another filesystem (os.link -> EXDEV, the one fake here): a symlink to the blob, and the
    output says so."""

    def exdev(*_a, **_k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    blobs = fill_hf_cache(hub_catalog, hf_home / "hub")
    monkeypatch.setattr(os, "link", exdev)
    assert main(["models", "download", M4]) == 0
    out = capsys.readouterr().out
    assert "symlink to" in out and "removing the original breaks it" in out
    assert fake_hub.bytes_served() == 0
    for rel, blob in blobs.items():
        dest = models_dir() / rel
        assert dest.is_symlink() and dest.resolve() == blob.resolve()
        assert dest.read_bytes() == hub_catalog.payload(rel)
    assert model_entry(capsys)["ready"] is True


# ---- folders: models import and import_dirs ---------------------------------------------------
def comfy_folder(hub_catalog, root: Path) -> dict[str, Path]:
    """A ComfyUI-like models/ folder holding the set under other names."""
    names = ("diffusion_models/klein4b-q4.gguf", "text_encoders/qwen3_4b.gguf", "vae/flux2.sft")
    out = {}
    for f, name in zip(default_set(hub_catalog), names, strict=True):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(hub_catalog.payload(f.file))
        out[f.file] = p
    return out


def tiny_gguf(path: Path) -> None:
    import gguf
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Some Other Model")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("tok_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_models_import_links_a_comfy_folder(hub_catalog, fake_hub, hf_home, tmp_path, capsys):
    comfy = tmp_path / "ComfyUI" / "models"
    files = comfy_folder(hub_catalog, comfy)
    tiny_gguf(comfy / "unet" / "something-else.gguf")
    # same size as the diffusion quant, other bytes
    diff = default_set(hub_catalog)[0]
    impostor = comfy / "checkpoints" / "impostor.safetensors"
    impostor.parent.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    body = len(header).to_bytes(8, "little") + header
    impostor.write_bytes(body + b"\0" * (diff.size - len(body)))

    assert main(["models", "import", str(comfy)]) == 0
    out = capsys.readouterr().out
    for rel, src in files.items():
        dest = models_dir() / rel
        assert os.stat(dest).st_ino == os.stat(src).st_ino  # a hard link
        assert f"-> {rel} (hard link, no copy)" in out
    assert "3 linked" in out and f"{M4}: ready" in out
    # what the unmatched files look like
    assert "unet/something-else.gguf" in out
    assert "GGUF, architecture llama (Some Other Model), quant Q8_0" in out
    assert "checkpoints/impostor.safetensors" in out and "sha256 mismatch" in out
    assert "safetensors, 1 tensors (F16)" in out
    # the Hub is asked (HEAD) only about catalog files whose size is an estimate; no CDN byte
    assert all(r.server == "hub" and r.method == "HEAD" for r in fake_hub.requests)
    m = model_entry(capsys)
    assert m["ready"] is True and m["selection"]["diffusion"] == diff.id  # type: ignore[attr-defined]

    # a second run: already installed, nothing else happens
    assert main(["models", "import", str(comfy)]) == 0
    assert "3 already installed" in capsys.readouterr().out


def test_import_asks_the_hub_when_the_catalog_has_no_sha(hub_catalog, fake_hub, tmp_path, capsys):
    """A catalog entry without sha256: the Hub's (X-Linked-Etag) decides."""
    from distill_tui.paths import AppPaths

    raw = json.loads(hub_catalog.path.read_text())
    diff = default_set(hub_catalog)[0]
    for m in raw["models"]:
        for q in m["diffusion"]["quants"]:
            if q["file"] == diff.file:
                q.pop("sha256")
    AppPaths.from_env().user_catalog_file.write_text(json.dumps(raw))
    src = tmp_path / "sd" / "model.gguf"
    src.parent.mkdir()
    src.write_bytes(hub_catalog.payload(diff.file))
    assert main(["models", "import", str(src.parent)]) == 0
    assert f"-> {diff.file} (hard link, no copy)" in capsys.readouterr().out
    heads = [r for r in fake_hub.requests if r.server == "hub"]
    assert heads and all(r.method == "HEAD" for r in heads)
    assert cdn_gets(fake_hub) == []


def test_download_reuses_the_import_dirs_setting(hub_catalog, fake_hub, hf_home, tmp_path, capsys):
    """`models import --remember` stores the folder in import_dirs; a later download (of a
    file added to the folder afterwards) links it from there, 0 bytes from the CDN."""
    comfy = tmp_path / "ComfyUI" / "models"
    files = comfy_folder(hub_catalog, comfy)
    vae = default_set(hub_catalog)[2]
    held_back = files[vae.file].read_bytes()
    files[vae.file].unlink()
    assert main(["models", "import", str(comfy), "--remember"]) == 0
    assert "2 linked" in capsys.readouterr().out
    assert hub_catalog.context().settings.settings.import_dirs == [str(comfy)]
    files[vae.file].write_bytes(held_back)
    assert main(["models", "download", M4]) == 0
    out = capsys.readouterr().out
    assert f"linked from {comfy}" in out and "(ready)" in out
    assert fake_hub.bytes_served() == 0 and cdn_gets(fake_hub) == []
    assert os.stat(models_dir() / vae.file).st_ino == os.stat(files[vae.file]).st_ino


def test_import_without_paths_or_setting_is_one_line(hub_catalog, capsys):
    assert main(["models", "import"]) == 1
    err = capsys.readouterr().err
    assert "nothing to scan" in err and len(err.strip().splitlines()) == 1


# ---- the Model Manager -------------------------------------------------------------------------
async def test_model_manager_shows_the_hf_cache_and_enter_links(hub_catalog, fake_hub, hf_home):
    """A not-downloaded row whose file is in the HF cache reads "found in the HF cache — enter
    to link · d download"; enter links it (quant row and VAE row), 0 bytes from the CDN."""
    from tests.test_models_screen import focus_row, make_app, screen, settle

    diff, _te, vae = default_set(hub_catalog)
    blobs = {}
    for f in (diff, vae):
        repo, path = repo_and_path(f.download_url)
        blobs[f.file] = hf_cache_put(hf_home / "hub", repo, path, hub_catalog.payload(f.file))
    core = hub_catalog.context()
    app = make_app(core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        await focus_row(pilot, diff.label)  # type: ignore[attr-defined]
        row = scr.focused_row()
        # the HF cache is looked at on a thread (issue 19.22): the hint follows shortly
        for _ in range(200):
            if row is None or row.found is not None:
                break
            await pilot.pause(0.02)
        assert row is not None and row.state == "missing" and row.found == "the HF cache"
        text = row.render().plain
        assert "found in the HF cache" in text
        wide = " ".join(line.plain for line in row._lines(120))
        assert "found in the HF cache — enter to link · d download" in wide
        others = [r for c in scr.cards for r in c.rows if r.key not in blobs]
        assert others and all(r.found is None for r in others)
        await pilot.press("enter")
        await settle(pilot, row.key)
        assert row.state == "done" and row.found is None
        assert os.stat(models_dir() / diff.file).st_ino == os.stat(blobs[diff.file]).st_ino
        assert core.settings.selection(M4).get("diffusion") == diff.id  # type: ignore[attr-defined]

        await focus_row(pilot, "flux2-vae.safetensors")
        vrow = scr.focused_row()
        assert vrow is not None and vrow.key == vae.file and vrow.found == "the HF cache"
        await pilot.press("enter")
        await settle(pilot, vrow.key)
        assert vrow.state == "done"
        assert os.stat(models_dir() / vae.file).st_ino == os.stat(blobs[vae.file]).st_ino
    assert fake_hub.bytes_served() == 0 and cdn_gets(fake_hub) == []
