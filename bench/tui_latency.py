"""Measure distill's first paint and key -> repaint latency in a real terminal (tmux).

    .venv/bin/python -m bench.tui_latency [--size 120x40] [--presses 60]

1. First paint: spawn ``distill`` on a pty and wait until the footer is written; repeated
   ``--paint-runs`` times on a pty that answers the terminal probe like xterm (device
   attributes, cell size) and on one that answers nothing (each probe question then waits
   out its 0.1 s). (``--driver tmux``: ``tmux new-session`` and ``capture-pane`` polling.)
2. Key -> repaint while two downloads run: a fake Hub on loopback serves the loopback
   catalog rate-capped (``--rate-mb`` MB/s per connection), settings allow two files at once,
   F3, ``d`` on two quants; then, while both download, alternately press ``space`` on the
   card header (the card collapses/expands: ``▼`` <-> ``▶``) and ``f1``/``escape`` (the help
   opens/closes), and time from just before ``tmux send-keys`` until capture-pane shows
   the change. Includes tmux's own overhead (send-keys and capture-pane are processes), so
   it is an upper bound on what the app itself adds.

Everything runs under a temporary XDG tree; nothing of the user's is read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakehub import FakeHub  # noqa: E402
from tests.loopback_catalog import serve_catalog  # noqa: E402

SESSION = "distill-bench"


class PtyTerm:
    """distill on a pseudo-terminal of our own: write keys, read its output with timestamps.

    Latency = time from writing the key's bytes to the first output that contains the
    marker the key must produce. No tmux in between."""

    KEYS = {
        "Space": b" ",
        "F1": b"\x1bOP",
        "F3": b"\x1bOR",
        "Escape": b"\x1b",
        "Down": b"\x1b[B",
        "Up": b"\x1b[A",
        "d": b"d",
    }

    #: what xterm answers (no Sixel, no Kitty graphics): Primary Device Attributes, cell size
    XTERM_ANSWERS = {b"\x1b[c": b"\x1b[?62;22c", b"\x1b[16t": b"\x1b[6;20;10t"}

    def __init__(
        self, env: dict[str, str], w: int, h: int, answers: dict[bytes, bytes] | None = None
    ):
        import fcntl
        import pty
        import struct
        import termios
        import threading

        self.t_spawn = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # child
            cmd = os.environ.get("DISTILL_BENCH_CMD")  # e.g. a profiling wrapper
            if cmd:
                argv = shlex.split(cmd)
                os.execve(argv[0], argv, {**env, "PROF_OUT": os.environ.get("PROF_OUT", "")})
            os.execve(str(ROOT / ".venv/bin/distill"), ["distill"], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
        self.pid, self.fd = pid, fd
        self.answers = dict(answers or {})  # queries still to answer
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.perf_counter(), data))
            for query in [q for q in self.answers if q in data]:
                os.write(self.fd, self.answers.pop(query))

    def since(self, t0: float) -> bytes:
        with self.lock:
            return b"".join(d for t, d in self.chunks if t >= t0)

    def wait_marker(self, t0: float, marker: bytes, timeout: float = 10.0) -> float:
        """Seconds from t0 until output after t0 contains marker."""
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                buf = b""
                for t, d in self.chunks:
                    if t >= t0:
                        buf += d
                        if marker in buf:
                            return t - t0
            time.sleep(0.001)
        raise TimeoutError(f"marker {marker!r} not seen")

    def press(self, key: str) -> float:
        t0 = time.perf_counter()
        os.write(self.fd, self.KEYS[key])
        return t0

    def close(self) -> None:
        import signal

        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        os.close(self.fd)


def run_pty(args, env: dict[str, str], w: int, h: int, tmp: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    for key, label, answers in (
        ("first_paint", "a terminal that answers like xterm", PtyTerm.XTERM_ANSWERS),
        ("first_paint_silent", "a terminal that answers nothing", None),
    ):
        paints = []
        for _ in range(args.paint_runs):
            term = PtyTerm(env, w, h, answers)
            paints.append(term.wait_marker(term.t_spawn, b"Gallery", timeout=60))
            term.close()
        results[key] = stats(f"first paint (spawn -> footer written), {label}", paints)
    # The Hub runs in its own process so its threads don't compete with this one's reader.
    cfg = tmp / "config" / "distill"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "settings.json").write_text(json.dumps({"schema_version": 1, "download_concurrency": 2}))
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.loopback_hub",
            "--config-dir",
            str(cfg),
            "--hub-port",
            str(args.hub_port),
            "--cdn-port",
            str(args.hub_port + 1),
            "--size-mb",
            str(args.file_mb),
            "--rate-mb",
            str(args.rate_mb),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stdout is not None
        print(hub.stdout.readline().strip())
        term = PtyTerm(env, w, h)
        term.wait_marker(term.t_spawn, b"Gallery", timeout=60)
        time.sleep(0.5)
        term.wait_marker(term.press("F3"), b"Diffusion Model")
        keys = ("Down", "Down", "Up", "Up") if args.idle else ("Down", "d", "Down", "d", "Up", "Up")
        for key in keys:
            term.press(key)
            time.sleep(0.2)
        time.sleep(1.0)
        if not args.idle:
            tail = term.since(time.perf_counter() - 0.5)
            print(f"output in the last 0.5 s: {len(tail)} bytes (progress repaints)")
        lat_space: list[float] = []
        lat_help: list[float] = []
        lat_f1: list[float] = []
        lat_esc: list[float] = []
        expanded = True
        for i in range(args.presses):
            if i % 2 == 0:
                marker = "▶ ".encode() if expanded else "▼ ".encode()
                lat_space.append(term.wait_marker(term.press("Space"), marker))
                expanded = not expanded
            else:
                lat_f1.append(term.wait_marker(term.press("F1"), b"Model Manager"))
                time.sleep(args.interval)
                t_esc = term.press("Escape")
                lat_esc.append(term.wait_marker(t_esc, b"All Models"))
                if os.environ.get("DISTILL_BENCH_DEBUG"):
                    with term.lock:
                        print(
                            "esc",
                            [
                                (round((t - t_esc) * 1000, 1), len(d), b"All Models" in d)
                                for t, d in term.chunks
                                if t >= t_esc
                            ][:6],
                        )
                lat_help += lat_f1[-1:] + lat_esc[-1:]
            time.sleep(args.interval)
        results["space_toggle_card"] = stats("space (card toggle)", lat_space)
        results["f1_open_help"] = stats("f1 (help opens)", lat_f1)
        results["escape_close_help"] = stats("escape (help closes)", lat_esc)
        results["f1_escape_help"] = stats("f1/escape (help modal)", lat_help)
        results["all_keys"] = stats("all keys", lat_space + lat_help)
        parts = list((tmp / "data" / "distill" / "models").rglob("*.part"))
        results["partials_growing_at_end"] = len(parts)
        term.close()
    finally:
        hub.send_signal(signal.SIGINT)  # loopback_hub removes its payloads on SIGINT
        hub.wait()
    return results


def write_config(tmp: Path, hub: FakeHub, args) -> None:
    catalog = serve_catalog(hub, int(args.file_mb * 1e6))
    cfg = tmp / "config" / "distill"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "model-catalog.json").write_text(json.dumps(catalog))
    (cfg / "settings.json").write_text(json.dumps({"schema_version": 1, "download_concurrency": 2}))


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def capture() -> str:
    return tmux("capture-pane", "-t", SESSION, "-p")


def wait_for(pred, timeout: float = 30.0, poll: float = 0.005) -> float:
    t0 = time.perf_counter()
    while True:
        screen = capture()
        if pred(screen):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"screen never matched; last screen:\n{screen}")
        time.sleep(poll)


def start(env: dict[str, str], w: int, h: int) -> float:
    tmux("kill-session", "-t", SESSION)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    cmd = f"env {exports} {shlex.quote(str(ROOT / '.venv/bin/distill'))}; sleep 30"
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-s", SESSION, "-x", str(w), "-y", str(h), cmd)
    wait_for(lambda s: "f3" in s and "Models" in s, timeout=60, poll=0.005)
    return time.perf_counter() - t0


def stats(name: str, xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    p = lambda q: xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]  # noqa: E731
    out = {
        "n": len(xs),
        "p50_ms": p(0.5) * 1000,
        "p95_ms": p(0.95) * 1000,
        "max_ms": xs[-1] * 1000,
        "mean_ms": statistics.fmean(xs) * 1000,
    }
    print(f"{name}: " + "  ".join(f"{k}={v:.1f}" if k != "n" else f"n={v}" for k, v in out.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tui_latency")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--presses", type=int, default=60)
    ap.add_argument("--interval", type=float, default=0.15)
    ap.add_argument("--paint-runs", type=int, default=5)
    ap.add_argument("--file-mb", type=float, default=400)
    ap.add_argument(
        "--rate-mb",
        type=float,
        default=0.5,
        help="MB/s per connection (low enough that both files still download when the keys end)",
    )
    ap.add_argument("--idle", action="store_true", help="no downloads (baseline)")
    ap.add_argument("--driver", choices=("pty", "tmux"), default="pty")
    ap.add_argument("--hub-port", type=int, default=18580)
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    env = {
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "HOME": str(tmp / "home"),
        "HF_TOKEN_PATH": str(tmp / "no-token"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    if args.driver == "pty":
        try:
            print(json.dumps(run_pty(args, env, w, h, tmp), indent=2))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    results: dict[str, object] = {}

    # ---- first paint (default screen, no downloads) --------------------------------------
    paints = [start(env, w, h) for _ in range(args.paint_runs)]
    results["first_paint"] = stats("first paint (spawn -> footer visible)", paints)
    tmux("kill-session", "-t", SESSION)

    # ---- two rate-capped downloads ---------------------------------------------------------
    # The Hub runs in its own process so its threads don't compete with this one's reader.
    cfg = tmp / "config" / "distill"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "settings.json").write_text(json.dumps({"schema_version": 1, "download_concurrency": 2}))
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.loopback_hub",
            "--config-dir",
            str(cfg),
            "--hub-port",
            str(args.hub_port),
            "--cdn-port",
            str(args.hub_port + 1),
            "--size-mb",
            str(args.file_mb),
            "--rate-mb",
            str(args.rate_mb),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stdout is not None
        print(hub.stdout.readline().strip())
        start(env, w, h)
        tmux("send-keys", "-t", SESSION, "F3")
        wait_for(lambda s: "All Models" in s and "Diffusion Model" in s)
        keys = ("Down", "Down", "Up", "Up") if args.idle else ("Down", "d", "Down", "d", "Up", "Up")
        for key in keys:
            tmux("send-keys", "-t", SESSION, key)
            time.sleep(0.2)
        if not args.idle:
            wait_for(lambda s: s.count("x cancel") >= 2, timeout=30)
        print("two downloads running:")
        print("\n".join(line for line in capture().splitlines() if "cancel" in line))

        lat_space: list[float] = []
        lat_help: list[float] = []
        for i in range(args.presses):
            if i % 2 == 0:
                expanded = "▼ FLUX.2" in capture()
                want = "▶ FLUX.2" if expanded else "▼ FLUX.2"
                t0 = time.perf_counter()
                tmux("send-keys", "-t", SESSION, "Space")
                wait_for(lambda s, want=want: want in s, timeout=5, poll=0.002)
                lat_space.append(time.perf_counter() - t0)
            else:
                t0 = time.perf_counter()
                tmux("send-keys", "-t", SESSION, "F1")
                wait_for(lambda s: "Model Manager — keys" in s, timeout=5, poll=0.002)
                lat_help.append(time.perf_counter() - t0)
                time.sleep(args.interval)
                t0 = time.perf_counter()
                tmux("send-keys", "-t", SESSION, "Escape")
                wait_for(lambda s: "Model Manager — keys" not in s, timeout=5, poll=0.002)
                lat_help.append(time.perf_counter() - t0)
            time.sleep(args.interval)
        if "▶ FLUX.2" in capture():
            tmux("send-keys", "-t", SESSION, "Space")
            time.sleep(0.3)
        still = capture().count("x cancel")
        print(f"downloads still running after the key loop: {still}")
        results["space_toggle_card"] = stats("space (card toggle)", lat_space)
        results["f1_escape_help"] = stats("f1/escape (help modal)", lat_help)
        results["all_keys"] = stats("all keys", lat_space + lat_help)
        results["downloads_running_after"] = still
    finally:
        tmux("kill-session", "-t", SESSION)
        hub.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
