"""Measure the compute buffers stable-diffusion.cpp allocates, next to distill's memory model.

``python bench/memory_model.py [--quick] [--out bench/memory_model.jsonl]``

Runs the real engine (the installed stable-diffusion-cpp-python build; CPU here) on synthetic
FLUX.2 Klein sets, one generation of 1 step per resolution, and captures sd.cpp's own DEBUG log
lines ``<runner> compute buffer size: X MB(RAM|VRAM)`` and ``params backend buffer size``.
The sets (random/zero weights, real shapes where it matters):

* ``tiny``: tests/tinymodels.py ``fast`` (DiT hidden 128, 1 head, 1+1 blocks; VAE decoder ch 32)
* ``h512``: the DiT at hidden 512 (4 heads): how the DiT buffer scales with the width
* ``deep``: hidden 128 at 2+2 blocks: the buffer does not grow with depth (ggml reuses memory)
* ``klein4b-wide``: hidden 3072, 24 heads (Klein 4B's width), 1+1 blocks, zero weights
* ``vae128``: the full-width FLUX.2 VAE decoder (ch 128, the real one) with random weights

Each line of the output is one measurement; the table printed at the end puts the measured
buffer next to :func:`distill_tui.memory_model.compute_buffers`' prediction.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests import tinymodels  # noqa: E402

BUF = re.compile(r"(\w+) compute buffer size: ([\d.]+) MB\((\w+)\)")
PROMPT = "a cat"


def write_dit(path: Path, hidden: int, double: int, single: int, ctx: int) -> Path:
    """A Klein-shaped DiT of any width/depth; zero weights (buffers do not depend on values)."""
    import gguf

    H, M = hidden, 3 * hidden
    z = np.zeros
    t: dict[str, np.ndarray] = {
        "img_in.weight": z((H, 128), np.float16),
        "time_in.in_layer.weight": z((H, 256), np.float16),
        "time_in.out_layer.weight": z((H, H), np.float16),
        "txt_in.weight": z((H, ctx), np.float16),
    }
    for b in range(double):
        for s in ("img", "txt"):
            p = f"double_blocks.{b}.{s}_"
            t[p + "attn.qkv.weight"] = z((3 * H, H), np.float16)
            t[p + "attn.norm.query_norm.scale"] = np.ones(128, np.float32)
            t[p + "attn.norm.key_norm.scale"] = np.ones(128, np.float32)
            t[p + "attn.proj.weight"] = z((H, H), np.float16)
            t[p + "mlp.0.weight"] = z((2 * M, H), np.float16)
            t[p + "mlp.2.weight"] = z((H, M), np.float16)
    for b in range(single):
        p = f"single_blocks.{b}."
        t[p + "linear1.weight"] = z((3 * H + 2 * M, H), np.float16)
        t[p + "linear2.weight"] = z((H, H + M), np.float16)
        t[p + "norm.query_norm.scale"] = np.ones(128, np.float32)
        t[p + "norm.key_norm.scale"] = np.ones(128, np.float32)
    t["final_layer.linear.weight"] = z((128, H), np.float16)
    t["final_layer.adaLN_modulation.1.weight"] = z((2 * H, H), np.float16)
    t["double_stream_modulation_img.lin.weight"] = z((6 * H, H), np.float16)
    t["double_stream_modulation_txt.lin.weight"] = z((6 * H, H), np.float16)
    t["single_stream_modulation.lin.weight"] = z((3 * H, H), np.float16)
    w = gguf.GGUFWriter(str(path), "flux")
    for name, arr in t.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def run(label, dit, llm, vae, sizes, flash, tiling=False, threads=2, prompt=PROMPT, batch=1):
    import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp
    from stable_diffusion_cpp import StableDiffusion

    lines: list[str] = []

    @sd_cpp.sd_log_callback
    def cb(level, text, data):
        lines.append(text.decode("utf-8", "replace").rstrip())

    sd_cpp.sd_set_log_callback(cb, ctypes.c_void_p(0))
    sd = StableDiffusion(
        diffusion_model_path=str(dit),
        llm_path=str(llm),
        vae_path=str(vae),
        n_threads=threads,
        vae_decode_only=True,
        diffusion_flash_attn=flash,
        flash_attn=flash,
        verbose=True,
    )
    out = []
    for s in sizes:
        lines.clear()
        t0 = time.monotonic()
        sd.generate_image(
            prompt=prompt,
            width=s,
            height=s,
            sample_steps=1,
            cfg_scale=1.0,
            seed=1,
            vae_tiling=tiling,
            batch_count=batch,
        )
        bufs = {m.group(1): float(m.group(2)) for m in map(BUF.search, lines) if m}
        rec = {
            "set": label,
            "width": s,
            "height": s,
            "flash": flash,
            "vae_tiling": tiling,
            "prompt_words": len(prompt.split()),
            "batch": batch,
            "buffers_mib": bufs,
            "seconds": round(time.monotonic() - t0, 2),
        }
        print(json.dumps(rec), flush=True)
        out.append(rec)
    del sd
    sd_cpp.sd_set_log_callback(ctypes.cast(None, sd_cpp.sd_log_callback), ctypes.c_void_p(0))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/distill-memory-model")
    ap.add_argument("--out", default=str(ROOT / "bench" / "memory_model.jsonl"))
    ap.add_argument("--quick", action="store_true", help="only the tiny set (seconds)")
    ap.add_argument("--only", nargs="*", help="experiments: tiny tiling h512 deep vae128 wide")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    fast = tinymodels.make_set(work / "fast", "fast")

    def dit(hidden: int, double: int, single: int) -> Path:
        path = work / f"dit-h{hidden}-{double}x{single}.gguf"
        return path if path.exists() else write_dit(path, hidden, double, single, ctx)

    llm, vae32 = fast["text_encoder"], fast["vae"]
    ctx = tinymodels.llm_out_width(1, 32)
    long_prompt = " ".join(["a red cat on a blue chair in a green room"] * 20)  # 200 words
    exps = {
        "tiny": lambda: (
            run("tiny", fast["diffusion"], llm, vae32, [64, 128, 256, 512], flash=False)
            + run("tiny", fast["diffusion"], llm, vae32, [64, 256, 512], flash=True)
            + run("tiny", fast["diffusion"], llm, vae32, [256], flash=True, batch=2)
            + run("tiny", fast["diffusion"], llm, vae32, [256], flash=True, prompt=long_prompt)
        ),
        "tiling": lambda: run(
            "tiny", fast["diffusion"], llm, vae32, [512, 768, 1024], flash=True, tiling=True
        ),
        "h512": lambda: (
            run("h512", dit(512, 1, 1), llm, vae32, [128, 256, 512], flash=False)
            + run("h512", dit(512, 1, 1), llm, vae32, [128, 256, 512], flash=True)
        ),
        "deep": lambda: run("deep", dit(128, 2, 2), llm, vae32, [256], flash=False),
        "vae128": lambda: run(
            "vae128",
            fast["diffusion"],
            llm,
            tinymodels.write_vae(work / "vae128.safetensors", dec_ch=128),
            [128, 256],
            flash=True,
        ),
        "wide": lambda: (
            run("klein4b-wide", dit(3072, 1, 1), llm, vae32, [128, 256, 512], flash=True)
            + run("klein4b-wide", dit(3072, 1, 1), llm, vae32, [256, 512], flash=False)
            + run("klein4b-wide", dit(3072, 1, 1), llm, vae32, [128], True, prompt=long_prompt)
        ),
    }
    chosen = a.only or (["tiny"] if a.quick else list(exps))
    recs = []
    for name in chosen:
        recs += exps[name]()
    with open(a.out, "a" if a.only else "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in recs)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    raise SystemExit(main())
