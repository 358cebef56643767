"""The TUI as an SSH session meets it, on a real pty: SIGTERM restores the terminal exactly, a
hang-up hands running downloads to a detached process that finishes them, and ctrl+q with
downloads running asks first (keep downloading in the background / stop / stay)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.hub_fixtures import build_hub_catalog
from tests.pty_tui import ALT_OFF, ALT_ON, ROOT, PtyTUI

F3 = b"\x1bOR"
CTRL_Q = b"\x11"
DIFF = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"


@pytest.fixture
def hc(fake_hub, isolated_dirs):
    from distill_tui.paths import AppPaths

    sizes = {DIFF: 3 << 20}
    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes=sizes)


def models_dir():
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait(pred, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_download(tui: PtyTUI) -> None:
    """F3, then d on the active model's card header: the recommended set + the VAE."""
    tui.wait_for(b"Gallery")  # the footer: first paint
    n = len(tui.output)
    tui.send(F3)
    tui.wait_for(b"Diffusion Model", start=n)
    tui.send(b"d")
    sidecar = models_dir() / (DIFF + ".part.json")
    wait(sidecar.exists, 20, "the TUI's download to start")


def quit_while_downloading(tui: PtyTUI) -> None:
    """Start a download, then ctrl+q: the question (keep / stop / stay) is on screen."""
    start_download(tui)
    n = len(tui.output)
    tui.send(CTRL_Q)
    tui.wait_for(b"Keep downloading", start=n)


def test_sigterm_restores_the_terminal_exactly(isolated_dirs):
    tui = PtyTUI()
    try:
        tui.wait_for(b"Gallery")
        assert tui.modes_now() != tui.modes_before  # raw mode while it runs
        tui.proc.send_signal(signal.SIGTERM)
        rc = tui.wait_exit(10)
        out = tui.output
        assert rc == 128 + signal.SIGTERM
        assert tui.modes_now() == tui.modes_before  # what `stty -a` shows, unchanged
        assert out.rfind(ALT_OFF) > out.rfind(ALT_ON) >= 0  # left the alternate screen
        assert b"\x1b[?1000l" in out[out.rfind(ALT_ON) :]  # mouse reporting off again
        assert b"Traceback" not in out
    finally:
        tui.close()


def test_sighup_hands_running_downloads_to_a_detached_process(hc, fake_hub):
    fake_hub.rate = 250_000  # per connection: the TUI is still downloading at the hang-up
    tui = PtyTUI()
    try:
        start_download(tui)
        tui.proc.send_signal(signal.SIGHUP)
        rc = tui.wait_exit(15)
        assert rc == 128 + signal.SIGHUP
        tui_pid = tui.proc.pid
        # another process carries on: models status sees it (by its pid) while it runs
        seen: dict = {}

        def detached_running() -> bool:
            st = json.loads(distill("models", "status", "--json").stdout)
            for d in st["downloads"]:
                if d["state"] == "downloading" and d["pid"] not in (None, tui_pid):
                    seen.update(d)
                    return True
            return (models_dir() / DIFF).exists()

        wait(detached_running, 30, "a detached download")
        fake_hub.rate = None
        listed = {}

        def ready() -> bool:
            listed.update(json.loads(distill("models", "list", "--json").stdout)["models"][0])
            return listed["ready"]

        wait(ready, 60, "the model to become Ready from the detached download")
        for rel in (DIFF, "vae/flux2-vae.safetensors"):
            assert (models_dir() / rel).read_bytes() == hc.payload(rel)
        # nothing downloaded twice: the detached process resumed the TUI's partials
        total = sum(len(hc.payload(r)) for r in hc.payloads if (models_dir() / r).exists())
        assert fake_hub.bytes_served() < total + (3 << 20) // 2
    finally:
        tui.close()


def test_ctrl_q_with_downloads_asks_and_keep_continues_in_background(hc, fake_hub):
    fake_hub.rate = 250_000
    tui = PtyTUI()
    try:
        quit_while_downloading(tui)
        tui.send(b"k")
        rc = tui.wait_exit(15)
        assert rc == 0
        assert b"continue in the background" in tui.output
        fake_hub.rate = None

        def ready() -> bool:
            return json.loads(distill("models", "list", "--json").stdout)["models"][0]["ready"]

        wait(ready, 60, "the background download to finish")
        assert (models_dir() / DIFF).read_bytes() == hc.payload(DIFF)
    finally:
        tui.close()


def test_ctrl_q_with_downloads_stop_keeps_partials(hc, fake_hub):
    fake_hub.rate = 250_000
    tui = PtyTUI()
    try:
        quit_while_downloading(tui)
        tui.send(b"s")
        assert tui.wait_exit(15) == 0
        assert tui.modes_now() == tui.modes_before
        st = json.loads(distill("models", "status", "--json").stdout)
        assert st["downloads"] and all(d["state"] == "partial" for d in st["downloads"])
        assert not (models_dir() / DIFF).exists()
    finally:
        tui.close()


def test_ctrl_q_without_downloads_quits_at_once(isolated_dirs):
    tui = PtyTUI()
    try:
        tui.wait_for(b"Gallery")
        tui.send(CTRL_Q)
        assert tui.wait_exit(10) == 0
        assert tui.modes_now() == tui.modes_before
    finally:
        tui.close()


def test_model_manager_shows_and_stops_a_download_run_elsewhere(hc, fake_hub):
    """A download the CLI runs detached appears in the TUI's Model Manager with its pid; x
    stops that process; the row then shows the partial that d resumes."""
    fake_hub.rate = 100_000
    out = distill("models", "download", "flux2-klein-4b", "--only", "diffusion", "--detach")
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    wait((models_dir() / (DIFF + ".part.json")).exists, 20, "the detached download to start")
    tui = PtyTUI()
    try:
        tui.wait_for(b"Gallery")
        n = len(tui.output)
        tui.send(F3)
        tui.wait_for(f"in pid {pid}".encode(), start=n, timeout=15)
        n = len(tui.output)
        tui.send(b"x")  # on the card header: every download of the card, this one included

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            st = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True)
            return st.stdout.strip().startswith(b"Z")

        wait(gone, 15, "the detached process to stop")
        tui.wait_for(b"partial", start=n, timeout=15)
        assert not (models_dir() / DIFF).exists()
        tui.send(CTRL_Q)
        assert tui.wait_exit(10) == 0
    finally:
        tui.close()
