"""Download benchmark: the same file from a loopback fake Hub through distill, curl and aria2c.

    .venv/bin/python bench/download.py [--size-mib 256] [--big-mib 2048] [--cap-mbps 25]

Modes: uncapped, and capped (the server limits each connection to ``--cap-mbps`` MB/s, like a
CDN). Reports wall time, throughput and ratios, distill's peak RSS (also for a ``--big-mib``
file, to show it is flat), and distill download+verify vs download alone (hashing disabled).
Every download is checked against the payload's sha256 afterwards (outside the timing).
Numbers, not a test: nothing here asserts.

All tools are served by the same in-process fake Hub in the same run (uncapped bodies go out
with sendfile; capped ones are paced in ~10 ms sendfile bursts). distill's row "adaptive" is
what a user gets by default (settings.connections_per_file 8, up to 16 when the server caps
each connection). curl and aria2c neither hash nor fsync; the "curl + sha256 + fsync" row is
that work done after curl, for reference (the ratios use plain curl, as the targets do).
Peak RSS is GNU time's %M of each process (max over the runs of a cell).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakehub import FakeHub  # noqa: E402

REPO = "bench/Bench-GGUF"
CLI = "distill models download (CLI, start to exit)"
MiB = 1 << 20


def make_payload(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(8 * MiB)
    with open(path, "wb") as fh:
        left = size
        i = 0
        while left > 0:
            chunk = block[: min(len(block), left)]
            chunk = i.to_bytes(8, "little") + chunk[8:]  # not a repeating pattern per block
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            i += 1
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


GNU_TIME = "/usr/bin/time"


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, int, str]:
    """(seconds, peak RSS bytes, exit code, output tail) of a child process.

    The peak RSS comes from GNU time when it is there: the rusage of a child forked from this
    (big) Python process keeps the parent's high-water mark across exec, so curl and aria2c
    would show ~50 MB that is not theirs. The extra fork+exec of time is ~1 ms."""
    rss_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="dl-bench-rss-")
        os.close(fd)
        cmd = [GNU_TIME, "-f", "%M", "-o", rss_file, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss * 1024
    if rss_file is not None:
        try:
            rss = int(Path(rss_file).read_text().split()[-1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        os.unlink(rss_file)
    return elapsed, rss, proc.returncode, out.decode(errors="replace")[-2000:]


# ---- the distill child -----------------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    """Run one DownloadManager download of the bench file (in the XDG env of the parent)."""
    import asyncio

    from distill_tui.context import CoreContext
    from distill_tui.downloads import DownloadManager

    ctx = CoreContext.build()
    overrides = {} if args.verify else {"verify": False}

    async def go() -> tuple[str, float]:
        mgr = DownloadManager(
            ctx.catalog,
            ctx.settings,
            ctx.inventory,
            token=None,
            connections=args.connections,
            disk_margin=0,
            fetch_overrides=overrides,
        )
        t0 = time.perf_counter()
        try:
            ev = await mgr.wait(mgr.enqueue("bench", "diffusion", "F16"))
            secs = time.perf_counter() - t0  # verified and published; shutting down is not
        finally:
            await mgr.aclose()
        return ev.state.value + (f" {ev.error}" if ev.error else ""), secs

    state, secs = asyncio.run(go())
    print(json.dumps({"state": state, "seconds": secs}))
    return 0 if state == "done" else 1


def hf_cache_put(cache: Path, repo: str, path: str, src: Path, sha: str) -> None:
    """Lay ``src`` out as the hf client does (blobs/<sha256>, snapshots/<commit>/<path> -> the
    blob, refs/main), the blob a hard link to ``src`` (no 1 GiB copy)."""
    owner, name = repo.split("/")
    rd = cache / f"models--{owner}--{name}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    blob = rd / "blobs" / sha
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        os.link(src, blob)
    snap = rd / "snapshots" / commit / path
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (rd / "refs").mkdir(exist_ok=True)
    (rd / "refs" / "main").write_text(commit)


def write_catalog(path: Path, url: str, size: int, sha: str, tiny_url: str, tiny: bytes) -> None:
    tiny_sha = hashlib.sha256(tiny).hexdigest()
    cat = {
        "catalogVersion": 1000,
        "models": [
            {
                "id": "bench",
                "name": "Bench",
                "vae": {
                    "file": "vae/tiny.safetensors",
                    "size": len(tiny),
                    "downloadUrl": tiny_url,
                    "sha256": tiny_sha,
                },
                "diffusion": {
                    "quants": [
                        {
                            "id": "F16",
                            "label": "F16",
                            "file": "diffusion/big.gguf",
                            "size": size,
                            "downloadUrl": url,
                            "sha256": sha,
                        }
                    ]
                },
                "textEncoder": {
                    "quants": [
                        {
                            "id": "Q8_0",
                            "label": "Q8_0",
                            "file": "te/tiny.gguf",
                            "size": len(tiny),
                            "downloadUrl": tiny_url,
                            "sha256": tiny_sha,
                        }
                    ]
                },
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cat))
    # the bundled catalog's models are merged in only when its version is newer: it is not.


class Bench:
    def __init__(self, work: Path, hub: FakeHub):
        self.work = work
        self.hub = hub
        self.n = 0
        self.repeat = 1

    def env(self) -> dict:
        self.n += 1
        base = self.work / f"run{self.n}"
        env = dict(os.environ)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            env.pop(var, None)
        env.update(
            XDG_CONFIG_HOME=str(base / "config"),
            XDG_DATA_HOME=str(base / "data"),
            XDG_STATE_HOME=str(base / "state"),
            XDG_CACHE_HOME=str(base / "cache"),
            HF_TOKEN_PATH=str(base / "none"),
            PYTHONPATH=str(ROOT),
        )
        return env

    def best(self, fn, *a, repeat: int | None = None, **kw):
        """Best of ``repeat`` runs (this box is small and shared: the minimum is the signal);
        the median of the runs is kept beside it (``median``) to show the spread."""
        runs = [fn(*a, **kw) for _ in range(repeat or self.repeat)]
        ok = [r for r in runs if r and r["ok"]]
        if not ok:
            return runs[0]
        times = sorted(r.get("inner") or r["seconds"] for r in ok)
        best = dict(min(ok, key=lambda r: r.get("inner") or r["seconds"]))
        best["median"] = (
            times[len(times) // 2]
            if len(times) % 2
            else sum(times[len(times) // 2 - 1 : len(times) // 2 + 1]) / 2
        )
        best["peak_rss"] = max(r["rss"] for r in ok)
        return best

    def distill(self, url: str, size: int, sha: str, connections: int, verify: bool = True):
        env = self.env()
        cfg = Path(env["XDG_CONFIG_HOME"]) / "distill" / "model-catalog.json"
        write_catalog(cfg, url, size, sha, self.hub.resolve_url(REPO, "tiny.bin"), b"tiny" * 64)
        cmd = [sys.executable, __file__, "--child", "--connections", str(connections)]
        if not verify:
            cmd.append("--no-verify")
        secs, rss, code, out = run_measured(cmd, env)
        dest = Path(env["XDG_DATA_HOME"]) / "distill" / "models" / "diffusion" / "big.gguf"
        ok = code == 0 and dest.exists() and (not verify or sha256_file(dest) == sha)
        if verify is False and dest.exists():
            ok = sha256_file(dest) == sha  # checked outside the timing
        inner = None
        for line in out.splitlines():
            if line.startswith("{"):
                inner = json.loads(line)["seconds"]
        shutil.rmtree(Path(env["XDG_DATA_HOME"]).parent, ignore_errors=True)
        return {"seconds": secs, "inner": inner, "rss": rss, "ok": ok, "out": out if not ok else ""}

    def cli(self, url: str, size: int, sha: str, hf_blob: Path | None = None):
        """``distill models download bench --only diffusion`` as a user runs it, timed from
        start to exit (imports, HEAD, preflight, transfer, verify, fsync, publish, exit).
        ``hf_blob``: an HF cache (HF_HOME in this run's dir) holds the file as that blob: the
        run must link it (same inode), not fetch it."""
        env = self.env()
        base = Path(env["XDG_CONFIG_HOME"]).parent
        cfg = Path(env["XDG_CONFIG_HOME"]) / "distill" / "model-catalog.json"
        write_catalog(cfg, url, size, sha, self.hub.resolve_url(REPO, "tiny.bin"), b"tiny" * 64)
        if hf_blob is not None:
            env["HF_HOME"] = str(base / "hf")
            hf_cache_put(base / "hf" / "hub", REPO, "big.gguf", hf_blob, sha)
        served = self.hub.bytes_served()
        distill = Path(sys.executable).with_name("distill")
        exe = [str(distill)] if distill.exists() else [sys.executable, "-m", "distill_tui"]
        secs, rss, code, out = run_measured(
            [*exe, "models", "download", "bench", "--only", "diffusion"], env
        )
        dest = Path(env["XDG_DATA_HOME"]) / "distill" / "models" / "diffusion" / "big.gguf"
        if hf_blob is not None:
            ok = code == 0 and os.stat(dest).st_ino == os.stat(hf_blob).st_ino
            ok = ok and self.hub.bytes_served() == served  # not one byte from the Hub
        else:
            ok = code == 0 and dest.exists() and sha256_file(dest) == sha
        shutil.rmtree(base, ignore_errors=True)
        return {"seconds": secs, "rss": rss, "ok": ok, "out": out if not ok else ""}

    def curl(self, url: str, sha: str):
        dest = self.work / "curl.out"
        secs, rss, code, out = run_measured(
            ["curl", "-sS", "-L", "-H", "Accept-Encoding: identity", "-o", str(dest), url]
        )
        ok = code == 0 and sha256_file(dest) == sha
        dest.unlink(missing_ok=True)
        return {"seconds": secs, "rss": rss, "ok": ok, "out": out if not ok else ""}

    def curl_verified(self, url: str, sha: str):
        """What distill does on top of curl, done after it: sha256 of the file and fsync
        (``curl -o f URL && sha256sum f && sync``) - an apples-to-apples reference."""
        dest = self.work / "curl.out"
        secs, rss, code, out = run_measured(
            ["curl", "-sS", "-L", "-H", "Accept-Encoding: identity", "-o", str(dest), url]
        )
        t0 = time.perf_counter()
        ok = code == 0 and sha256_file(dest) == sha
        with open(dest, "rb") as fh:
            os.fsync(fh.fileno())
        secs += time.perf_counter() - t0
        dest.unlink(missing_ok=True)
        return {"seconds": secs, "rss": rss, "ok": ok, "out": out if not ok else ""}

    def aria2c(self, url: str, sha: str):
        if not shutil.which("aria2c"):
            return None
        d = self.work / "aria"
        d.mkdir(exist_ok=True)
        secs, rss, code, out = run_measured(
            [
                "aria2c",
                "-x16",
                "-s16",
                "-k1M",
                "--file-allocation=falloc",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                "--console-log-level=warn",
                "--summary-interval=0",
                "-d",
                str(d),
                "-o",
                "aria.out",
                url,
            ]
        )
        ok = code == 0 and sha256_file(d / "aria.out") == sha
        shutil.rmtree(d, ignore_errors=True)
        return {"seconds": secs, "rss": rss, "ok": ok, "out": out if not ok else ""}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--big-mib", type=int, default=2048, help="0 to skip the RSS flatness run")
    p.add_argument("--cap-mbps", type=float, default=25.0, help="MB/s per connection (capped mode)")
    p.add_argument("--connections", type=int, default=8, help="distill's default")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=3, help="best of N runs per cell")
    p.add_argument("--modes", choices=("both", "uncapped", "capped"), default="both")
    p.add_argument(
        "--only-cli",
        action="store_true",
        help="only curl, aria2c, the references and the distill CLI rows (no in-process rows)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-verify", dest="verify", action="store_false", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="distill-bench-", dir=args.workdir))
    hub = FakeHub(work / "hub").start()
    try:
        size = args.size_mib * MiB
        print(f"payload {args.size_mib} MiB in {work} ...", flush=True)
        sha = make_payload(work / "payload.bin", size)
        hub.add_file(REPO, "big.gguf", work / "payload.bin")
        hub.add_file(REPO, "tiny.bin", b"tiny" * 64)
        url = hub.resolve_url(REPO, "big.gguf")
        b = Bench(work, hub)
        b.repeat = args.repeat

        def label(c: int) -> str:
            if c == args.connections and c < 16:
                return f"distill ({c} conn, adaptive <= {min(16, 2 * c)}: the default)"
            return f"distill ({c} conn)"

        rows = []
        for mode, rate in (
            ("uncapped", None),
            (f"capped {args.cap_mbps:g} MB/s/conn", args.cap_mbps * 1e6),
        ):
            if args.modes != "both" and (rate is None) != (args.modes == "uncapped"):
                continue
            hub.rate = rate
            conns = sorted({args.connections, 16})

            # capped, curl's one connection is paced exactly: one run says it all
            once = 1 if rate else None
            res = {
                "curl": b.best(b.curl, url, sha, repeat=once),
                "aria2c -x16 -s16": b.best(b.aria2c, url, sha),
                "curl + sha256 + fsync (reference)": b.best(b.curl_verified, url, sha, repeat=once),
            }
            res[CLI] = b.best(b.cli, url, size, sha)
            if not args.only_cli:
                for c in conns:
                    res[label(c)] = b.best(b.distill, url, size, sha, c)
                res[f"distill ({args.connections} conn, no verify)"] = b.best(
                    b.distill, url, size, sha, args.connections, verify=False
                )
            rows.append((mode, res))
            print(f"  {mode}: done", flush=True)
        hub.rate = None
        reuse = b.best(b.cli, url, size, sha, work / "payload.bin")
        big = None
        if args.big_mib:
            hub.rate = None
            bsize = args.big_mib * MiB
            print(f"payload {args.big_mib} MiB for the RSS run ...", flush=True)
            bsha = make_payload(work / "big.bin", bsize)
            hub.add_file(REPO, "huge.gguf", work / "big.bin")
            big = b.distill(hub.resolve_url(REPO, "huge.gguf"), bsize, bsha, args.connections)
            (work / "big.bin").unlink(missing_ok=True)

        print()
        print(
            f"file {args.size_mib} MiB, loopback fake Hub (302 to CDN port), {os.cpu_count()} CPUs, "
            f"best of {args.repeat} runs per cell"
        )
        print()
        print("MB/s and ratios use the transfer time: for distill from enqueue to the verified,")
        print("published file (inside the process); 'wall' adds process start-up (Python imports).")
        print()
        print(
            "| mode | tool | MB/s | transfer s | median s | wall s | vs curl | vs aria2c | peak RSS |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for mode, res in rows:
            cu, ar = res["curl"], res["aria2c -x16 -s16"]
            for tool, r in res.items():
                if r is None:
                    print(f"| {mode} | {tool} | skipped: aria2c not installed | | | | | | |")
                    continue
                t = r.get("inner") or r["seconds"]
                vc = f"{cu['seconds'] / t:.2f}x" if r["ok"] and cu["ok"] else "-"
                va = f"{ar['seconds'] / t:.2f}x" if ar and r["ok"] and ar["ok"] else "-"
                rate = f"{size / t / 1e6:.1f}" if r["ok"] else "FAIL"
                med = f"{r['median']:.2f}" if r.get("median") else "-"
                rss = r.get("peak_rss", r["rss"])
                print(
                    f"| {mode} | {tool} | {rate} | {t:.2f} | {med} | {r['seconds']:.2f} | {vc} | "
                    f"{va} | {rss / 1e6:.0f} MB |"
                )
        print()
        for mode, res in rows:
            cl, ar = res[CLI], res["aria2c -x16 -s16"]
            if cl["ok"] and ar and ar["ok"]:
                print(
                    f"{mode}: distill CLI {cl['seconds']:.2f}s / aria2c {ar['seconds']:.2f}s = "
                    f"{cl['seconds'] / ar['seconds']:.2f}x the time (best of {args.repeat}; "
                    f"medians {cl['median']:.2f}s / {ar['median']:.2f}s = "
                    f"{cl['median'] / ar['median']:.2f}x)"
                )
        print(
            f"reuse from the HF cache (distill models download, hard link, 0 bytes from the Hub): "
            f"{reuse['seconds']:.2f}s start to exit (median {reuse.get('median', 0):.2f}s), "
            f"ok={reuse['ok']}"
        )
        dflt = label(args.connections)
        for mode, res in rows:
            if dflt not in res:
                continue
            v = res[dflt]
            nv = res[f"distill ({args.connections} conn, no verify)"]
            if v["ok"] and nv["ok"]:
                print(
                    f"{mode}: download+verify {v['inner']:.2f}s vs download alone "
                    f"{nv['inner']:.2f}s -> verify adds "
                    f"{(v['inner'] / nv['inner'] - 1) * 100:+.1f}% (best of {args.repeat}); "
                    f"medians {v['median']:.2f}s vs {nv['median']:.2f}s -> "
                    f"{(v['median'] / nv['median'] - 1) * 100:+.1f}%"
                )
        if big:
            small = rows[0][1][dflt]
            print(
                f"peak RSS: {args.size_mib} MiB -> {small['peak_rss'] / 1e6:.0f} MB, "
                f"{args.big_mib} MiB -> {big['rss'] / 1e6:.0f} MB "
                f"({args.big_mib * MiB / big['inner'] / 1e6:.0f} MB/s, ok={big['ok']})"
            )
        for mode, res in rows:
            for tool, r in res.items():
                if r and not r["ok"]:
                    print(f"FAILED {mode} {tool}:\n{r['out']}")
        if not reuse["ok"]:
            print(f"FAILED reuse from the HF cache:\n{reuse['out']}")
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
