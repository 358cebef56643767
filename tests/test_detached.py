"""Downloads that outlive the SSH session, and one view of every download on the box.

Real processes against the loopback fake Hub: ``nohup distill models download`` survives a
hang-up, ``--detach`` returns at once and finishes in a session of its own, ``models status``
sees a download run by another process (pid, %), ``models list`` shows partials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_download_process import (
    CMD,
    REL,
    ROOT,
    SIZE,
    hc,  # noqa: F401 - fixture
    models_dir,
    wait_progress,
)


def env() -> dict:
    """The test's environment (isolated XDG dirs are set by a fixture, after import)."""
    return dict(os.environ, PYTHONPATH=str(ROOT))


def distill(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_file(path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_nohup_download_survives_sighup(hc, fake_hub):  # noqa: F811
    """`nohup distill models download … &`: SIGHUP is ignored when it starts, and stays so."""
    fake_hub.rate = 600_000
    proc = subprocess.Popen(
        CMD,
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # what nohup does
    )
    wait_progress(proc, 0.1)
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(0.3)
    assert proc.poll() is None, "a hang-up the user ignored must not stop the download"
    fake_hub.rate = None
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (models_dir() / REL).read_bytes() == hc.payload(REL)


def test_sighup_without_nohup_still_pauses(hc, fake_hub):  # noqa: F811
    fake_hub.rate = 300_000
    proc = subprocess.Popen(
        CMD, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_progress(proc, 0.1)
    os.kill(proc.pid, signal.SIGHUP)
    proc.communicate(timeout=10)
    assert proc.returncode == 129


def test_detach_returns_at_once_and_finishes_in_its_own_session(hc, fake_hub):  # noqa: F811
    fake_hub.rate = 150_000  # ~7 s for the 4 MiB file over 4 connections
    t0 = time.monotonic()
    out = distill(*CMD[3:], "--detach", timeout=20)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert elapsed < 5
    assert "in the background (pid" in out.stdout and "distill models status" in out.stdout
    pid = int(out.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    log = out.stdout.split("log: ", 1)[1].split()[0]
    assert os.getsid(pid) == pid  # a session of its own: no terminal's hang-up reaches it
    # while it runs, another process sees it: file, %, pid
    deadline = time.monotonic() + 20
    seen = None
    while time.monotonic() < deadline:
        st = json.loads(distill("models", "status", "--json").stdout)
        running = [d for d in st["downloads"] if d["state"] == "downloading"]
        if running and running[0]["bytesDone"] > 0:
            seen = running[0]
            break
        time.sleep(0.1)
    assert seen is not None, "models status never showed the detached download"
    assert seen["pid"] == pid and seen["total"] > 0
    text = distill("models", "status").stdout
    assert f"pid {pid}" in text and "downloading" in text
    listed = json.loads(distill("models", "list", "--json").stdout)
    partials = [
        q["partial"]
        for m in listed["models"]
        for c in ("diffusion", "textEncoder")
        for q in m["components"][c]["quants"]
        if q["partial"]
    ]
    assert partials and partials[0]["state"] == "downloading" and partials[0]["pid"] == pid
    fake_hub.rate = None
    wait_file(models_dir() / REL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with_status = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True)
        if with_status.stdout.strip().startswith(b"Z"):
            break
        time.sleep(0.1)
    assert (models_dir() / REL).read_bytes() == hc.payload(REL)
    assert "downloaded and verified" in Path(log).read_text()
    assert json.loads(distill("models", "status", "--json").stdout)["downloads"] == []


def test_partial_shows_in_list_and_status(hc, fake_hub):  # noqa: F811
    fake_hub.rate = 300_000
    proc = subprocess.Popen(
        CMD, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    durable = wait_progress(proc, 0.3)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=10)
    listed = json.loads(distill("models", "list", "--json").stdout)
    q = next(
        q for q in listed["models"][0]["components"]["diffusion"]["quants"] if q["file"] == REL
    )
    assert not q["downloaded"]
    assert q["partial"]["state"] == "partial" and q["partial"]["pid"] is None
    assert durable <= q["partial"]["bytesDone"] < SIZE
    text = distill("models", "list").stdout
    assert "partial " in text and "download resumes it" in text
    st = distill("models", "status").stdout
    assert "partial" in st and REL in st
    # exactly that partial's file (the distill a new shell runs: "distill" or its full path)
    assert "models download flux2-klein-4b --diffusion Q4_K_S --only diffusion)" in st


def test_only_restricts_the_set(hc, fake_hub):  # noqa: F811
    out = distill("models", "download", "flux2-klein-4b", "--only", "vae")
    assert out.returncode == 0, out.stderr
    listed = json.loads(distill("models", "list", "--json").stdout)["models"][0]["components"]
    assert listed["vae"]["downloaded"]
    assert not any(q["downloaded"] for q in listed["diffusion"]["quants"])
    bad = distill("models", "download", "flux2-klein-4b", "--only", "unet")
    assert bad.returncode != 0 and "unknown part 'unet'" in bad.stderr
    assert "Traceback" not in bad.stderr
