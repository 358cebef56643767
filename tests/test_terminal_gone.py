"""The TUI and a terminal that stops reading or goes away (issue 22, items 1, 2 and 5).

A laptop asleep keeps the SSH connection open while nobody reads the pty: the downloads must go
on and be recorded (the UI drops frames instead of blocking the App loop). A connection that
drops while a screen draws closes the pty under the TUI: the process must end within a few
seconds, hand its downloads off once, and take its engine child with it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time

import pytest

from tests.loopback_catalog import serve_catalog
from tests.pty_tui import PtyTUI

F1 = b"\x1bOP"
F3 = b"\x1bOR"
CTRL_Q = b"\x11"
DIFF = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
TE = "text_encoder/Qwen3-4B-Q4_K_M.gguf"
VAE = "vae/flux2-vae.safetensors"
RECOMMENDED = (DIFF, TE, VAE)


class PausablePty(PtyTUI):
    """A PtyTUI whose reader can stop reading the master (the terminal nobody drains), and
    whose master can be closed for real (:func:`_drop_terminal`): its reader never sits in a
    blocking read, which would keep the closed master open until the next byte."""

    def __init__(self, *args: str, **kw) -> None:
        self.reading = threading.Event()
        self.reading.set()
        self.closing = threading.Event()
        super().__init__(*args, **kw)

    def _read(self) -> None:
        while not self.closing.is_set():
            if not self.reading.wait(0.05):
                continue
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
            except (OSError, ValueError):
                return
            if not data:
                return
            with self._lock:
                self._buf += data

    def stop_reading(self) -> None:
        self.reading.clear()
        # the reader may be inside one os.read: let what it gets now be the last for a while
        time.sleep(0.2)

    def resume_reading(self) -> None:
        self.reading.set()


def _paths():
    from distill_tui.paths import AppPaths

    return AppPaths.from_env()


@pytest.fixture
def loopback(fake_hub, isolated_dirs):
    """The loopback catalog (3 files in the recommended set) as the user catalog."""
    raw = serve_catalog(fake_hub, 1 << 20)
    path = _paths().user_catalog_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw), "utf-8")
    return raw


def _recorded() -> set[str]:
    manifest = _paths().default_models_dir / "installed.json"
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError):
        return set()
    files = data.get("files", data) if isinstance(data, dict) else {}
    return set(files) if isinstance(files, dict) else {f.get("path") for f in files}


def _wait(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _start_recommended_set(tui: PtyTUI) -> None:
    tui.wait_for(b"Gallery")  # the footer: first paint
    n = len(tui.output)
    tui.send(F3)
    tui.wait_for(b"Diffusion Model", start=n)
    tui.send(b"d")
    part = _paths().default_models_dir / (DIFF + ".part.json")
    _wait(lambda: part.exists() or (_paths().default_models_dir / DIFF).exists(), 40, "d")


@pytest.mark.parametrize("reader", ["reads", "asleep"])
def test_downloads_finish_and_are_recorded_while_nobody_reads_the_terminal(
    loopback, fake_hub, reader
):
    """The same set, the same link: with the terminal read (the baseline) and with nobody
    reading it after `d`; both land and are recorded in about the same time."""
    fake_hub.rate = 400_000  # per connection: ~2.6 s a file, ~8 s the set when read
    tui = PausablePty()
    try:
        _start_recommended_set(tui)
        if reader == "asleep":
            tui.stop_reading()
        # what a person does before closing the lid: a few big redraws (the help modal is
        # tens of KB a frame) on top of the progress the Model Manager draws 10 times a second
        for _ in range(16):
            tui.send(F1)
            time.sleep(0.1)
        took = _wait(
            lambda: set(RECOMMENDED) <= _recorded(), 30, "the set to land in installed.json"
        )
        assert tui.proc.poll() is None
        models = _paths().default_models_dir
        for rel in RECOMMENDED:
            assert (models / rel).stat().st_size == 1 << 20
        print(f"{reader}: the set was recorded {took:.1f} s after `d`")
        # the terminal reads again: the screen is drawn anew, showing the finished set
        n = len(tui.output)
        tui.resume_reading()
        tui.wait_for(b"Downloaded", start=n, timeout=15)
        if reader == "asleep":  # frames were dropped, not queued: one full repaint after
            # the writer logs the repaint once its backlog is written, which can be just after
            # "Downloaded" reaches the terminal: wait for the line (bounded) rather than race it
            log_file = _paths().log_file

            def _logged() -> bool:
                try:
                    return "full repaint" in log_file.read_text("utf-8")
                except OSError:
                    return False

            try:
                _wait(_logged, 15, "the full repaint to be logged")
            except AssertionError:
                log = log_file.read_text("utf-8") if log_file.exists() else "(no log)"
                raise AssertionError(f"no full repaint was logged:\n{log[-2000:]}") from None
        tui.send(CTRL_Q)
        assert tui.wait_exit(15) == 0
    finally:
        tui.resume_reading()
        tui.close()


# ---- the terminal goes away (item 2) ---------------------------------------------------


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie of ours counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.update(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _drop_terminal(tui: PausablePty) -> None:
    """What sshd (or ``tmux kill-session``) does: the pty's master side is closed, so the
    TUI's terminal is hung up (EIO on read and write, SIGHUP to its session)."""
    tui.closing.set()
    tui._reader.join(2)
    for fd in (tui.master, tui.slave):
        try:
            os.close(fd)
        except OSError:
            pass
    tui.master = tui.slave = -1


def _end_within(tui: PausablePty, seconds: float) -> float:
    t0 = time.monotonic()
    try:
        tui.proc.wait(timeout=seconds)
    except Exception:
        stacks = ""
        try:  # what it was doing, for the failure message
            with open(f"/proc/{tui.proc.pid}/wchan") as fh:
                stacks = fh.read()
        except OSError:
            pass
        tui.proc.kill()
        raise AssertionError(
            f"the TUI was still alive {seconds} s later (wchan {stacks})"
        ) from None
    return time.monotonic() - t0


def test_terminal_closed_while_a_screen_draws_ends_the_tui_every_time(isolated_dirs):
    """20 times: first paint, F3 or F1 (a screen starts drawing), the pty closed at once or a
    moment later: the process ends within 5 s every time."""
    import random

    rnd = random.Random(22)
    took = []
    for i in range(20):
        tui = PausablePty(size=(120, 40) if i % 2 else (80, 24))
        try:
            tui.wait_for(b"Gallery", timeout=30)
            tui.send(F3 if i % 2 else F1)
            time.sleep(rnd.choice((0.0, 0.02, 0.05, 0.1, 0.2)))
            _drop_terminal(tui)
            took.append(_end_within(tui, 5.0))
        finally:
            if tui.proc.poll() is None:
                tui.proc.kill()
                tui.proc.wait(5)
    print(f"ended {min(took):.2f}-{max(took):.2f} s after the terminal went away")


def test_terminal_closed_during_a_generation_ends_the_engine_child_too(app_paths, tiny_models_slow):
    from tests.engine_fixtures import install_tiny_model

    install_tiny_model(app_paths, tiny_models_slow)
    tui = PausablePty()
    try:
        tui.wait_for(b"Gallery", timeout=30)
        tui.send(b"a lighthouse at dusk")
        time.sleep(0.3)
        tui.send(b"\x07")  # ctrl+g
        engine: set[int] = set()

        def engine_running() -> bool:
            engine.update(_children(tui.proc.pid))
            return bool(engine)

        _wait(engine_running, 30, "the engine child to start")
        time.sleep(0.5)  # loading / encoding: the child is busy
        tui.send(F1)
        _drop_terminal(tui)
        _end_within(tui, 5.0)
        _wait(lambda: all(_gone(p) for p in engine), 5, f"the engine child {engine} to end")
    finally:
        if tui.proc.poll() is None:
            tui.proc.kill()
            tui.proc.wait(5)


# ---- one hand-off whatever the hang-ups (item 5) ------------------------------------------


def _detached_downloaders() -> list[int]:
    """Pids of the `distill models download` processes handed this test's downloads."""
    state = os.environ["XDG_STATE_HOME"].encode()
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        ours = b"DISTILL_DETACHED=1" in env and b"XDG_STATE_HOME=" + state in env
        if ours and b"download" in cmd and not _gone(int(pid)):
            out.append(int(pid))
    return out


def test_two_hangups_in_a_row_hand_the_downloads_off_once(loopback, fake_hub):
    fake_hub.rate = 100_000  # still downloading when the hang-ups come
    tui = PtyTUI()
    try:
        _start_recommended_set(tui)
        tui.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)  # not merged into one pending signal by the kernel
        tui.proc.send_signal(signal.SIGHUP)  # the shell passes its own on, right after
        assert tui.wait_exit(10) == 128 + signal.SIGHUP
        detached = _detached_downloaders()
        assert len(detached) == 1, detached  # one detached downloader
        handed = _paths().log_file.read_text("utf-8").count("handed to pid")
        assert handed == 1, handed
        logs = sorted(_paths().log_dir.glob("download-*.log"))
        assert len(logs) == 1, logs
        fake_hub.rate = None
        _wait(lambda: set(RECOMMENDED) <= _recorded(), 60, "the hand-off to finish the set")
        assert len(list(_paths().log_dir.glob("download-*.log"))) == 1
    finally:
        tui.close()


def test_sigterm_while_nobody_reads_the_terminal_ends_the_tui(isolated_dirs):
    """The orphan of the issue ignored SIGTERM: with the terminal full and unread, SIGTERM
    still ends the TUI within 5 s."""
    tui = PausablePty()
    try:
        tui.wait_for(b"Gallery", timeout=30)
        tui.stop_reading()
        for _ in range(16):  # more than the terminal and the writer's backlog take
            tui.send(F1)
            time.sleep(0.1)
        tui.proc.send_signal(signal.SIGTERM)
        took = _end_within(tui, 5.0)
        assert tui.proc.returncode == 128 + signal.SIGTERM
        print(f"SIGTERM, terminal unread: ended in {took:.2f} s")
    finally:
        tui.resume_reading()
        tui.close()


def test_a_terminal_left_non_blocking_is_not_taken_for_a_lost_one(isolated_dirs):
    """Another program may leave the terminal's file description non-blocking (EAGAIN on a
    full pty): that is a slow terminal, not a gone one; the TUI draws on and quits normally."""
    import fcntl

    tui = PausablePty()
    try:
        tui.wait_for(b"Gallery", timeout=30)
        flags = fcntl.fcntl(tui.slave, fcntl.F_GETFL)
        fcntl.fcntl(tui.slave, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # shared with the TUI
        tui.stop_reading()
        for _ in range(16):  # fills the pty: its writes now get EAGAIN
            tui.send(F1)
            time.sleep(0.1)
        time.sleep(0.5)
        assert tui.proc.poll() is None
        n = len(tui.output)
        tui.resume_reading()
        tui.send(F3)
        tui.wait_for(b"Diffusion Model", start=n, timeout=20)
        tui.send(CTRL_Q)
        assert tui.wait_exit(15) == 0
    finally:
        tui.resume_reading()
        tui.close()
