"""Engine overhead benchmark on the tiny synthetic FLUX.2 Klein set (one run, no network).

    .venv/bin/python -m bench.engine [--reps 7] [--models DIR] [--set fast|slow] [--json]

Measures, in one process run:

* direct in-process ``StableDiffusion.generate_image`` (loaded once here) vs the same
  generation through ``EngineClient`` -> child (loaded once there), alternating, both warm:
  median wall time and the overhead ratio (target <= 1.05). The child also writes the PNG;
  the "direct + save" column does the same work in-process for a like-for-like ratio;
* load time (direct constructor; child: spawn-to-ready and the load itself);
* first (cold child: start + load + generate) vs second generation through the client;
* peak RSS of the child (``VmHWM``).

Progress goes to stderr; the table (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", help="a dir with dit.gguf, llm.gguf, vae.safetensors")
    ap.add_argument("--set", default="fast", choices=["fast", "slow"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    # keep native printf output off our stdout (the table goes there)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from tests import tinymodels

    tmp = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    if a.models:
        d = Path(a.models)
        models = {k: d / v for k, v in tinymodels.FILE_NAMES.items()}
    else:
        models = tinymodels.make_set(tmp / "models", a.set)

    from distill_tui.engine.client import EngineClient
    from distill_tui.engine.protocol import GenerateRequest, LoadRequest
    from distill_tui.outputs import save_png

    load = LoadRequest(
        diffusion_model_path=str(models["diffusion"]),
        llm_path=str(models["text_encoder"]),
        vae_path=str(models["vae"]),
        n_threads=a.threads,
        flash_attn=True,
    )
    sizes = [(64, 64, 2), (128, 128, 4)]

    def gen_req(w: int, h: int, steps: int) -> GenerateRequest:
        return GenerateRequest(
            prompt="a lovely cat",
            width=w,
            height=h,
            steps=steps,
            cfg_scale=1.0,
            seed=1,
            output_dir=str(tmp / "child"),
            model_id="tiny-klein",
        )

    results: dict = {"reps": a.reps, "set": a.set, "threads": a.threads, "sizes": {}}

    async def run() -> None:
        # ---- child: cold start, first vs second generation ---------------------------
        client = EngineClient()
        t0 = time.perf_counter()
        ready = await client.start()
        t_ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        first = await client.generate(load, gen_req(64, 64, 2))
        t_first = time.perf_counter() - t1
        t2 = time.perf_counter()
        await client.generate(load, gen_req(64, 64, 2))
        t_second = time.perf_counter() - t2
        results.update(
            backend=ready.backend,
            version=ready.version,
            child_spawn_to_ready_s=t_ready,
            child_load_s=first.timings.load,
            child_first_generation_s=t_first,
            child_second_generation_s=t_second,
        )

        # ---- direct, in this process -----------------------------------------------
        from stable_diffusion_cpp import StableDiffusion

        t3 = time.perf_counter()
        sd = StableDiffusion(
            diffusion_model_path=load.diffusion_model_path,
            llm_path=load.llm_path,
            vae_path=load.vae_path,
            n_threads=a.threads,
            vae_decode_only=True,
            diffusion_flash_attn=True,
            flash_attn=True,
            verbose=False,
        )
        results["direct_load_s"] = time.perf_counter() - t3

        def direct(w: int, h: int, steps: int, save: bool) -> float:
            t = time.perf_counter()
            imgs = sd.generate_image(
                prompt="a lovely cat",
                width=w,
                height=h,
                sample_steps=steps,
                cfg_scale=1.0,
                seed=1,
                sample_method="euler",
            )
            if save:
                save_png(imgs[0], tmp / "direct", {"seed": 1, "prompt": "a lovely cat"})
            return time.perf_counter() - t

        for w, h, steps in sizes:
            direct(w, h, steps, True)  # warm
            await client.generate(load, gen_req(w, h, steps))  # warm
            d_raw, d_save, c_all, ipc = [], [], [], []
            for i in range(a.reps):
                print(f"  {w}x{h}/{steps} rep {i + 1}/{a.reps}", file=sys.stderr)
                d_raw.append(direct(w, h, steps, False))
                d_save.append(direct(w, h, steps, True))
                t = time.perf_counter()
                res = await client.generate(load, gen_req(w, h, steps))
                c_all.append(time.perf_counter() - t)
                ipc.append(c_all[-1] - res.timings.total)  # round trip minus child's own time
            for stat, f in (("median", statistics.median), ("min", min)):
                results["sizes"][f"{w}x{h}/{steps} steps, {stat}"] = {
                    "direct_s": f(d_raw),
                    "direct_save_s": f(d_save),
                    "child_s": f(c_all),
                    "ratio_vs_direct": f(c_all) / f(d_raw),
                    "ratio_vs_direct_save": f(c_all) / f(d_save),
                    "overhead_ms": (f(c_all) - f(d_save)) * 1000,
                    "ipc_ms": f(ipc) * 1000,
                }
        pid = client.pid
        assert pid is not None
        results["child_peak_rss_mb"] = _vm(pid, "VmHWM") / 2**20
        results["child_rss_now_mb"] = _vm(pid, "VmRSS") / 2**20
        import resource

        results["bench_process_peak_rss_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        await client.shutdown()

    load_before = os.getloadavg()
    asyncio.run(run())
    results["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]

    if a.json:
        out.write(json.dumps(results, indent=2) + "\n")
        return 0
    r = results
    lines = [
        f"backend {r['backend']}, stable-diffusion-cpp-python {r['version']}, set {r['set']}, "
        f"n_threads {r['threads']}, {r['reps']} alternating reps, both sides warm; "
        f"1-min load average before/after: {r['loadavg_before_after']} on {os.cpu_count()} CPUs",
        "",
        "| generation | direct generate_image | direct + save PNG | through child (client round trip) "
        "| ratio vs direct | ratio vs direct+save | overhead | IPC (client wall - child time) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, v in r["sizes"].items():
        lines.append(
            f"| {k} | {v['direct_s'] * 1000:.1f} ms | {v['direct_save_s'] * 1000:.1f} ms | "
            f"{v['child_s'] * 1000:.1f} ms | {v['ratio_vs_direct']:.3f} | "
            f"{v['ratio_vs_direct_save']:.3f} | {v['overhead_ms']:+.1f} ms | "
            f"{v['ipc_ms']:.1f} ms |"
        )
    lines += [
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| load, direct (constructor) | {r['direct_load_s']:.2f} s |",
        f"| child spawn -> ready (python + import + backend probe) | {r['child_spawn_to_ready_s']:.2f} s |",
        f"| child load (LoadedEvent.seconds) | {r['child_load_s']:.2f} s |",
        f"| first generation via client (load + generate, child already up) | {r['child_first_generation_s']:.2f} s |",
        f"| second generation via client (model kept loaded) | {r['child_second_generation_s']:.2f} s |",
        f"| child peak RSS (VmHWM) | {r['child_peak_rss_mb']:.0f} MB |",
        f"| bench process peak RSS (direct side) | {r['bench_process_peak_rss_mb']:.0f} MB |",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
