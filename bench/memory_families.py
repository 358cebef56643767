"""The buffers sd.cpp allocates for the Z-Image and ESRGAN families, next to the memory model.

``python bench/memory_families.py [--only zimage|qwen3|esrgan] [--dir DIR]``

Each measurement starts the installed engine (stable-diffusion-cpp-python, through the binding
with ``verbose=True``) in a child process on synthetic files of the real shapes, reads sd.cpp's
own DEBUG line ``<runner> compute buffer size: X MB`` and stops the child once it is logged
(before the slow compute: a Z-Image step is 15-40 s on 2 cores). Buffers depend on shapes,
not on weight values; the files are zero weights stored sparse (tests/tinymodels.py,
tests/tiny_esrgan.py), written in well under a second.

* ``zimage``: the REAL Z-Image DiT shape (make_zimage_set) at 64² .. 1024², flash attention on
  and off, prompt "a lighthouse at dusk" (32 text tokens once padded).
* ``qwen3``: a Qwen3-4B of the real shape (36 layers, hidden 2560, FFN 9728) as Z-Image's
  text encoder, prompts of 128 / 254 / 508 tokens.
* ``esrgan``: the RRDBNet x4 (num_feat 64: sd.cpp's only width; 1 block) at tiles 32 .. 256.

tests/test_memory_model.py holds the numbers this printed (CPU build 0.4.7, 2 cores).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill_tui import memory_model as mm  # noqa: E402
from distill_tui.catalog import load_catalog_file  # noqa: E402
from distill_tui.resources import bundled_catalog_path  # noqa: E402
from tests import tinymodels as tm  # noqa: E402
from tests.tiny_esrgan import write_pth  # noqa: E402

MiB = 2**20
GEN = (
    "import sys, stable_diffusion_cpp as s\n"
    "fa = sys.argv[5] == '1'\n"
    "sd = s.StableDiffusion(diffusion_model_path=sys.argv[1], llm_path=sys.argv[2],"
    " vae_path=sys.argv[3], vae_decode_only=True, n_threads=2, verbose=True,"
    " diffusion_flash_attn=fa, flash_attn=fa, enable_mmap=True)\n"
    "w = int(sys.argv[6])\n"
    "sd.generate_image(prompt=sys.argv[4], width=w, height=w, sample_steps=1, cfg_scale=1.0,"
    " seed=1)\n"
)
UP = (
    "import sys, stable_diffusion_cpp as s\n"
    "from PIL import Image\n"
    "up = s.StableDiffusion(upscaler_path=sys.argv[1], upscale_tile_size=int(sys.argv[2]),"
    " n_threads=2, verbose=True)\n"
    "n = int(sys.argv[3])\n"
    "up.upscale(images=[Image.new('RGB', (n, n), (120, 80, 40))], upscale_factor=4)\n"
)


def logged(args: list[str], runner: str, timeout: float = 300) -> float:
    """Run a child, return the MiB of ``<runner> compute buffer size`` once it is logged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pat = re.compile(rf"{runner} compute buffer size: ([\d.]+) MB")
    end = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = pat.search(line)
            if m:
                return float(m.group(1))
            if time.monotonic() > end:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    raise RuntimeError(f"no {runner} compute buffer logged")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("zimage", "qwen3", "esrgan"))
    ap.add_argument("--dir", default="/tmp/distill-memory-families")
    a = ap.parse_args()
    d = Path(a.dir)
    z = tm.make_zimage_set(d / "zimage")
    files = [str(z[k]) for k in ("diffusion", "text_encoder", "vae")]
    arch = mm.ARCHS["z-image-6b"]
    if a.only in (None, "zimage"):
        for fa in ("1", "0"):
            for w in (64, 256, 512, 1024):
                got = logged([GEN, *files, "a lighthouse at dusk", fa, str(w)], "z_image")
                est = mm.dit_compute(arch, w, w, fa == "1", txt_tokens=32) / MiB
                print(
                    f"zimage {w}² flash={fa}: logged {got:.2f} MiB, model {est:.2f} "
                    f"({(est - got) / got:+.1%})",
                    flush=True,
                )
    if a.only in (None, "qwen3"):
        llm = d / "qwen3-4b-shape.gguf"
        if not llm.exists():
            tm.write_zimage_llm(llm, hidden=2560, layers=36, inter=9728)
        for words in (60, 123, 250):  # "lighthouse" is 2 tokens; the template adds 8
            prompt = " ".join(["lighthouse"] * words)
            got = logged([GEN, files[0], str(llm), files[2], prompt, "1", "64"], "qwen3")
            print(
                f"qwen3-4b {2 * words + 8} tokens: logged {got:.2f} MiB, model "
                f"{arch.te_compute / MiB:.0f}",
                flush=True,
            )
    if a.only in (None, "esrgan"):
        up = load_catalog_file(bundled_catalog_path()).require("realesrgan-x4plus")
        pth = write_pth(d / "x4.pth")
        for tile, n in ((32, 128), (64, 128), (128, 128), (256, 256), (128, 64)):
            got = logged([UP, str(pth), str(tile), str(n)], "esrgan")
            est = mm.upscale_compute(up, tile, n, n) / MiB
            print(f"esrgan tile {tile} on {n}²: logged {got:.2f} MiB, model {est:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
