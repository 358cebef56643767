"""Issue 19, secrets and hangs on the network side: the token stays at the Hub's origin (7), a token
in HF_ENDPOINT or in the Hub's own error text is never printed (8), a trickling CDN ends as
"stalled" (9), a stopped lock holder is reported and not waited for forever (10), a redirect to
a non-http(s) scheme or to a private address is final (13).

Every case runs against the real code through the surface a person meets (the CLI, in-process or
as a child process) and the loopback fake Hub (tests/fakehub.py). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
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

from distill_tui.cli import main
from tests.fakehub import VALID_TOKEN, FakeHub, Fault
from tests.hub_fixtures import HubCatalog
from tests.test_hostile_downloads import cli as hostile_cli

M4 = "flux2-klein-4b"
COMFY = "Comfy-Org/flux2-dev"
COMFY_PATH = "split_files/vae/flux2-vae.safetensors"
VAE_REL = "vae/flux2-vae.safetensors"
ROOT = Path(__file__).resolve().parent.parent


# ---- helpers ------------------------------------------------------------------------------
def rewrite(hc: HubCatalog) -> None:
    hc.path.write_text(json.dumps(hc.raw, indent=2))


def set_vae(hc: HubCatalog, **fields) -> None:
    """Change the VAE entry of every model (they share one file: one source of truth)."""
    for m in hc.raw["models"]:
        m["vae"].update(fields)
    rewrite(hc)


def drop_on_hub(hub: FakeHub, repo: str, path: str) -> None:
    """The file is gone from the repo (404 EntryNotFound); the repo itself still exists."""
    del hub.files[(repo, path)]
    hub.add_file(repo, "README.md", b"# readme\n")


def cli(*argv: str, timeout: float = 60.0, env: dict | None = None):
    """``python -m distill_tui ARGV`` (bounded): rc, out, err, seconds."""
    return hostile_cli(*argv, timeout=timeout, env=env)


@pytest.fixture
def mirror():
    """A second server on another loopback address: another origin (a mirror a catalog names)."""
    hub = FakeHub(host="127.0.0.2").start()
    try:
        yield hub
    finally:
        hub.stop()


# ---- 7. the token goes to the Hub's origin only ----------------------------------------------
@pytest.mark.parametrize("endpoint", [False, True], ids=["no-endpoint", "hf-endpoint"])
def test_token_never_reaches_a_mirror_on_another_origin(
    hub_catalog, fake_hub, mirror, monkeypatch, capsys, endpoint
):
    if endpoint:
        monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    payload = hub_catalog.payload(VAE_REL)
    mirror.add_file(COMFY, COMFY_PATH, payload)
    mirror_url = mirror.resolve_url(COMFY, COMFY_PATH)
    set_vae(hub_catalog, mirrors=[mirror_url])
    drop_on_hub(fake_hub, COMFY, COMFY_PATH)
    fake_hub.set_gated(COMFY)  # the Hub needs the token: it must still get it
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    rc = main(["models", "download", M4, "--only", "vae", "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out
    hub_reqs = [r for r in fake_hub.requests if r.server == "hub"]
    assert hub_reqs and all(r.authorization == f"Bearer {VALID_TOKEN}" for r in hub_reqs)
    assert mirror.requests, "the mirror served the file"
    assert all(r.authorization is None for r in mirror.requests), [
        (r.server, r.path) for r in mirror.requests if r.authorization
    ]
    from distill_tui.paths import AppPaths

    assert (AppPaths.from_env().default_models_dir / VAE_REL).read_bytes() == payload


def test_dry_run_and_models_check_never_send_the_token_to_a_mirror(
    hub_catalog, fake_hub, mirror, monkeypatch, capsys
):
    """`models download --dry-run` and `models check` ask a file's sources too (the mirror, after
    the Hub's 404): the token stays at the Hub there as well."""
    mirror.add_file(COMFY, COMFY_PATH, hub_catalog.payload(VAE_REL))
    set_vae(hub_catalog, mirrors=[mirror.resolve_url(COMFY, COMFY_PATH)])
    drop_on_hub(fake_hub, COMFY, COMFY_PATH)
    fake_hub.set_gated(COMFY)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert main(["models", "download", M4, "--only", "vae", "--dry-run"]) == 0
    assert mirror.requests, "the dry run asked the mirror after the Hub's 404"
    assert all(r.authorization is None for r in mirror.requests)
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0
    mirror.requests.clear()
    main(["models", "check", M4])
    assert mirror.requests, "models check asked the mirror the file came from"
    capsys.readouterr()
    assert all(r.authorization is None for r in mirror.requests)
    hub_reqs = [r for r in fake_hub.requests if r.server == "hub"]
    assert hub_reqs and all(r.authorization == f"Bearer {VALID_TOKEN}" for r in hub_reqs)


def test_gated_download_from_the_hub_still_sends_the_token(
    hub_catalog, fake_hub, mirror, monkeypatch, capsys
):
    """The Hub (the catalog's own URL) is gated: the token goes there and the download works; a
    mirror listed after it is never asked, and the CDN never gets the token."""
    mirror.add_file(COMFY, COMFY_PATH, hub_catalog.payload(VAE_REL))
    set_vae(hub_catalog, mirrors=[mirror.resolve_url(COMFY, COMFY_PATH)])
    fake_hub.set_gated(COMFY)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0, capsys.readouterr()
    heads = [r for r in fake_hub.requests if r.server == "hub"]
    assert heads and all(r.authorization == f"Bearer {VALID_TOKEN}" for r in heads)
    assert fake_hub.cdn_requests() and all(r.authorization is None for r in fake_hub.cdn_requests())
    assert not mirror.requests


def test_token_origin_rule_is_the_hubs_origin():
    from distill_tui.downloads.hub import may_send_token

    hf = "https://huggingface.co/a/b/resolve/main/f"
    assert may_send_token(hf, hf)
    # a mirror a catalog names, on any other origin: never (whatever the catalog calls "the Hub")
    civitai = "https://civitai.com/api/download/models/1"
    assert not may_send_token(civitai, civitai)
    assert not may_send_token(hf, civitai)
    assert not may_send_token("https://modelscope.cn/x", "https://modelscope.cn/x")
    # a loopback mirror of a loopback Hub (another address): never
    assert not may_send_token("http://127.0.0.1:9/x", "http://127.0.0.2:9/x")


def test_token_goes_only_to_hf_endpoint_when_set(monkeypatch):
    from distill_tui.downloads.hub import may_send_token

    monkeypatch.setenv("HF_ENDPOINT", "https://hub.corp.example")
    ep = "https://hub.corp.example/a/b/resolve/main/f"
    assert may_send_token(ep, ep)
    hf = "https://huggingface.co/a/b/resolve/main/f"
    assert not may_send_token(hf, hf)  # not the Hub in force
    loop = "http://127.0.0.1:9/a/b/resolve/main/f"
    assert not may_send_token(loop, loop)


# ---- 8. a token in HF_ENDPOINT or in the Hub's error text is never printed ---------------------
SECRET = "hf_EndpointSecret0123456789abcd"


@pytest.mark.parametrize(
    "value",
    [
        f"http://user:{SECRET}@mirror.lan:8080",
        f"https://{SECRET}@hub.corp.example",
        f"https://hub.corp.example/?token={SECRET[3:]}",
        f"ftp://user:{SECRET}@mirror.lan",
        f"mirror.lan?token={SECRET}",
    ],
)
def test_token_inside_hf_endpoint_is_never_echoed(value):
    env = dict(os.environ, HF_ENDPOINT=value)
    rc, out, err, _ = cli("models", "list", env=env, timeout=60)
    assert rc == 2 and "HF_ENDPOINT" in err, (rc, out, err)
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    text = out + err
    assert SECRET not in text and SECRET[3:] not in text and SECRET[3:15] not in text, text


def test_hub_error_text_with_the_token_minus_its_prefix_is_redacted(
    hub_catalog, fake_hub, monkeypatch, capsys
):
    """A 403 whose X-Error-Message quotes the token without ``hf_`` (as some proxies and the Hub
    do): the error line keeps the words, never the token."""
    bare = VALID_TOKEN[3:]
    fake_hub.faults.append(
        Fault(
            "status",
            server="hub",
            status=403,
            times=None,
            headers={"X-Error-Message": f"token {bare} has no read access; token={bare}"},
        )
    )
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    rc = main(["models", "download", M4, "--only", "vae"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == 1 and "403" in text, text
    assert bare not in text and VALID_TOKEN not in text, text
    assert "no read access" in text  # the Hub's words stay


def test_redact_strips_userinfo_query_and_every_form_of_a_secret():
    from distill_tui.redact import redact, redact_url

    assert redact_url(f"https://u:{SECRET}@h.example:8443/p?token=x#f") == (
        "https://h.example:8443/p?<redacted>"
    )
    text = redact(f"ftp://u:{SECRET}@h/x and {SECRET[3:]} and access_token=abc123def", (SECRET,))
    assert SECRET not in text and SECRET[3:] not in text and "abc123def" not in text, text


# ---- 13. a redirect to another scheme or to a private address is final --------------------------
def linked(hc: HubCatalog, location: str) -> dict[str, str]:
    """A Hub answer that is right in every header but where it sends the bytes."""
    data = hc.payload(VAE_REL)
    return {
        "Location": location,
        "X-Linked-Size": str(len(data)),
        "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
        "X-Repo-Commit": "0" * 40,
    }


def test_hub_redirect_to_a_file_url_is_final_and_said_once(hub_catalog, fake_hub, capsys):
    set_vae(hub_catalog, mirrors=[])  # one source: one question, one answer
    fake_hub.faults.append(
        Fault(
            "status",
            server="hub",
            status=302,
            times=None,
            headers=linked(hub_catalog, "file:///etc/passwd"),
        )
    )
    t0 = time.monotonic()
    rc = main(["models", "download", M4, "--only", "vae"])
    took = time.monotonic() - t0
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == 1, text
    assert took < 5, f"{took:.1f} s: retried"
    assert len([r for r in fake_hub.requests if r.server == "hub"]) == 1  # asked once, no retry
    assert "file:" in text and "not retried" in text, text
    assert "network error" not in text and "rerun to resume" not in text, text
    assert text.count("refused") == 1, text  # said once


def test_redirect_from_a_public_origin_to_a_private_address_is_final(
    hub_catalog, fake_hub, monkeypatch, capsys
):
    """The Hub at a public name (reached through an http proxy: the fake Hub itself) redirects
    to the cloud metadata address: refused before any request goes there."""
    set_vae(hub_catalog, mirrors=[])
    public = "http://hub.example.com"
    p = hub_catalog.path
    p.write_text(p.read_text().replace(fake_hub.url, public))
    monkeypatch.setenv("HF_ENDPOINT", public)  # plain http to a non-loopback host: the user's
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", fake_hub.url)
    fake_hub.faults.append(
        Fault(
            "status",
            server="hub",
            status=302,
            times=None,
            headers=linked(hub_catalog, "http://169.254.169.254/latest/meta-data/"),
        )
    )
    t0 = time.monotonic()
    rc = main(["models", "download", M4, "--only", "vae"])
    took = time.monotonic() - t0
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == 1, text
    assert took < 5, f"{took:.1f} s: retried"
    hub_reqs = [r for r in fake_hub.requests if r.server == "hub"]
    assert len(hub_reqs) == 1 and "meta-data" not in hub_reqs[0].path, hub_reqs
    assert "169.254.169.254" in text and "private" in text and "not retried" in text, text


def test_redirect_rule():
    from distill_tui.downloads.hub import redirect_problem

    assert redirect_problem("https://huggingface.co/a", "https://cdn-lfs.hf.co/x") is None
    assert redirect_problem("http://127.0.0.1:5/a", "http://127.0.0.1:6/x") is None  # tests
    assert redirect_problem("http://mirror.lan/a", "http://192.168.1.5/x") is None  # a LAN
    assert redirect_problem("https://huggingface.co/a", "file:///etc/passwd")
    assert redirect_problem("http://127.0.0.1:5/a", "gopher://127.0.0.1/x")
    for private in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "[fe80::1]", "localhost"):
        assert redirect_problem("https://huggingface.co/a", f"http://{private}/x"), private


# ---- 9. a CDN that trickles ends as "stalled" and the next source is tried -----------------------
def trickle(times: int | None = None, seconds: float = 120.0) -> Fault:
    """A CDN answer that sends 500 bytes, then one byte every 0.5 s: never a read timeout."""
    return Fault("trickle", after=500, interval=0.5, seconds=seconds, times=times, method="GET")


def test_trickling_cdn_ends_as_stalled_on_the_cli(hub_catalog, fake_hub):
    """HF_HUB_DOWNLOAD_TIMEOUT=1: the useful-rate window is 3 x 1 s. Every connection of the
    only source trickles: after the retries, one line says stalled and how much came."""
    set_vae(hub_catalog, mirrors=[])
    fake_hub.faults.append(trickle())
    env = dict(os.environ, HF_HUB_DOWNLOAD_TIMEOUT="1")
    rc, out, err, took = cli(
        "models", "download", M4, "--only", "vae", "--connections", "1", env=env, timeout=75
    )
    text = out + err
    assert rc == 1, text
    assert took < 60, took
    assert "stalled: the server sent" in text and "in the last 3 s" in text, text
    assert "Traceback" not in text
    gets = [r for r in fake_hub.cdn_requests() if r.method == "GET"]
    assert len(gets) == 7, len(gets)  # 1 try + 6 retries, each on a fresh connection


async def test_trickling_source_is_left_for_the_mirror(hub_catalog, fake_hub, mirror):
    mirror.add_file(COMFY, COMFY_PATH, hub_catalog.payload(VAE_REL))
    set_vae(hub_catalog, mirrors=[mirror.resolve_url(COMFY, COMFY_PATH)])
    fake_hub.faults.append(trickle())
    mgr = hub_catalog.manager(stall_timeout=1.0, retries=1, connections=1)
    try:
        res = await asyncio.wait_for(mgr.download_plan([(M4, "vae", None)]), 30)
    finally:
        await asyncio.wait_for(mgr.aclose(), 15)
    assert res[0].state.value == "done", res[0].error
    assert mirror.cdn_requests(), "the mirror served the bytes"


async def test_a_trickle_reads_stalled_while_it_lasts(hub_catalog, fake_hub):
    """The row says stalled while bytes trickle (the idle time never reaches the threshold: a
    byte every 0.5 s), then the download completes."""
    set_vae(hub_catalog, mirrors=[])
    fake_hub.faults.append(trickle(times=1, seconds=3.0))
    mgr = hub_catalog.manager(stall_timeout=30.0, connections=1, stalled_after=1.5)
    seen = []
    mgr.subscribe(seen.append)
    try:
        res = await asyncio.wait_for(mgr.download_plan([(M4, "vae", None)]), 30)
    finally:
        await asyncio.wait_for(mgr.aclose(), 15)
    assert res[0].state.value == "done", res[0].error
    words = [e.activity for e in seen if e.stalled is not None]
    assert words and all(w and w.startswith("stalled (under 1 KB/s for ") for w in words), words


# ---- 10. a stopped lock holder: reported stalled, not waited for forever -------------------------
def test_stopped_lock_holder_is_stalled_and_the_waiter_gives_up(hub_catalog, fake_hub):
    """A real `distill models download` holds the file's lock and is stopped (SIGSTOP) mid-way:
    `models status` says stalled with its pid (not "downloading 26%"), and a second download of
    the same file stops waiting after a bound with a line naming the pid and what to do."""
    import signal

    from distill_tui.downloads.activity import scan
    from distill_tui.paths import AppPaths

    set_vae(hub_catalog, mirrors=[])
    # 20 kB at once, then a byte every 0.5 s: the holder is mid-way when it is stopped
    fake_hub.faults.append(Fault("trickle", after=20_000, interval=0.5, seconds=120, method="GET"))
    models = AppPaths.from_env().default_models_dir
    argv = [sys.executable, "-m", "distill_tui", "models", "download", M4, "--only", "vae"]
    holder = subprocess.Popen(
        [*argv, "--connections", "1", "--quiet"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    waiter = None
    try:
        deadline = time.monotonic() + 30
        while not any(a.running and a.done > 0 for a in scan(models)):
            assert time.monotonic() < deadline, "the holder never made progress"
            assert holder.poll() is None, "the holder ended early"
            time.sleep(0.2)
        holder.send_signal(signal.SIGSTOP)
        waiter = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # models status: "stalled - not progressing for N s (pid P)" within a bound
        deadline = time.monotonic() + 40
        while True:
            rc, out, err, _ = cli("models", "status", timeout=30)
            assert rc == 0, out + err
            if "stalled" in out:
                break
            assert "downloading" in out, out
            assert time.monotonic() < deadline, out
            time.sleep(1.0)
        assert f"pid {holder.pid}" in out and "not progressing for" in out, out
        assert "downloading" not in out, out
        rc, out, err, _ = cli("models", "status", "--json", timeout=30)
        [d] = json.loads(out)["downloads"]
        assert d["state"] == "stalled" and d["pid"] == holder.pid, d
        # the second download: a clear line, within a bound, never a hang
        text, _ = waiter.communicate(timeout=60)
        assert waiter.returncode == 1, text
        assert f"pid {holder.pid}" in text and f"kill -CONT {holder.pid}" in text, text
        assert "Traceback" not in text
    finally:
        for p in (waiter, holder):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(timeout=10)


# ---- NIT: a disk-full partial is kept, and the last line says so --------------------------------
def test_disk_full_says_the_partial_is_kept_with_its_size(
    fake_hub, isolated_dirs, monkeypatch, capsys
):
    """FAULT HOOK (no tmpfs needed): pwrite raises ENOSPC after 1 MiB of a 3 MiB file."""
    import errno
    import re

    from distill_tui.paths import AppPaths
    from tests.hub_fixtures import build_hub_catalog

    build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes={VAE_REL: 3 << 20})
    real, written = os.pwrite, [0]

    def pwrite(fd, data, off):
        if written[0] + len(data) > (1 << 20):
            raise OSError(errno.ENOSPC, "No space left on device (fault hook)")
        written[0] += len(data)
        return real(fd, data, off)

    monkeypatch.setattr(os, "pwrite", pwrite)
    rc = main(["models", "download", M4, "--only", "vae", "--connections", "1"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == 1, text
    assert "disk full" in text, text
    assert "nothing was downloaded" not in text, text
    assert re.search(r"partial download is kept \([\d.]+ [KM]B of [\d.]+ MB\)", text), text
    assert re.search(r"kept: [\d.]+ [KM]B of [\d.]+ MB", text.splitlines()[-1] if text else ""), (
        text
    )


# ---- NIT: a symlink instead of a hard link says the real reason -----------------------------------
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root + setpriv")
def test_import_of_another_users_file_says_another_owner_not_another_filesystem(fake_hub):
    """Same filesystem, the file belongs to root, the CLI runs as nobody: the kernel refuses the
    hard link (fs.protected_hardlinks), so the file is symlinked - because of its owner."""
    if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() != "1":
        pytest.skip("fs.protected_hardlinks is off: the hard link would succeed")
    from tests.hub_fixtures import build_hub_catalog

    base = Path(tempfile.mkdtemp(prefix="distill-owner-"))
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
        hc = build_hub_catalog(fake_hub, catalog)
        for p in (catalog.parent, catalog):
            p.chmod(0o777 if p.is_dir() else 0o666)
        theirs = base / "theirs"
        theirs.mkdir()
        (theirs / "ae.safetensors").write_bytes(hc.payload(VAE_REL))  # root's, 0644
        (theirs / "ae.safetensors").chmod(0o644)
        p = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            + [sys.executable, "-m", "distill_tui", "models", "import", str(theirs)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        text = p.stdout + p.stderr
        assert p.returncode == 0, text
        assert "linked" in text and "symlink" in text, text
        assert "another filesystem" not in text, text
        assert "another user" in text, text
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_catalog_url_with_credentials_is_refused_without_echoing_them(hub_catalog):
    """A catalog URL ``http://user:hf_…@host/…`` was listed verbatim by `models list --json` and
    sent as Basic auth: the catalog refuses it, and the line never shows the secret."""
    for m in hub_catalog.raw["models"]:
        m["vae"]["downloadUrl"] = m["vae"]["downloadUrl"].replace("://", f"://user:{SECRET}@")
    rewrite(hub_catalog)
    rc, out, err, _ = cli("models", "list", "--json", timeout=60)
    text = out + err
    assert "credentials" in text, text
    assert SECRET not in text and SECRET[3:] not in text, text
    assert "Traceback" not in text, text
