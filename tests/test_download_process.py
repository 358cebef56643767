"""Real processes: `distill models download` killed (SIGKILL), stopped (SIGINT/TERM/HUP), and
two processes on the same file, all against the loopback fake Hub."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill_tui.downloads.lock import is_stale
from distill_tui.downloads.sidecar import Sidecar, lock_path, part_path, sidecar_path
from tests.hub_fixtures import build_hub_catalog

ROOT = Path(__file__).resolve().parent.parent
REL = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
SIZE = 4 << 20
CMD = [
    sys.executable,
    "-m",
    "distill_tui",
    "models",
    "download",
    "flux2-klein-4b",
    "--diffusion",
    "Q4_K_S",
    "--text-encoder",
    "Q3_K_M",
    "--no-vae",
    "--connections",
    "4",
]


@pytest.fixture
def hc(fake_hub, isolated_dirs):
    from distill_tui.paths import AppPaths

    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes={REL: SIZE})


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def start(*extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [*CMD, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_progress(proc: subprocess.Popen, fraction: float, timeout: float = 20) -> int:
    """Wait until the sidecar of REL records at least ``fraction`` durable; return the bytes."""
    side = sidecar_path(models_dir() / REL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sc = Sidecar.load(side)
        if sc is not None and sc.done.covered() >= fraction * SIZE:
            return sc.done.covered()
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no progress")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_partial_consistent(hc) -> int:
    dest = models_dir() / REL
    sc = Sidecar.load(sidecar_path(dest))
    assert sc is not None, "the sidecar must survive"
    data = part_path(dest).read_bytes()
    assert len(data) == SIZE
    for a, b in sc.done.to_list():
        assert data[a:b] == hc.payload(REL)[a:b], "the sidecar claims bytes that are wrong"
    assert not dest.exists()
    return sc.done.covered()


def test_sigkill_mid_download_then_resume(hc, fake_hub):
    fake_hub.rate = 300_000  # per connection; 4 connections: ~3.5 s for the 4 MiB file
    proc = start()
    wait_progress(proc, 0.45)
    proc.kill()
    proc.wait(timeout=5)
    durable = check_partial_consistent(hc)
    lock = lock_path(models_dir() / REL)
    assert not lock.exists() or is_stale(lock)  # the kernel released the flock
    served = {r.path: 0 for r in fake_hub.cdn_requests()}
    first = fake_hub.bytes_served(sha(hc.payload(REL)))
    n0 = len(fake_hub.requests)
    fake_hub.rate = None
    out = subprocess.run(
        [*CMD],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert (models_dir() / REL).read_bytes() == hc.payload(REL)
    second = sum(
        r.body_bytes
        for r in fake_hub.requests[n0:]
        if r.server == "cdn" and sha(hc.payload(REL)) in r.path
    )
    assert second <= SIZE - durable  # resumed from the recorded offsets, nothing twice
    assert first + second < 1.3 * SIZE
    assert served  # sanity
    leftover = [p.name for p in (models_dir() / "diffusion").iterdir()]
    assert leftover == [Path(REL).name]


@pytest.mark.parametrize(
    "sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_signal_stops_fast_leaving_resumable_partial(hc, fake_hub, sig, code):
    fake_hub.rate = 300_000
    proc = start()
    wait_progress(proc, 0.3)
    t0 = time.monotonic()
    os.kill(proc.pid, sig)
    if sig == signal.SIGINT:
        time.sleep(0.05)
        os.kill(proc.pid, sig)  # a second Ctrl-C during cleanup corrupts nothing
    proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    out, err = proc.communicate()
    assert proc.returncode == code, err
    assert elapsed < 2.0, f"took {elapsed:.2f}s to stop"
    durable = check_partial_consistent(hc)
    assert durable >= 0.3 * SIZE
    if sig != signal.SIGHUP:
        assert "resume" in out
    lock = lock_path(models_dir() / REL)
    assert not lock.exists() or is_stale(lock)
    fake_hub.rate = None
    n0 = len(fake_hub.requests)
    done = subprocess.run(
        CMD,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (models_dir() / REL).read_bytes() == hc.payload(REL)
    second = sum(
        r.body_bytes
        for r in fake_hub.requests[n0:]
        if r.server == "cdn" and sha(hc.payload(REL)) in r.path
    )
    assert second <= SIZE - durable


def test_two_processes_same_file_one_writer(hc, fake_hub):
    fake_hub.rate = 400_000
    a = start()
    wait_progress(a, 0.0)
    b = start()
    out_a, err_a = a.communicate(timeout=60)
    out_b, err_b = b.communicate(timeout=60)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    assert "waiting for another distill process" in err_b
    assert (models_dir() / REL).read_bytes() == hc.payload(REL)
    assert fake_hub.bytes_served(sha(hc.payload(REL))) < 1.3 * SIZE
    assert "already downloaded" in out_b
