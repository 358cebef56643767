"""Hostile servers, catalogs and environments on the download side (issue 11), against the real
code and the loopback fake Hub (tests/fakehub.py). Every wait is bounded (``asyncio.wait_for``
or a subprocess timeout), so a regression that hangs fails instead of hanging the suite.

The cases and their fixes are listed in tests/HOSTILE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from distill_tui.downloads import DownloadEvent, DownloadState
from distill_tui.downloads.fetch import FetchConfig, Fetcher, Progress
from distill_tui.downloads.hub import HubMeta, head, new_client
from tests.fakehub import VALID_TOKEN, FakeHub, Fault
from tests.hub_fixtures import HubCatalog, build_hub_catalog

M4 = "flux2-klein-4b"
DIFF = (M4, "diffusion", "Q4_K_S")
TE = (M4, "textEncoder", "Q3_K_M")
VAE = (M4, "vae", None)
ROOT = Path(__file__).resolve().parent.parent
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


# ---- helpers ------------------------------------------------------------------------------
def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def entry(hc: HubCatalog, rel: str) -> dict:
    """The raw catalog entry (first model that has it) of the file ``rel``."""
    for m in hc.raw["models"]:
        for comp in ("diffusion", "textEncoder"):
            for q in m[comp]["quants"]:
                if q["file"] == rel:
                    return q
        if m["vae"]["file"] == rel:
            return m["vae"]
    raise KeyError(rel)


def rewrite(hc: HubCatalog) -> None:
    hc.path.write_text(json.dumps(hc.raw, indent=2))


def sha_of(hc: HubCatalog, rel: str) -> str:
    return hashlib.sha256(hc.payload(rel)).hexdigest()


async def run_plan(
    hc: HubCatalog, items, *, bound: float = 15.0, **kw
) -> tuple[list[DownloadEvent], list[DownloadEvent]]:
    mgr = hc.manager(**kw)
    seen: list[DownloadEvent] = []
    mgr.subscribe(seen.append)
    try:
        res = await asyncio.wait_for(mgr.download_plan(items), bound)
    finally:
        await asyncio.wait_for(mgr.aclose(), 15)
    return res, seen


def cli(*argv: str, timeout: float = 30.0, env: dict | None = None) -> tuple[int, str, str, float]:
    """``python -m distill_tui ARGV`` in a child process (bounded): rc, out, err, seconds."""
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "distill_tui", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# ---- 1. zero-byte files ---------------------------------------------------------------------
async def test_zero_byte_file_fetcher_returns_instead_of_hanging(fake_hub, tmp_path):
    """A genuinely empty file: nothing to fetch, nothing to hash - the prefix hasher must not
    wait for bytes that never come. (The Hub side refuses an empty model file before any
    fetch, see below; the fetcher must still never hang on one.)"""
    fake_hub.add_file("test/Empty", "empty.bin", b"")
    client = new_client(5.0, 4)
    try:
        url = fake_hub.resolve_url("test/Empty", "empty.bin")
        meta = HubMeta(url, fake_hub.signed_location(EMPTY_SHA), 0, EMPTY_SHA, None, False)
        dest = tmp_path / "out" / "empty.bin"
        f = Fetcher(
            client,
            dest,
            meta,
            expected_sha=EMPTY_SHA,
            token=None,
            cfg=FetchConfig(connections=4, backoff=0.05, flush_interval=0.2),
            refresh=lambda: head(client, url, None, backoff=0.05),
            progress=Progress(0),
            label="empty.bin",
        )
        try:
            assert await asyncio.wait_for(f.run(), 5) == EMPTY_SHA
        finally:
            if f.hasher is not None:
                f.hasher.stop()  # a hung hasher thread would block the loop's shutdown
    finally:
        await client.aclose()
    assert dest.read_bytes() == b""
    assert not (tmp_path / "out" / "empty.bin.part").exists()


def test_cli_download_of_a_file_the_hub_says_is_empty_ends_under_5s(hub_catalog, fake_hub):
    """X-Linked-Size: 0 for a catalog file: a clear refusal in well under 5 s, never a hang."""
    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    fake_hub.linked_size_override[sha_of(hub_catalog, rel)] = 0
    rc, out, err, secs = cli("models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae")
    assert secs < 5, (secs, out, err)
    assert rc == 1
    no_traceback(out + err)
    assert "0 bytes" in err and rel.split("/")[-1] in err  # reasons: stderr (issue 23.5)
    assert not (models_dir() / rel).exists()


async def test_mirror_head_200_with_content_length_0_is_refused(hub_catalog, fake_hub):
    """A mirror that answers the HEAD itself (200, Content-Length: 0, no X-Linked-*)."""
    fake_hub.faults.append(Fault("empty200", server="hub", method="HEAD", times=None))
    res, _ = await run_plan(hub_catalog, [DIFF], bound=5)
    assert res[0].state == DownloadState.FAILED
    assert "0 bytes" in (res[0].error or "")
    assert fake_hub.cdn_requests() == []


# ---- 2. the token never travels in clear ----------------------------------------------------
@pytest.fixture
def tls_hub(monkeypatch) -> FakeHub:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI for a self-signed certificate")
    from distill_tui.downloads import hub as hubmod

    hub = FakeHub(tls=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(hub.cert_file))
    monkeypatch.setattr(hubmod, "_SSL", {})  # one TLS context per CA setting: rebuild it
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def tls_catalog(tls_hub, isolated_dirs) -> HubCatalog:
    from distill_tui.paths import AppPaths

    return build_hub_catalog(tls_hub, AppPaths.from_env().user_catalog_file)


def clear_text_auth(hub: FakeHub) -> list:
    return [r for r in hub.requests if not r.tls and r.authorization is not None]


async def test_tls_hub_control_token_goes_to_the_https_hub_only(tls_catalog, tls_hub):
    res, _ = await run_plan(tls_catalog, [VAE], token=VALID_TOKEN)
    assert res[0].state == DownloadState.DONE, res[0].error
    assert all(r.tls for r in tls_hub.requests)
    hub_reqs = [r for r in tls_hub.requests if r.server == "hub"]
    assert hub_reqs and all(r.authorization == f"Bearer {VALID_TOKEN}" for r in hub_reqs)
    assert all(r.authorization is None for r in tls_hub.cdn_requests())


async def test_https_hub_redirect_to_http_on_the_same_host_never_sends_the_token(
    tls_catalog, tls_hub
):
    """https://127.0.0.1:P answers 302 to http://127.0.0.1:P (same host name and port)."""
    rel = tls_catalog.raw["models"][0]["vae"]["file"]
    url = entry(tls_catalog, rel)["downloadUrl"]
    plain = "http://" + url.split("://", 1)[1]
    tls_hub.faults.append(
        Fault("status", server="hub", status=302, headers={"Location": plain}, times=None)
    )
    res, _ = await run_plan(tls_catalog, [VAE], token=VALID_TOKEN, bound=10)
    assert clear_text_auth(tls_hub) == []
    assert [r for r in tls_hub.requests if not r.tls] == []  # nothing followed in clear
    assert res[0].state == DownloadState.FAILED
    assert "plain http" in (res[0].error or "") and VALID_TOKEN not in (res[0].error or "")


async def test_cdn_location_downgraded_to_http_on_the_hub_host_gets_no_token(tls_catalog, tls_hub):
    """The Hub's signed Location names the Hub's own host and port, but over http."""
    tls_hub.cdn_base_override = f"http://127.0.0.1:{tls_hub.hub_port}"
    res, _ = await run_plan(tls_catalog, [VAE], token=VALID_TOKEN, bound=10)
    assert clear_text_auth(tls_hub) == []
    assert [r for r in tls_hub.requests if not r.tls] == []  # the signed URL stays private too
    assert res[0].state == DownloadState.FAILED
    assert "plain http" in (res[0].error or "")


def test_token_origin_is_scheme_host_and_port():
    from distill_tui.downloads.hub import may_send_token

    hub = "https://huggingface.co/a/b/resolve/main/f"
    assert may_send_token(hub, "https://huggingface.co:443/a/b/resolve/main/g")
    assert not may_send_token(hub, "http://huggingface.co/a/b/resolve/main/f")
    assert not may_send_token(hub, "https://huggingface.co:8443/a/b/resolve/main/f")
    assert not may_send_token(hub, "https://cdn.huggingface.co/x")
    assert may_send_token("http://127.0.0.1:9/x", "http://127.0.0.1:9/y")  # loopback endpoint
    assert not may_send_token("http://127.0.0.1:9/x", "http://127.0.0.1:10/y")
    assert not may_send_token("http://mirror.example/x", "http://mirror.example/x")


# ---- 5. the error path itself fails ---------------------------------------------------------
def _rename(hc: HubCatalog, rel: str, new: str) -> None:
    entry(hc, rel)["file"] = new
    rewrite(hc)


async def test_file_name_over_255_bytes_ends_the_job_with_a_clear_message(hub_catalog):
    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    _rename(hub_catalog, rel, "diffusion/" + "x" * 300 + ".gguf")
    res, _ = await run_plan(hub_catalog, [DIFF], bound=10)
    assert res[0].state == DownloadState.FAILED
    assert "name too long" in (res[0].error or "").lower(), res[0].error
    assert res[0].error_kind == "disk"


async def test_a_file_where_the_models_subdir_should_be_ends_cleanly(hub_catalog):
    d = models_dir()
    d.mkdir(parents=True, exist_ok=True)
    (d / "diffusion").write_text("not a directory")
    res, _ = await run_plan(hub_catalog, [DIFF], bound=10)
    assert res[0].state == DownloadState.FAILED
    err = (res[0].error or "").lower()
    assert "not a directory" in err or "exists" in err, err
    assert "unexpected error" not in err


def test_cli_download_name_too_long_exits(hub_catalog):
    rel = "text_encoders/Qwen3-4B-Q3_K_M.gguf"
    _rename(hub_catalog, rel, "text_encoders/" + "y" * 300 + ".gguf")
    rc, out, err, _ = cli(
        "models", "download", M4, "--text-encoder", "Q3_K_M", "--no-vae", timeout=30
    )
    assert rc == 1
    no_traceback(out + err)
    assert "name too long" in err.lower()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run the CLI as another user",
)
def test_cli_download_into_a_subdir_owned_by_another_user_exits(fake_hub):
    """A shared models dir: ``diffusion/`` belongs to root (0755); the CLI runs as nobody."""
    base = Path(tempfile.mkdtemp(prefix="distill-shared-"))
    try:
        base.chmod(0o755)
        env = dict(os.environ)
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            d = base / var.lower()
            d.mkdir()
            d.chmod(0o777)
            env[var] = str(d)
        env["HOME"] = str(base / "xdg_data_home")
        catalog = base / "xdg_config_home" / "distill" / "model-catalog.json"
        build_hub_catalog(fake_hub, catalog)
        for p in (catalog.parent, catalog):
            p.chmod(0o777 if p.is_dir() else 0o666)
        models = base / "xdg_data_home" / "distill" / "models"
        (models / "diffusion").mkdir(parents=True)
        for p in (models.parent, models):
            p.chmod(0o777)
        (models / "diffusion").chmod(0o755)  # root's: nobody may not create files in it
        argv = ["models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae"]
        p = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            + [sys.executable, "-m", "distill_tui", *argv],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 1, p.stdout + p.stderr
        no_traceback(p.stdout + p.stderr)
        assert "permission denied" in p.stderr.lower(), p.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- 7. bytes nobody can verify are never called verified -----------------------------------
def _drop_sha(hc: HubCatalog, rel: str) -> None:
    e = entry(hc, rel)
    e.pop("sha256", None)
    e.pop("mirrors", None)
    rewrite(hc)


async def test_no_reference_hash_is_recorded_and_shown_unverified(hub_catalog, fake_hub, capsys):
    from distill_tui.cli import main

    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    _drop_sha(hub_catalog, rel)
    fake_hub.report_sha = False  # a mirror that drops X-Linked-Etag
    fake_hub.faults.append(Fault("flip", offset=1234, times=None))  # and corrupts the bytes
    res, _ = await run_plan(hub_catalog, [DIFF])
    assert res[0].state == DownloadState.DONE
    rec = hub_catalog.context().inventory.get(rel)
    assert rec is not None and rec.unverified
    # models list (text and json) and verify say so; nothing says "verified" about it
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "Q4_K_S" in x and "Diffusion" not in x)
    assert "unverified (no reference hash)" in line, out
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    m = next(x for x in data["models"] if x["id"] == M4)
    q = next(x for x in m["components"]["diffusion"]["quants"] if x["id"] == "Q4_K_S")
    assert q["downloaded"] and q["verified"] is False
    assert main(["models", "verify", M4]) == 0
    out = capsys.readouterr().out
    assert "unverified (no reference hash)" in out and "  ok " not in out, out


def test_cli_download_summary_does_not_say_verified_without_a_reference(
    hub_catalog, fake_hub, capsys
):
    from distill_tui.cli import main

    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    _drop_sha(hub_catalog, rel)
    fake_hub.report_sha = False
    assert main(["models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if rel in x)
    assert "unverified (no reference hash)" in line and "and verified" not in line, out


def test_model_manager_row_marks_unverified():
    pytest.importorskip("textual")
    from distill_tui.catalog import CatalogFile
    from distill_tui.widgets.file_status import row_lines

    f = CatalogFile(file="x.gguf", size=10, downloadUrl="https://huggingface.co/a/b/resolve/m/x")
    kw = dict(glyph=None, label="Q4", label_width=6, size=10, description="")
    kw.update(state="done", event=None, file=f, live_times=False)
    plain = row_lines(80, **kw)[0].plain
    assert "Downloaded" in plain and "unverified" not in plain
    marked = row_lines(80, unverified=True, **kw)[0].plain
    assert "unverified (no reference hash)" in marked and "✓" not in marked


async def test_no_reference_hash_size_mismatch_is_still_refused(hub_catalog, fake_hub):
    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    _drop_sha(hub_catalog, rel)
    fake_hub.report_sha = False
    fake_hub.faults.append(Fault("size", delta=1000, times=None))
    res, _ = await run_plan(hub_catalog, [DIFF])
    assert res[0].state == DownloadState.FAILED and res[0].error_kind == "size_mismatch"
    assert not (models_dir() / rel).exists()


async def test_hub_size_other_than_the_catalogs_exact_size_is_refused(hub_catalog, fake_hub):
    """No reference hash anywhere: the catalog's exact size is the only reference left."""
    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    _drop_sha(hub_catalog, rel)
    fake_hub.report_sha = False
    e = entry(hub_catalog, rel)
    e["size"] = e["size"] + 4096  # the catalog says otherwise than the Hub
    e.pop("sizeEstimated", None)  # and says it exactly
    rewrite(hub_catalog)
    res, _ = await run_plan(hub_catalog, [DIFF], bound=10)
    assert res[0].state == DownloadState.FAILED
    assert "catalog" in (res[0].error or "") and str(e["size"]) in (res[0].error or "")
    assert fake_hub.cdn_requests() == []


# ---- persistent server faults say what the server did ---------------------------------------
@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("gzip", times=None, method="GET"), "Content-Encoding gzip"),
        (Fault("bad_range", times=None, method="GET"), "Content-Range"),
        (Fault("ignore_range", times=None, method="GET"), "ignored the Range"),
    ],
    ids=["gzip", "wrong-content-range", "ignored-range"],
)
async def test_persistent_server_fault_is_named(hub_catalog, fake_hub, fault, words):
    fake_hub.faults.append(fault)
    res, _ = await run_plan(hub_catalog, [DIFF], retries=2, bound=20)
    assert res[0].state == DownloadState.FAILED
    assert words in (res[0].error or ""), res[0].error
    assert "kept failing;" not in (res[0].error or "")


async def test_cdn_redirect_loop_is_named(hub_catalog, fake_hub):
    loop_to = fake_hub.cdn_url + "/cdn/" + "0" * 64
    fake_hub.faults.append(
        Fault("status", status=302, headers={"Location": loop_to}, times=None, method="GET")
    )
    res, _ = await run_plan(hub_catalog, [DIFF], retries=2, bound=20)
    assert res[0].state == DownloadState.FAILED
    assert "redirect" in (res[0].error or ""), res[0].error


async def test_hub_redirect_loop_is_named(hub_catalog, fake_hub):
    url = entry(hub_catalog, "diffusion/flux-2-klein-4b-Q4_K_S.gguf")["downloadUrl"]
    fake_hub.faults.append(
        Fault("status", server="hub", status=302, headers={"Location": url}, times=None)
    )
    res, _ = await run_plan(hub_catalog, [DIFF], bound=10)
    assert res[0].state == DownloadState.FAILED
    assert "redirect" in (res[0].error or ""), res[0].error


@pytest.mark.parametrize("server", ["cdn", "hub"])
async def test_long_retry_after_is_shown(hub_catalog, fake_hub, server):
    fake_hub.faults.append(
        Fault(
            "status",
            server=server,
            status=503 if server == "cdn" else 429,
            headers={"Retry-After": "90"},
            times=None,
        )
    )
    mgr = hub_catalog.manager()
    notes: list[str] = []
    got = asyncio.Event()

    def on(ev: DownloadEvent) -> None:
        if ev.note and "90 s" in ev.note:
            notes.append(ev.note)
            got.set()

    mgr.subscribe(on)
    try:
        key = mgr.enqueue(*DIFF)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got.wait(), 5)
        mgr.cancel(key)
        await asyncio.wait_for(mgr.wait(key), 10)
    finally:
        await asyncio.wait_for(mgr.aclose(), 15)
    assert notes and "asked to wait 90 s" in notes[0], notes


# ---- catalogs that collide with our own files -----------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "installed.json",
        ".installed.json.lock",
        "diffusion/model.gguf.part",
        "diffusion/model.gguf.part.json",
        "diffusion/model.gguf.lock",
        "diffusion/.model.gguf.abc.tmp",
        "diffusion/a\x00b.gguf",
        "diffusion/a\x1b]0;x\x07.gguf",
    ],
    ids=["inventory", "inventory-lock", "part", "sidecar", "lock", "tmp", "nul", "escape"],
)
def test_catalog_refuses_a_file_that_collides_with_ours(name):
    from distill_tui.catalog import CatalogFile

    with pytest.raises(ValueError):
        CatalogFile(file=name, size=1, downloadUrl="https://huggingface.co/a/b/resolve/main/x")


def _raw_catalog() -> dict:
    from tests.catalog_raw import bundled_v2

    return bundled_v2()


def test_catalog_refuses_two_urls_for_one_file():
    from distill_tui.catalog import CatalogError, parse_catalog

    raw = _raw_catalog()
    qs = raw["models"][0]["diffusion"]["quants"]
    qs[1]["file"] = qs[0]["file"]  # other URL, other sha256: one would overwrite the other
    with pytest.raises(CatalogError, match="same file"):
        parse_catalog(json.dumps(raw), "t.json")
    raw = _raw_catalog()
    for m in raw["models"]:  # the shared VAE without a sha256, from two different URLs
        m["vae"].pop("sha256", None)
        m["vae"].pop("mirrors", None)
    raw["models"][1]["vae"]["downloadUrl"] += "?other"
    with pytest.raises(CatalogError, match="same file"):
        parse_catalog(json.dumps(raw), "t.json")
    raw["models"][1]["vae"]["downloadUrl"] = raw["models"][0]["vae"]["downloadUrl"]
    parse_catalog(json.dumps(raw), "t.json")  # one URL: one file, fine


def test_catalog_refuses_a_file_used_as_a_directory():
    from distill_tui.catalog import CatalogError, parse_catalog

    raw = _raw_catalog()
    qs = raw["models"][0]["diffusion"]["quants"]
    qs[1]["file"] = qs[0]["file"] + "/inner.gguf"
    with pytest.raises(CatalogError, match="director"):
        parse_catalog(json.dumps(raw), "t.json")


def test_bundled_catalog_still_valid():
    from distill_tui.catalog import parse_catalog

    parse_catalog(json.dumps(_raw_catalog()), "bundled")  # the shared VAE: one URL, one file


# ---- the environment ------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["ftp://x", "not a url", "http://:8080"])
@pytest.mark.parametrize("argv", [["models", "list"], ["doctor"], ["tui"]], ids=lambda a: a[-1])
def test_invalid_hf_endpoint_is_one_line(endpoint, argv):
    env = dict(os.environ, HF_ENDPOINT=endpoint)
    rc, out, err, _ = cli(*argv, env=env, timeout=30)
    assert rc == 2, (out, err)
    no_traceback(out + err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "HF_ENDPOINT" in lines[0], err


def test_non_ascii_hf_token_is_one_line(hub_catalog):
    env = dict(os.environ, HF_TOKEN="hf_tökén")
    rc, out, err, _ = cli("models", "download", M4, "--no-vae", env=env, timeout=30)
    assert rc == 2, (out, err)
    no_traceback(out + err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "HF_TOKEN" in lines[0] and "tök" not in err, err
