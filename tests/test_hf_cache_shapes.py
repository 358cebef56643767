"""The HF cache in every shape (issue 23): a cache filled by huggingface_hub ITSELF from a Hub
served under a path (Artifactory-style ``HF_ENDPOINT=http://host/artifactory/api/hf``) is reused
by ``distill models download`` with zero Hub requests, online and with ``HF_HUB_OFFLINE=1``
(23.2, 23.3); ``--dry-run`` says what the real run will link and counts 0 bytes for it (23.6).
Real processes, a real loopback Hub (tests/fakehub.py with ``prefix=``), real links."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakehub import FakeHub
from tests.hub_fixtures import HubCatalog, build_hub_catalog

M4 = "flux2-klein-4b"
ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/artifactory/api/hf"


@pytest.fixture
def path_hub(isolated_dirs: Path) -> Iterator[FakeHub]:
    hub = FakeHub(prefix=PREFIX).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def path_catalog(path_hub: FakeHub, tmp_path: Path, monkeypatch) -> HubCatalog:
    """The 2-model catalog on a Hub under PREFIX, HF_ENDPOINT pointing there, HF_HOME in tmp."""
    from distill_tui.paths import AppPaths

    cat = build_hub_catalog(path_hub, AppPaths.from_env().user_catalog_file)
    monkeypatch.setenv("HF_ENDPOINT", path_hub.url)
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return cat


def default_set(cat: HubCatalog) -> list:
    model = cat.context().catalog.require(M4)
    return [
        model.diffusion.get(model.default_quant("diffusion")),
        model.text_encoder.get(model.default_quant("textEncoder")),
        model.vae,
    ]


def repo_path(hub: FakeHub, url: str) -> tuple[str, str]:
    assert url.startswith(hub.url + "/"), url
    repo_part, rest = url[len(hub.url) + 1 :].split("/resolve/", 1)
    return repo_part, rest.split("/", 1)[1]


def hf_download_all(cat: HubCatalog, hub: FakeHub) -> dict[str, Path]:
    """`hf download` of the set: huggingface_hub's own hf_hub_download against the path Hub
    (in a child, with HF_ENDPOINT / HF_HOME from the environment as `hf` reads them)."""
    wanted = {f.file: repo_path(hub, f.download_url) for f in default_set(cat)}
    code = (
        "import json, sys\n"
        "from huggingface_hub import hf_hub_download\n"
        "out = {k: hf_hub_download(r, p) for k, (r, p) in json.loads(sys.argv[1]).items()}\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(wanted)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = {k: Path(v) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    for k, p in got.items():  # huggingface_hub's layout: a snapshot link to a blob
        assert p.is_symlink() and p.resolve().parent.name == "blobs", (k, p)
        assert str(p).startswith(os.environ["HF_HOME"])
    # it really went through the prefix
    assert hub.requests and all(
        r.path.startswith(PREFIX + "/") for r in hub.requests if r.server == "hub"
    )
    return got


def distill(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def assert_linked_verified(cat: HubCatalog, cached: dict[str, Path]) -> None:
    inv = cat.context().inventory
    for rel, snap in cached.items():
        dest = models_dir() / rel
        assert os.stat(dest).st_ino == os.stat(snap.resolve()).st_ino, rel  # the blob itself
        rec = inv.get(rel)
        assert rec is not None and not rec.unverified and rec.sha256, rel


# ---- 23.2: HF_ENDPOINT with a path ----------------------------------------------------------
def test_path_endpoint_cache_filled_by_hf_is_reused_with_zero_requests(path_catalog, path_hub):
    cached = hf_download_all(path_catalog, path_hub)
    path_hub.requests.clear()
    proc = distill("models", "download", M4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("linked from the HF cache") == 3, proc.stdout
    assert path_hub.requests == []  # not even a HEAD
    assert_linked_verified(path_catalog, cached)


def test_resolve_parts_with_a_path_endpoint(monkeypatch):
    from distill_tui.downloads.localreuse import resolve_parts

    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example/artifactory/api/hf")
    url = "https://mirror.example/artifactory/api/hf/o/n/resolve/main/sub/f.gguf"
    assert resolve_parts(url) == ("o/n", "main", "sub/f.gguf")
    # a catalog mirror under another path prefix than HF_ENDPOINT's
    assert resolve_parts("https://m2.example/hf/api/o/n/resolve/v1/f.gguf") == (
        "o/n",
        "v1",
        "f.gguf",
    )
    # the plain Hub, and a file whose own path contains /resolve/
    assert resolve_parts("https://huggingface.co/o/n/resolve/main/a/resolve/b") == (
        "o/n", "main", "a/resolve/b",
    )  # fmt: skip
    assert resolve_parts("https://huggingface.co/o/n/blob/main/f") is None


# ---- 23.3: offline ------------------------------------------------------------------------------
def test_offline_reuses_the_hf_cache_hashed(path_catalog, path_hub):
    cached = hf_download_all(path_catalog, path_hub)
    path_hub.requests.clear()
    proc = distill("models", "download", M4, HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("linked from the HF cache") == 3, proc.stdout
    assert "(ready)" in proc.stdout
    assert path_hub.requests == []
    assert_linked_verified(path_catalog, cached)


def test_offline_file_not_on_the_machine_is_one_line_naming_models_import(path_catalog, path_hub):
    proc = distill("models", "download", M4, HF_HUB_OFFLINE="1")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "HF_HUB_OFFLINE" in err[0] and "distill models import" in err[0]
    assert "Traceback" not in proc.stderr
    assert path_hub.requests == []


# ---- 23.6: --dry-run shows reuse ------------------------------------------------------------------
def test_dry_run_shows_links_from_the_hf_cache_and_needs_nothing(path_catalog, path_hub):
    hf_download_all(path_catalog, path_hub)
    path_hub.requests.clear()
    proc = distill("models", "download", M4, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert [f["reuse"] for f in doc["files"]] == ["hf-cache"] * 3
    assert doc["needBytes"] == 0
    assert path_hub.requests == []  # as the real run: the catalog's sha256 names the blob
    text = distill("models", "download", M4, "--dry-run")
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.count("link from HF cache") == 3, text.stdout
    assert "(checked when linked)" in text.stdout and "need 0 B" in text.stdout
    assert "fetch " not in text.stdout
    # and the real run does what the dry run said
    real = distill("models", "download", M4)
    assert real.returncode == 0 and real.stdout.count("linked from the HF cache") == 3
    assert path_hub.requests == []


def test_dry_run_shows_links_from_an_import_dir(path_catalog, path_hub, tmp_path):
    comfy = tmp_path / "comfy"
    comfy.mkdir()
    files = default_set(path_catalog)
    vae = files[2]
    (comfy / "flux2-vae.sft").write_bytes(path_catalog.payload(vae.file))
    ctx = path_catalog.context()
    ctx.settings.update(import_dirs=[str(comfy)])
    proc = distill("models", "download", M4, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    by = {f["file"]: f for f in doc["files"]}
    assert by[vae.file]["reuse"] == "import-dir"
    assert by[files[0].file]["reuse"] is None
    assert doc["needBytes"] == files[0].size + files[1].size
    text = distill("models", "download", M4, "--dry-run")
    assert "link from import dir" in text.stdout and str(comfy) in text.stdout


# ---- 23.9: the final line (also the hand-off log's) never reads "None" ------------------------
def test_download_final_line_without_a_selection_says_so(hub_catalog, fake_hub, capsys):
    """`models download M --only vae` (the detached hand-off runs the same command, its log
    the same lines): no quant is selected yet, and the line says that instead of 'None'."""
    from distill_tui.cli import main

    assert main(["models", "download", M4, "--only", "vae"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert "None" not in out, out
    assert "no diffusion quant selected yet" in last and "no text encoder quant" in last
    assert f"distill models use {M4}" in last


# ---- 23.9: which CA variable is used, and saying so -------------------------------------------
@pytest.fixture
def tls_hub(isolated_dirs: Path) -> Iterator[FakeHub]:
    from distill_tui.paths import AppPaths

    hub = FakeHub(tls=True).start()
    try:
        build_hub_catalog(hub, AppPaths.from_env().user_catalog_file)
        yield hub
    finally:
        hub.stop()


def test_requests_ca_bundle_is_not_overridden_by_a_system_ssl_cert_dir(tls_hub, tmp_path):
    """A system-wide SSL_CERT_DIR (a folder that does not hold the mirror's CA) and the user's
    REQUESTS_CA_BUNDLE naming it: the bundle file is used (the download works)."""
    system = tmp_path / "etc-ssl-certs"
    system.mkdir()
    proc = distill(
        "models", "download", M4, "--only", "vae",
        SSL_CERT_DIR=str(system), REQUESTS_CA_BUNDLE=str(tls_hub.cert_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tls_error_says_which_ca_variable_was_used(tls_hub, tmp_path):
    system = tmp_path / "etc-ssl-certs"
    system.mkdir()
    proc = distill("models", "download", M4, "--only", "vae", SSL_CERT_DIR=str(system))
    assert proc.returncode == 1
    err = proc.stderr
    assert f"SSL_CERT_DIR={system}" in err and "not trusted" in err, err
    assert "Traceback" not in err
    # the file variable comes first and the message says the other one is not used
    proc = distill(
        "models", "download", M4, "--only", "vae",
        SSL_CERT_FILE=str(tls_hub.cert_file), REQUESTS_CA_BUNDLE=str(tmp_path / "nope.pem"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_ca_variable_naming_nothing_is_one_line(isolated_dirs, tmp_path):
    proc = distill(
        "models", "download", M4, "--dry-run", REQUESTS_CA_BUNDLE=str(tmp_path / "no.pem")
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f"REQUESTS_CA_BUNDLE={tmp_path / 'no.pem'}" in err[0], proc.stderr


# ---- 23.9: a symlinked copy whose original was removed -----------------------------------------
def _symlinked_then_original_removed(hub_catalog, monkeypatch) -> tuple[object, Path]:
    """`models download` links the VAE from the HF cache as a symlink (another filesystem:
    os.link -> EXDEV, the one fake), then the HF cache copy is deleted (`hf cache delete`)."""
    import errno
    import shutil

    from distill_tui.cli import main
    from tests.test_local_reuse import fill_hf_cache

    def exdev(*_a, **_k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    blobs = fill_hf_cache(hub_catalog, cache)
    vae = default_set(hub_catalog)[2]
    with monkeypatch.context() as m:
        m.setattr(os, "link", exdev)
        assert main(["models", "download", M4]) == 0
    dest = models_dir() / vae.file
    assert dest.is_symlink()
    original = dest.resolve()
    assert original == blobs[vae.file].resolve()
    shutil.rmtree(cache / "models--Comfy-Org--flux2-dev")  # the VAE's repo in the HF cache
    return vae, original


def test_broken_link_to_a_removed_original_says_so(hub_catalog, fake_hub, monkeypatch, capsys):
    vae, original = _symlinked_then_original_removed(hub_catalog, monkeypatch)
    capsys.readouterr()
    from distill_tui.cli import main

    want = f"the linked original ({original}) is gone; rerun distill models download {M4}"
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert want in out, out
    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    m = next(x for x in doc["models"] if x["id"] == M4)
    assert m["components"]["vae"]["linkedOriginalGone"] == str(original)
    assert any(want in line for line in m["missing"]), m["missing"]
    # and the download does what the line says: fetched again, a regular file now
    assert main(["models", "download", M4]) == 0
    dest = models_dir() / vae.file
    assert not dest.is_symlink() and dest.read_bytes() == hub_catalog.payload(vae.file)


async def test_model_manager_row_of_a_broken_link_says_the_original_is_gone(
    hub_catalog, fake_hub, monkeypatch
):
    import asyncio

    from tests.test_models_screen import focus_row, make_app, screen

    # (the CLI runs its own event loop: on a thread, outside this test's)
    vae, original = await asyncio.to_thread(
        _symlinked_then_original_removed, hub_catalog, monkeypatch
    )
    app = make_app(hub_catalog.context())
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await focus_row(pilot, "flux2-vae.safetensors")
        row = screen(app).focused_row()
        assert row is not None and row.key == vae.file
        for _ in range(200):  # the look at the disk runs on a thread
            if getattr(row, "gone", None):
                break
            await pilot.pause(0.02)
        text = " ".join(line.plain for line in row._lines(400))
        assert f"the linked original ({original}) is gone" in text, text


def test_a_stale_ca_variable_does_not_stop_offline_commands(isolated_dirs, tmp_path):
    """A CA variable naming nothing matters to the commands that ask a server only: `models
    list`, `generate`'s checks and `doctor` still run."""
    proc = distill("models", "list", REQUESTS_CA_BUNDLE=str(tmp_path / "no.pem"))
    assert proc.returncode == 0, proc.stderr
