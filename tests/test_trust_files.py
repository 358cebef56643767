"""Issue 19, items 4, 5, 14, 15, 17, 19, 21: what distill reads back from files is outside input.

Alias paths in the catalog, inventory keys and HF-cache refs/symlinks that lead out of their
folder, a relative ``model_base_path``, deeply nested JSON in our own files, sidecars of the
wrong shape, a read-only models dir, a Hub-announced revision ``..`` and lost settings updates
under concurrent ``models import --remember``. Every case goes through the CLI (in-process
``main`` or a real process), the Settings screen (Pilot) or the loopback Hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from distill_tui.cli import main
from distill_tui.paths import AppPaths
from tests.fakehub import COMMIT

ROOT = Path(__file__).resolve().parent.parent
M4 = "flux2-klein-4b"
Q4 = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
VAE = "vae/flux2-vae.safetensors"


def paths() -> AppPaths:
    return AppPaths.from_env()


def bundled() -> dict:
    """The bundled Klein pair in the v2 shape (read through distill's migration, as a user's
    older catalog is): the cases below name its keys."""
    from tests.catalog_raw import bundled_v2

    return bundled_v2()


def write_user_catalog(raw: dict) -> Path:
    p = paths().user_catalog_file
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(raw))
    return p


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err, cap.out + cap.err
    return rc, cap.out, cap.err


def cli(*argv: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.DEVNULL,
    )


def fake_download(rel: str, size: int = 1000, sha: str | None = None) -> Path:
    """A "downloaded" file: on disk with its size, recorded in the inventory."""
    from distill_tui.inventory import Inventory

    models = paths().default_models_dir
    p = models / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\0" * size)
    Inventory(models).load().record(rel, size, sha or hashlib.sha256(b"\0" * size).hexdigest())
    return p


def add_inventory_key(key: str, size: int, models: Path | None = None) -> None:
    """A crafted ``installed.json`` record (a copied or edited file)."""
    inv = (models or paths().default_models_dir) / "installed.json"
    data = json.loads(inv.read_text()) if inv.exists() else {"version": 1, "files": {}}
    data["files"][key] = {"path": key, "size": size, "sha256": "0" * 64}
    inv.parent.mkdir(parents=True, exist_ok=True)
    inv.write_text(json.dumps(data))


# ---- 4. alias paths --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "alias",
    [
        "diffusion//flux-2-klein-4b-Q4_K_S.gguf",
        "diffusion/./flux-2-klein-4b-Q4_K_S.gguf",
        "./diffusion/flux-2-klein-4b-Q4_K_S.gguf",
        "diffusion/flux-2-klein-4b-Q4_K_S.gguf/.",
        "diffusion/flux-2-klein-4b-Q4_K_S.gguf.",
        "Diffusion/FLUX-2-klein-4b-Q4_K_S.gguf",
    ],
)
def test_a_catalog_file_that_aliases_another_entrys_file_is_refused(alias, capsys):
    """A user model whose quant file is another spelling of the bundled Q4_K_S file (other
    bytes): downloading it overwrote the installed active quant. The catalog is refused with
    the problem named (moved aside, the bundled one used)."""
    raw = bundled()
    evil = json.loads(json.dumps(raw["models"][0]))
    evil["id"], evil["name"] = "evil", "Evil"
    q = evil["diffusion"]["quants"][1]
    q["file"], q["sha256"] = alias, "ab" * 32
    q["downloadUrl"] = "https://example.com/evil/resolve/main/x.gguf"
    q.pop("mirrors", None)
    evil["diffusion"]["quants"] = [q]
    raw["models"].append(evil)
    write_user_catalog(raw)
    rc, out, err = run(capsys, "models", "list", "--json")
    assert rc == 0
    assert "evil" not in [m["id"] for m in json.loads(out)["models"]]
    assert "moved aside" in err and "user catalog" in err, err


# ---- 5. paths read from our own files ------------------------------------------------------
async def test_move_them_never_moves_a_file_an_inventory_key_points_outside(tmp_path):
    """installed.json key ``../../…/victim/thesis.txt``: Settings › Model dir › Move them moved
    the user's file out of its folder. Now the record is ignored (and said), the file stays."""
    from tests.test_settings_screen import (
        enter_dir,
        make_app,
        make_core,
        open_settings,
        put_vae,
        status,
    )

    core = make_core()
    put_vae(core)
    victim = tmp_path / "victim" / "thesis.txt"
    victim.parent.mkdir()
    victim.write_bytes(b"four years of work")
    key = os.path.relpath(victim, core.inventory.models_dir)
    assert key.startswith("../")
    add_inventory_key(key, victim.stat().st_size, core.inventory.models_dir)
    core = make_core()  # a new session reads the crafted inventory
    app = make_app(core)
    new = tmp_path / "moved"
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(new))
        await pilot.press("m")
        for _ in range(20):
            await pilot.pause(0.02)
        assert "moved 1 file" in status(app, "#models-dir-status")
    assert victim.read_bytes() == b"four years of work"
    assert not list(new.rglob("thesis.txt"))
    assert any("thesis.txt" in w and "ignored" in w for w in core.warnings), core.warnings


def test_cli_ignores_and_reports_an_inventory_key_outside_the_models_dir(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"x" * 10)
    models = paths().default_models_dir
    models.mkdir(parents=True)
    key = os.path.relpath(victim, models)
    add_inventory_key(key, 10)
    rc, out, err = run(capsys, "models", "verify")
    assert "victim" not in out  # never hashed, never "MISMATCH … remove it"
    assert "victim.txt" in err and "ignored" in err, err
    assert victim.exists()


def test_relative_model_base_path_resolves_against_the_config_dir(tmp_path, monkeypatch, capsys):
    """settings.json ``"model_base_path": "rel-models"`` meant the cwd of whoever ran distill."""
    p = paths()
    p.config_dir.mkdir(parents=True, exist_ok=True)
    p.settings_file.write_text(json.dumps({"schema_version": 1, "model_base_path": "rel-models"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc, out, _err = run(capsys, "models", "list", "--json")
    assert rc == 0
    assert json.loads(out)["modelsDir"] == str(p.config_dir / "rel-models")
    assert not (elsewhere / "rel-models").exists()


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """HF_HOME in tmp and huggingface_hub's cache constant (as tests/test_local_reuse.py)."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def _hf_repo_dir(hf_home: Path, f) -> tuple[Path, str]:
    from tests.test_local_reuse import repo_and_path

    repo, path = repo_and_path(f.download_url)
    owner, name = repo.split("/")
    return hf_home / "hub" / f"models--{owner}--{name}", path


def test_hf_cache_snapshot_symlink_leading_outside_the_cache_is_not_followed(
    hub_catalog, fake_hub, hf_home, tmp_path, capsys
):
    """A snapshot symlink to ``/elsewhere/blobs/<the catalog's sha256>`` holding the right
    bytes: it was hard-linked into the models dir (a link to a file outside the cache)."""
    f = hub_catalog.context().catalog.require(M4).vae
    repo_dir, path = _hf_repo_dir(hf_home, f)
    data = hub_catalog.payload(f.file)
    outside = tmp_path / "elsewhere" / "blobs" / hashlib.sha256(data).hexdigest()
    outside.parent.mkdir(parents=True)
    outside.write_bytes(data)
    link = repo_dir / "snapshots" / COMMIT / path
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    rc, out, err = run(capsys, "models", "download", M4)
    assert rc == 0, out + err
    dest = paths().default_models_dir / f.file
    assert dest.read_bytes() == data
    assert os.stat(dest).st_ino != os.stat(outside).st_ino and not dest.is_symlink()


def test_hf_cache_refs_main_with_dotdot_is_not_followed(
    hub_catalog, fake_hub, hf_home, tmp_path, capsys
):
    """``refs/main`` holding ``../../../elsewhere`` led the lookup out of the cache."""
    f = hub_catalog.context().catalog.require(M4).vae
    repo_dir, path = _hf_repo_dir(hf_home, f)
    data = hub_catalog.payload(f.file)
    (repo_dir / "snapshots").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    escape = os.path.relpath(tmp_path / "elsewhere", repo_dir / "snapshots")
    (repo_dir / "refs" / "main").write_text(escape)
    planted = tmp_path / "elsewhere" / path
    planted.parent.mkdir(parents=True)
    planted.write_bytes(data)
    rc, out, err = run(capsys, "models", "download", M4)
    assert rc == 0, out + err
    dest = paths().default_models_dir / f.file
    assert dest.read_bytes() == data
    assert os.stat(dest).st_ino != os.stat(planted).st_ino and not dest.is_symlink()


# ---- 14. deeply nested JSON in our files -----------------------------------------------------
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("which", ["settings", "catalog", "inventory"])
def test_deeply_nested_json_is_moved_aside_not_a_traceback(which, capsys):
    p = paths()
    target = {
        "settings": p.settings_file,
        "catalog": p.user_catalog_file,
        "inventory": p.default_models_dir / "installed.json",
    }[which]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('{"a": ' + DEEP + "}")
    rc, out, err = run(capsys, "models", "list", "--json")
    assert rc == 0
    assert json.loads(out)["version"] == 1
    assert "moved aside" in err and "nested" in err, err
    assert list(target.parent.glob(target.name + ".corrupt-*"))
    rc, _out, err2 = run(capsys, "models", "list")  # reported once: the file is aside now
    assert "moved aside" not in err2


# ---- 15. sidecars of the wrong shape ---------------------------------------------------------
@pytest.mark.parametrize(
    "sidecar",
    [
        "[1]",
        '{"version": 1, "url": "x", "size": 1e400, "done": []}',
        '{"version": 1, "url": "x", "size": 1000, "done": [[0, 1e400]]}',
        '{"version": 1, "url": "x", "size": 1000, "done": 5}',
        '{"version": 1, "url": "x", "size": 1000, "done": [[0]]}',
        '{"version": 1, "url": ["x"], "size": 1000, "done": [], "sha256": 7}',
        '{"version": 1, "url": "x", "size": ' + "9" * 30 + ', "done": []}',
    ],
)
def test_a_sidecar_of_the_wrong_shape_is_moved_aside_and_reported_once(sidecar, capsys):
    models = paths().default_models_dir
    part = models / (Q4 + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)
    side = models / (Q4 + ".part.json")
    side.write_text(sidecar)
    for argv in (
        ("models", "status"),
        ("models", "list"),
        ("models", "download", M4, "--diffusion", "Q4_K_S", "--dry-run"),
    ):
        rc, out, err = run(capsys, *argv)
        assert rc in (0, 1), (argv, out, err)
        if argv[1] == "status":
            assert "moved aside" in err and Q4 in err, err
        else:
            assert "moved aside" not in err  # once
    assert not side.exists() and list(side.parent.glob(side.name + ".corrupt-*"))


async def test_the_download_service_starts_over_after_a_bad_sidecar(hub_catalog, fake_hub):
    """The service the Model Manager's ``d`` runs (it did nothing: the worker traced back on
    the sidecar): the bad sidecar is moved aside and the file is downloaded and verified."""
    from distill_tui.downloads import DownloadState

    models = paths().default_models_dir
    part = models / (VAE + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)
    side = models / (VAE + ".part.json")
    side.write_text('{"version": 1, "url": "x", "size": 1e400, "done": [[0, 1]]}')
    mgr = hub_catalog.manager()
    try:
        key = mgr.enqueue(M4, "vae", None)
        ev = await mgr.wait(key)
    finally:
        await mgr.aclose()
    assert ev.state == DownloadState.DONE, ev
    assert (models / VAE).read_bytes() == hub_catalog.payload(VAE)
    assert list(side.parent.glob(side.name + ".corrupt-*"))


# ---- 17. a read-only models dir ------------------------------------------------------------
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run the CLI as a user that may not write the models dir",
)
def test_read_only_models_dir_verify_remove_status_are_clean():
    """The models dir (and its files) belong to root 0755/0644; the CLI runs as nobody."""
    base = Path(tempfile.mkdtemp(prefix="distill-ro-"))
    try:
        base.chmod(0o755)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            d = base / var.lower()
            d.mkdir()
            d.chmod(0o777)
            env[var] = str(d)
        env["HOME"] = str(base / "xdg_data_home")
        models = base / "xdg_data_home" / "distill" / "models"
        from distill_tui.inventory import Inventory

        inv = Inventory(models).load()
        for rel in (Q4, VAE):
            p = models / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\0" * 1000)
            inv.record(rel, 1000, hashlib.sha256(b"\0" * 1000).hexdigest())
        for p in [models.parent, *models.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (models / ".installed.json.lock").chmod(0o444)  # as `chmod -R a-w` leaves it
        (models.parent).chmod(0o777)
        models.chmod(0o755)

        def as_nobody(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
                + [sys.executable, "-m", "distill_tui", *argv],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
            )

        v = as_nobody("models", "verify")
        assert "Traceback" not in v.stdout + v.stderr, v.stdout + v.stderr
        assert "ok" in v.stdout and "verified" in v.stdout, v.stdout + v.stderr
        r = as_nobody("models", "remove", M4, "--diffusion", "Q4_K_S", "--yes")
        assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
        assert r.returncode != 0
        said = (r.stdout + r.stderr).lower()
        assert "permission denied" in said or "read-only" in said, said
        assert (models / Q4).exists()
        s = as_nobody("models", "status")
        assert "Traceback" not in s.stdout + s.stderr
        assert "installed.json" not in s.stdout + s.stderr, s.stdout
        assert "downloading" not in s.stdout, s.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- 19. catalog check --write and a revision that is not one ------------------------------
@pytest.mark.parametrize("announced", ["..", ".", "main/../x", "a" * 39 + "/"])
def test_catalog_check_write_never_records_a_revision_that_is_not_a_commit(
    announced, fake_hub, monkeypatch, capsys
):
    from tests import test_catalog_check as cc

    cc.serve_all(fake_hub)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    fake_hub.commit = announced
    path = cc.write_catalog(cc.build_catalog())
    rc, out, err = run(capsys, "catalog", "check", "--write")
    after = json.loads(path.read_text())
    revisions = [
        f.get("revision")
        for m in after["models"]
        for f in (m["vae"], *m["diffusion"]["quants"], *m["textEncoder"]["quants"])
    ]
    assert revisions == [None] * len(revisions), revisions
    from distill_tui.catalog import load_catalog_file

    load_catalog_file(path)


@pytest.mark.parametrize("rev", ["..", ".", "-x", "a.lock", "x..y"])
def test_a_catalog_revision_that_is_not_a_commit_or_ref_is_refused(rev, capsys):
    raw = bundled()
    raw["models"][0]["vae"]["revision"] = rev
    write_user_catalog(raw)
    rc, out, err = run(capsys, "models", "list", "--json")
    assert rc == 0
    assert "moved aside" in err and "revision" in err, err


def test_a_commit_and_a_branch_name_are_good_revisions(capsys):
    raw = bundled()
    raw["models"][0]["vae"]["revision"] = "0123456789abcdef0123456789abcdef01234567"
    raw["models"][0]["diffusion"]["quants"][0]["revision"] = "v1.0-rc_2"
    write_user_catalog(raw)
    rc, out, err = run(capsys, "models", "list", "--json")
    assert rc == 0 and "moved aside" not in err, err


# ---- 21. lost updates ------------------------------------------------------------------------
def test_six_concurrent_imports_with_remember_keep_every_folder(tmp_path):
    dirs = []
    for i in range(6):
        d = tmp_path / f"comfy{i}"
        d.mkdir()
        dirs.append(d)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distill_tui", "models", "import", str(d), "--remember"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        for d in dirs
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert "Traceback" not in out + err, out + err
    saved = json.loads(paths().settings_file.read_text())["import_dirs"]
    assert sorted(saved) == sorted(str(d) for d in dirs), saved
