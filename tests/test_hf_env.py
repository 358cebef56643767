"""Issue 14.1: the Hugging Face environment comes from huggingface_hub (token discovery,
HF_TOKEN_PATH expansion, HF_HUB_DISABLE_IMPLICIT_TOKEN, HF_ENDPOINT incl. plain-http mirrors,
HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT, TLS failures), against the loopback fake Hub."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from distill_tui import hftoken
from distill_tui.cli import main
from distill_tui.downloads.hub import head, may_send_token, new_client
from tests.fakehub import VALID_TOKEN, FakeHub
from tests.hub_fixtures import build_hub_catalog

ROOT = Path(__file__).resolve().parent.parent
M4 = "flux2-klein-4b"


def cli(*argv: str, env: dict | None = None, timeout: float = 60):
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


def lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


def test_conftest_clears_every_hf_variable():
    leaked = [v for v in os.environ if v.startswith(("HF_", "HUGGINGFACE_", "HUGGING_FACE_"))]
    assert leaked == ["HF_TOKEN_PATH"]  # pointed at a file that does not exist


# ---- offline --------------------------------------------------------------------------------
def test_offline_download_refuses_at_once_in_one_line(hub_catalog, fake_hub, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    assert main(["models", "download", M4]) == 1
    took = time.monotonic() - t0
    cap = capsys.readouterr()
    assert took < 1.0, took
    assert len(lines(cap.err)) == 1 and "HF_HUB_OFFLINE" in cap.err, cap.err
    assert cap.out == "" and fake_hub.requests == []
    # list works offline, and so does the process as a whole (start-up included)
    assert main(["models", "list"]) == 0
    rc, out, err, secs = cli("models", "download", M4, env=dict(os.environ))
    assert rc == 1 and len(lines(err)) == 1 and "HF_HUB_OFFLINE" in err and out == "", err
    assert fake_hub.requests == []
    print(f"offline refusal, whole process: {secs:.2f} s: {err.strip()}")
    rc, out, err, _ = cli("models", "list", env=dict(os.environ))
    assert rc == 0 and M4 in out and "Traceback" not in err


def test_offline_catalog_and_models_check_say_so_in_one_line(hub_catalog, capsys, monkeypatch):
    assert main(["models", "download", M4, "--no-vae", "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "check"]) == 3
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and "cannot check" in err and "HF_HUB_OFFLINE" in err
    assert main(["catalog", "check"]) == 3
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and "HF_HUB_OFFLINE" in err
    # an installed set needs no Hub: the download goes through offline
    assert main(["models", "download", M4, "--no-vae"]) == 0


# ---- token -----------------------------------------------------------------------------------
def test_token_path_expands_variables_and_tilde(tmp_path, monkeypatch):
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "hf").write_text(VALID_TOKEN + "\n")
    monkeypatch.setenv("MY_SECRETS", str(d))
    monkeypatch.setenv("HF_TOKEN_PATH", "$MY_SECRETS/hf")
    assert hftoken.token_path() == d / "hf"
    assert hftoken.get_token() == VALID_TOKEN and hftoken.token_to_send() == VALID_TOKEN
    assert hftoken.token_source() == str(d / "hf")
    monkeypatch.setenv("HF_TOKEN_PATH", "~/hf-token")
    (Path(os.environ["HOME"]) / "hf-token").write_text("hf_other\n")
    assert hftoken.get_token() == "hf_other"
    monkeypatch.delenv("HF_TOKEN_PATH")  # the hf CLI's default: $HF_HOME/token
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert hftoken.token_path() == tmp_path / "hfhome" / "token"
    assert hftoken.hub_cache_dir() == tmp_path / "hfhome" / "hub"


def test_token_path_with_variable_opens_a_gated_repo(
    hub_catalog, fake_hub, tmp_path, monkeypatch, capsys
):
    fake_hub.set_gated(hub_catalog.vae_repo)
    (tmp_path / "tok").write_text(VALID_TOKEN)
    monkeypatch.setenv("TOKDIR", str(tmp_path))
    monkeypatch.setenv("HF_TOKEN_PATH", "${TOKDIR}/tok")
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0
    hub_heads = [r for r in fake_hub.requests if r.server == "hub"]
    assert hub_heads and all(r.authorization == f"Bearer {VALID_TOKEN}" for r in hub_heads)
    assert all(r.authorization is None for r in fake_hub.cdn_requests())


def test_disable_implicit_token_sends_none(hub_catalog, fake_hub, monkeypatch, capsys):
    fake_hub.set_gated(hub_catalog.vae_repo)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    assert hftoken.get_token() == VALID_TOKEN and hftoken.token_to_send() is None
    assert main(["models", "download", M4, "--only", "vae"]) == 1
    out = capsys.readouterr().err  # failure reasons: stderr (issue 23.5)
    assert "HF_HUB_DISABLE_IMPLICIT_TOKEN" in out, out
    assert fake_hub.requests and all(r.authorization is None for r in fake_hub.requests)
    assert main(["doctor"]) == 0
    assert "not sent: HF_HUB_DISABLE_IMPLICIT_TOKEN" in capsys.readouterr().out
    monkeypatch.delenv("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0


# ---- endpoint ---------------------------------------------------------------------------------
def test_http_endpoint_on_a_lan_name_is_accepted_and_keeps_the_token_there(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.lan:8080")
    hftoken.check_env()  # no error: the user's explicit choice
    assert hftoken.endpoint() == "http://mirror.lan:8080"
    from distill_tui.catalog import load_catalog
    from distill_tui.paths import AppPaths

    cat = load_catalog(AppPaths.from_env().user_catalog_file).catalog  # rewritten + validated
    url = cat.require(M4).vae.download_url
    assert url.startswith("http://mirror.lan:8080/") and "/resolve/" in url
    assert may_send_token(url, url)
    assert not may_send_token(url, "http://mirror.lan:8081/x")  # another port
    assert not may_send_token(url, "http://cdn.mirror.lan:8080/x")  # another host
    assert not may_send_token(url, "https://mirror.lan:8080/x")  # another scheme
    other = "http://elsewhere.lan/a/b/resolve/main/f"
    assert not may_send_token(other, other)  # plain http that is not the user's endpoint
    from distill_tui.catalog import CatalogError, parse_catalog

    raw = json.loads(Path(AppPaths.from_env().user_catalog_file).read_text())
    vae = next(c for c in raw["models"][0]["components"] if c["role"] == "vae")  # catalog v3
    vae["file"]["downloadUrl"] = "http://elsewhere.lan/a/b/resolve/main/f"
    with pytest.raises(CatalogError, match="HF_ENDPOINT"):
        parse_catalog(json.dumps(raw), "x.json")


@pytest.mark.parametrize("value", ["mirror.lan:8080", "http://", "ftp://mirror.lan", "http://a b"])
def test_malformed_endpoint_is_one_line(value):
    rc, out, err, _ = cli("models", "list", env=dict(os.environ, HF_ENDPOINT=value))
    assert rc == 2 and len(lines(err)) == 1 and "HF_ENDPOINT" in err and "Traceback" not in err


def test_http_endpoint_real_download_through_localhost(hub_catalog, fake_hub, monkeypatch, capsys):
    """The catalog names huggingface.co; HF_ENDPOINT=http://localhost:PORT serves it."""
    from distill_tui.paths import AppPaths

    p = AppPaths.from_env().user_catalog_file
    p.write_text(p.read_text().replace(fake_hub.url, "https://huggingface.co"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://localhost:{fake_hub.hub_port}")
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert main(["models", "download", M4, "--only", "vae", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [f] = doc["files"]
    assert f["state"] == "done" and f["source"].startswith(f"http://localhost:{fake_hub.hub_port}/")
    assert all(r.authorization for r in fake_hub.requests if r.server == "hub")
    assert all(r.authorization is None for r in fake_hub.cdn_requests())


# ---- TLS and dead servers ----------------------------------------------------------------------
@pytest.fixture
def tls_hub(isolated_dirs):
    from distill_tui.paths import AppPaths

    hub = FakeHub(tls=True).start()
    try:
        build_hub_catalog(hub, AppPaths.from_env().user_catalog_file)
        yield hub
    finally:
        hub.stop()


def test_tls_failure_is_not_retried_and_names_the_ca_variables(tls_hub, capsys, monkeypatch):
    t0 = time.monotonic()
    assert main(["models", "download", M4, "--only", "vae"]) == 1
    took = time.monotonic() - t0
    out = capsys.readouterr().err  # failure reasons: stderr (issue 23.5)
    assert "SSL_CERT_FILE" in out and "REQUESTS_CA_BUNDLE" in out and "not retried" in out, out
    assert took < 2.0, took  # a retry would back off 1 s, then 2 s...
    assert tls_hub.requests == []  # no HTTP request got through the handshake
    # a trusted CA bundle (what the message says) makes it work
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_hub.cert_file))
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0


def test_tls_failure_is_attempted_once(tls_hub):
    """Count the TLS handshakes: one connection, no retry."""
    client = new_client(5.0, 4)
    url = tls_hub.resolve_url("Comfy-Org/flux2-dev", "split_files/vae/flux2-vae.safetensors")
    accepted = []
    orig = tls_hub._servers[0].finish_request

    def counting(request, client_address):
        accepted.append(client_address)
        return orig(request, client_address)

    tls_hub._servers[0].finish_request = counting
    from distill_tui.downloads.errors import DownloadError

    async def go():
        try:
            with pytest.raises(DownloadError) as ei:
                await head(client, url, None, retries=4, backoff=0.2)
        finally:
            await client.aclose()
        return ei.value

    err = asyncio.run(go())
    assert err.kind == "tls" and "SSL_CERT_FILE" in err.message
    assert len(accepted) == 1


def test_dead_server_fails_within_the_etag_timeout(monkeypatch):
    """A server that accepts and never answers: bounded by HF_HUB_ETAG_TIMEOUT (one more try),
    not minutes of retries."""
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/a/b/resolve/main/f.gguf"
    from distill_tui.downloads.errors import DownloadError

    async def go():
        client = new_client(30.0, 4)
        try:
            with pytest.raises(DownloadError) as ei:
                await head(client, url, None, retries=4, backoff=0.5)
        finally:
            await client.aclose()
        return ei.value

    t0 = time.monotonic()
    try:
        err = asyncio.run(go())
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()
    took = time.monotonic() - t0
    assert err.kind == "network" and "HF_HUB_ETAG_TIMEOUT" in err.message
    assert took < 4.0, took


@pytest.mark.parametrize(
    "sources",
    [
        {},
        {"HF_TOKEN": VALID_TOKEN},
        {"HUGGING_FACE_HUB_TOKEN": VALID_TOKEN},
        {"HF_TOKEN": "   "},
        {"file": VALID_TOKEN + "\n"},
        {"file": "  \n"},
        {"file": VALID_TOKEN, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"},
        {"HF_TOKEN": VALID_TOKEN, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"},
    ],
    ids=lambda s: "+".join(s) or "nothing",
)
def test_token_lookup_agrees_with_huggingface_hub(sources, tmp_path, monkeypatch):
    """The shortcut for a machine without any token (no import of the Hub's token code) finds
    exactly what huggingface_hub finds, for every place it looks."""
    token_file = tmp_path / "token"
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    for var, value in sources.items():
        if var == "file":
            token_file.write_text(value)
        else:
            monkeypatch.setenv(var, value)
    hftoken.hf_constants()  # the environment in force for both
    from huggingface_hub.utils._auth import get_token
    from huggingface_hub.utils._headers import get_token_to_send

    assert hftoken.get_token() == get_token()
    assert hftoken.token_to_send() == get_token_to_send(None)


def test_no_token_anywhere_imports_no_token_code(tmp_path):
    """A machine without a token does not pay for the Hub's token code (its HTTP stack):
    `distill models download` on such a machine starts sooner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env["HF_TOKEN_PATH"] = str(tmp_path / "no-token")
    code = (
        "import sys; from distill_tui import hftoken; "
        "assert hftoken.get_token() is None and hftoken.token_to_send() is None; "
        "print(sorted(m for m in sys.modules if m.startswith('huggingface_hub.utils')))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    (tmp_path / "no-token").write_text(VALID_TOKEN)  # a token: the Hub's own code finds it
    code = "from distill_tui import hftoken; print(hftoken.get_token())"
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert p.stdout.strip() == VALID_TOKEN
