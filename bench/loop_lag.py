"""Event-loop lag of the TUI while two rate-capped downloads run (headless, in-process).

    .venv/bin/python -m bench.loop_lag [--seconds 10] [--file-mb 200] [--rate-mb 2]

Runs DistillApp headless (``run_test``) with the real DownloadManager against the loopback
fake Hub, starts two downloads from the Model Manager by keys, and samples how late a 5 ms
``asyncio.sleep`` wakes up on the app's loop. Lag there is the floor of key -> repaint
latency; hashing or disk writes on the loop would show as spikes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="distill-lag-"))
    for var, sub in (
        ("XDG_CONFIG_HOME", "c"),
        ("XDG_DATA_HOME", "d"),
        ("XDG_STATE_HOME", "s"),
        ("XDG_CACHE_HOME", "k"),
        ("HOME", "home"),
    ):
        os.environ[var] = str(tmp / sub)
    os.environ["HF_TOKEN_PATH"] = str(tmp / "none")
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext

    cfg = tmp / "c" / "distill"
    cfg.mkdir(parents=True)
    # the Hub runs in its own process: its threads must not share this process's GIL
    hub = subprocess.Popen(  # noqa: ASYNC220 - before the app starts; nothing to block yet
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
        hub.stdout.readline()
        (cfg / "settings.json").write_text(
            json.dumps({"schema_version": 1, "download_concurrency": 2})
        )
        app = DistillApp(CoreContext.build())
        lags: list[float] = []
        worst: list[tuple[float, float]] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f3", "down", "d", "down", "d")
            cpu0 = time.process_time()
            t_end = time.perf_counter() + args.seconds
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                await asyncio.sleep(0.005)
                lag = time.perf_counter() - t0 - 0.005
                lags.append(lag)
                worst.append((lag, t0 - (t_end - args.seconds)))
            cpu = time.process_time() - cpu0
            running = [e.state.value for e in app.downloads.events()]
            done_bytes = sum(e.bytes_done for e in app.downloads.events())
            await app.downloads.aclose()
    finally:
        hub.terminate()
        hub.wait()
    lags.sort()
    q = lambda p: lags[min(len(lags) - 1, int(p * (len(lags) - 1)))] * 1000  # noqa: E731
    return {
        "samples": len(lags),
        "lag_p50_ms": round(q(0.5), 2),
        "lag_p95_ms": round(q(0.95), 2),
        "lag_p99_ms": round(q(0.99), 2),
        "lag_max_ms": round(lags[-1] * 1000, 2),
        "lag_mean_ms": round(statistics.fmean(lags) * 1000, 2),
        "download_states_at_end": running,
        "mb_downloaded": round(done_bytes / 1e6, 1),
        "process_cpu_s": round(cpu, 2),
        "worst_lags_ms_at_s": [
            (round(lag * 1000, 1), round(at, 2)) for lag, at in sorted(worst, reverse=True)[:5]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loop_lag")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--file-mb", type=float, default=200)
    ap.add_argument("--rate-mb", type=float, default=2.0, help="MB/s per connection")
    ap.add_argument("--hub-port", type=int, default=18680)
    args = ap.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
