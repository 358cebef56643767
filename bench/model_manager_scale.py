"""The Model Manager (F3) with a large user catalog: first paint and key -> repaint.

    .venv/bin/python -m bench.model_manager_scale [--models 300] [--size 120x40] [--presses 40] [--on-disk 2]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python -m bench.model_manager_scale  # before

A temporary XDG tree holds a user catalog of ``--models`` models (the bundled two plus copies
of FLUX.2 Klein 4B under their own ids and file names; catalogVersion equal to the bundled one,
so the user copy is used as it is). ``distill`` runs on a pty of our own (bench/tui_latency.py's
PtyTerm: keys written as bytes, output read with timestamps), and the bench measures:

1. F3 -> first paint of the Model Manager: from writing F3's bytes until the output holds the
   screen's tab bar and the expanded card's "Diffusion Model" section (``--f3-runs`` times, a
   fresh process each time);
2. key -> repaint: ``down`` / ``up`` walking the rows, ``space`` collapsing/expanding a card
   header, and ``right`` / ``left`` on the tab bar switching between "All Models" and "Image
   Generation" (the cards of the tab shown from the top), from writing the key until the
   terminal receives the changed frame (the focused row, the card's ▶/▼ marker, any output
   for a tab), and ``enter`` choosing a quant of the first card (two of its diffusion quants
   are on disk as sparse files: the choice is saved to settings.json and every mounted card
   redrawn); p50 / p95 / max, and distill's CPU per key.
3. ``distill models list`` wall time with the same catalog (``--list-models`` models, default
   1000: the largest catalog distill accepts).

Nothing of the user's is read or written.
"""

from __future__ import annotations

import argparse
import copy
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

from bench.tui_latency import PtyTerm, stats  # noqa: E402

KEYS = {"Right": b"\x1b[C", "Left": b"\x1b[D", "ShiftTab": b"\x1b[Z"}


def _files(m: dict) -> list[dict]:
    """Every file entry of a catalog model: v3 components (quants or one file) or the v2
    sections (diffusion / textEncoder quants and the VAE)."""
    if "components" in m:
        return [f for c in m["components"] for f in (c.get("quants") or [c["file"]])]
    return [q for sec in ("diffusion", "textEncoder") for q in m[sec]["quants"]] + [m["vae"]]


def big_catalog(n: int) -> dict:
    """The bundled catalog plus copies of its first model up to ``n`` models in all."""
    bundled = json.loads((ROOT / "catalog" / "model-catalog.json").read_text())
    models = list(bundled["models"])
    template = models[0]
    i = 0
    while len(models) < n:
        i += 1
        m = copy.deepcopy(template)
        m["id"] = f"scale-{i:05d}"
        m["name"] = f"Scale test model {i:05d}"
        m["description"] = f"Copy {i} of {template['name']} (bench/model_manager_scale.py)."
        for f in _files(m):
            f["file"] = f"scale/{i:05d}/{f['file']}"
            f.pop("sha256", None)
            f.pop("mirrors", None)
            f["downloadUrl"] = (
                f["downloadUrl"].replace(".gguf", f"-{i}.gguf")
                if f["downloadUrl"].endswith(".gguf")
                else f"{f['downloadUrl']}?copy={i}"
            )
        models.append(m)
    return {"catalogVersion": bundled["catalogVersion"], "models": models[:n]}


def make_env(tmp: Path, n: int, on_disk: int = 2) -> dict[str, str]:
    cfg = tmp / "config" / "distill"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "model-catalog.json").write_text(json.dumps(big_catalog(n)))
    (cfg / "settings.json").write_text(json.dumps({"schema_version": 1}))
    env = {
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "HOME": str(tmp / "home"),
        "HF_TOKEN_PATH": str(tmp / "no-token"),
        "HF_HUB_CACHE": str(tmp / "cache" / "hf"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DISTILL_FAKE_DEVICES": os.environ.get("DISTILL_FAKE_DEVICES", "[]"),
        "DISTILL_FAKE_BUILD": os.environ.get("DISTILL_FAKE_BUILD", "cpu"),
        # PYTHONPATH=<another checkout> measures that tree's distill_tui (before/after)
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
    }
    downloaded(env, on_disk)
    return env


def downloaded(env: dict[str, str], quants: int) -> None:
    """The first model's first ``quants`` diffusion quants on disk (sparse files of their
    size, recorded in the inventory): rows ``enter`` can choose."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from distill_tui.context import CoreContext
        from distill_tui.paths import AppPaths

        core = CoreContext.build(AppPaths.from_env())
        model = core.catalog.models[0]
        for q in model.section("diffusion").quants[:quants]:
            path = core.inventory.abs_path(q.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.truncate(q.size)
            core.inventory.record(q.file, q.size, None)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used: on a busy box the wall time of a paint
    also counts the time other processes had the CPU; this does not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def f3_paint(env: dict[str, str], w: int, h: int, timeout: float) -> tuple[float, float, PtyTerm]:
    """(wall seconds, CPU seconds of distill) from F3 until the Model Manager is painted."""
    term = PtyTerm(env, w, h, PtyTerm.XTERM_ANSWERS)
    term.wait_marker(term.t_spawn, b"Gallery", timeout=60)
    time.sleep(1.0)  # the Generate screen settles (textual-image loads on a thread)
    cpu0 = cpu_seconds(term.pid)
    t0 = term.press("F3")
    term.wait_marker(t0, b"All Models", timeout=timeout)
    wall = term.wait_marker(t0, b"Diffusion Model", timeout=timeout)
    return wall, cpu_seconds(term.pid) - cpu0, term


def settle(term: PtyTerm, t0: float, timeout: float = 120.0) -> float:
    """Seconds from ``t0`` until distill is idle (under 30 ms of CPU in half a second): the
    cards after the first screenful are mounted after the first paint, a chunk at a time."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        cpu0, w0 = cpu_seconds(term.pid), time.perf_counter()
        time.sleep(0.5)
        if cpu_seconds(term.pid) - cpu0 < 0.03:
            return w0 - t0
    raise TimeoutError("distill never went idle")


def keys(
    term: PtyTerm, presses: int, interval: float, quants: bool = True
) -> dict[str, list[float]]:
    """down/up on the rows (the highlighted row's ``>`` moves: any output after the key is the
    repaint, so the time to the first output byte is measured) and space on a card header."""
    out: dict[str, list[float]] = {"down_up": [], "space": [], "down_up_cpu": []}
    for i in range(presses):
        key = "Down" if i % 2 == 0 else "Up"
        cpu0 = cpu_seconds(term.pid)
        t0 = term.press(key)
        out["down_up"].append(term.wait_marker(t0, b"\x1b[", timeout=10))
        time.sleep(interval)  # (the CPU of the whole interval: the key's work and any timer)
        out["down_up_cpu"].append(cpu_seconds(term.pid) - cpu0)
    # back on the first card's header (AUTO_FOCUS): space collapses / expands it
    expanded = True
    for _ in range(presses // 2):
        marker = "▶ ".encode() if expanded else "▼ ".encode()
        out["space"].append(term.wait_marker(term.press("Space"), marker, timeout=10))
        expanded = not expanded
        time.sleep(interval)
    if not expanded:  # open again (its quants are chosen below)
        os.write(term.fd, b" ")
        time.sleep(0.3)
    # the tab bar (shift+tab from the first header): right / left switch the category
    out["tabs"] = []
    t0 = time.perf_counter()
    os.write(term.fd, KEYS["ShiftTab"])
    term.wait_marker(t0, b"\x1b[", timeout=10)
    time.sleep(0.5)
    for i in range(presses // 2):
        t0 = time.perf_counter()
        os.write(term.fd, KEYS["Right" if i % 2 == 0 else "Left"])
        out["tabs"].append(term.wait_marker(t0, b"\x1b[", timeout=10))
        time.sleep(max(interval, 0.4))  # (the tab underline animates for 0.3 s)
    # back to the first card (tab: its header), down into its diffusion quants: enter
    # chooses the highlighted one (on disk), down/up move between the two (not timed)
    out["quant"] = []
    if not quants:  # (no quant on disk to choose)
        return out
    for key in (b"\t", b"\x1b[B"):
        t0 = time.perf_counter()
        os.write(term.fd, key)
        term.wait_marker(t0, b"\x1b[", timeout=10)
        time.sleep(0.3)
    for i in range(presses // 2):
        t0 = time.perf_counter()
        os.write(term.fd, b"\r")
        # the header redrawn from the saved choice ("selected set <its size>")
        out["quant"].append(term.wait_marker(t0, b"selected set", timeout=10))
        time.sleep(max(interval, 0.3))
        os.write(term.fd, b"\x1b[B" if i % 2 == 0 else b"\x1b[A")
        time.sleep(0.3)
    return out


def models_list_time(env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [str(ROOT / ".venv/bin/distill"), "models", "list"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.model_manager_scale")
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--list-models", type=int, default=1000)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--presses", type=int, default=40)
    ap.add_argument("--interval", type=float, default=0.15)
    ap.add_argument("--f3-runs", type=int, default=3)
    ap.add_argument(
        "--on-disk",
        type=int,
        default=2,
        help="diffusion quants of the first model on disk (sparse); 2 or more: enter is timed",
    )
    ap.add_argument("--list-runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for F3's paint")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))
    results: dict[str, object] = {
        "models": args.models,
        "size": args.size,
        "load_average_1min": os.getloadavg()[0],
    }
    tmp = Path(tempfile.mkdtemp(prefix="distill-scale-"))
    try:
        env = make_env(tmp, args.models, args.on_disk)
        paints, cpus = [], []
        term = None
        for run in range(args.f3_runs):
            paint, cpu, term = f3_paint(env, w, h, args.timeout)
            paints.append(paint)
            cpus.append(cpu)
            if run < args.f3_runs - 1:
                term.close()
        results["f3_first_paint"] = stats(
            f"F3 -> Model Manager painted ({args.models} models), wall", paints
        )
        results["f3_first_paint_cpu"] = stats("F3 -> Model Manager painted, distill's CPU", cpus)
        assert term is not None
        # the keys are timed once every card is mounted (idle): the steady state
        results["f3_settled_s"] = round(settle(term, time.perf_counter()), 2)
        print(
            f"after the paint, every card mounted and distill idle in {results['f3_settled_s']} s"
        )
        lat = keys(term, args.presses, args.interval, quants=args.on_disk >= 2)
        term.close()
        results["down_up"] = stats("down/up (row cursor)", lat["down_up"])
        results["down_up_cpu"] = stats("down/up, distill's CPU per key", lat["down_up_cpu"])
        results["space"] = stats("space (card collapse/expand)", lat["space"])
        results["tabs"] = stats("right/left (tab switch)", lat["tabs"])
        if lat["quant"]:
            results["quant"] = stats("enter (choose a quant: settings saved)", lat["quant"])
        results["all_keys"] = stats(
            "all keys", lat["down_up"] + lat["space"] + lat["tabs"] + lat["quant"]
        )
        if args.list_models:
            lenv = make_env(tmp / "list", args.list_models)
            results["models_list"] = stats(
                f"distill models list ({args.list_models} models)",
                models_list_time(lenv, args.list_runs),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
