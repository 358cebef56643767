"""Tiny random-weight FLUX.2 Klein model sets that stable-diffusion.cpp runs for real.

The shapes follow ``../shared/research/sdcpp-engine.md`` §3.1: sd.cpp detects the DiT as
``Flux.2 klein`` and runs the whole Klein path (Qwen3 template + tokenizer, LLM, FLUX.2 DiT,
Flux2 flow sampler, FLUX.2 VAE decode) in well under a second at 64x64 on a CPU.

Sets (all deterministic for a given set name):

* ``fast``  (research set D): DiT H=128 1+1 blocks, Qwen3 1 layer h=32 (-> context 32),
  decoder-only VAE (ch 32). ~19 MB. Text encoding ~0.2 s.
* ``slow``  (set E-like): Qwen3 27 layers h=32 (-> 3x32 = 96 wide, Klein's 9/18/27 concat);
  a realistic silent text-encoding phase of ~4 s. For cancel / progress-UI tests.
* ``edit``  (set B-like): ``fast`` + the full-width VAE encoder (+69 MB), needed for
  reference-image edits (``vae_decode_only=False``).

``mismatched_llm(path)`` writes a Qwen3 whose output width (64) does not match the ``fast``
DiT (32): sd.cpp would SIGABRT on it; the engine's preflight must refuse it.

``make_zimage_set(dir)`` writes a Z-Image set (see the section below: sd.cpp fixes the
Z-Image DiT at its full 6B shape, so that file is large but sparse, and slow to run).

Usage: ``python -m tests.tinymodels OUTDIR [--set fast|slow|edit|zimage]`` (prints the paths
as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

VOCAB = 151936  # keep the full Qwen2 vocab: the template uses tokens near the top
DIT_HIDDEN = 128  # one head of dim 128 (FLUX.2 axes_dim sums to 128)

SETS: dict[str, dict] = {
    "fast": {"llm_layers": 1, "llm_hidden": 32, "llm_inter": 64, "encoder": False},
    "slow": {"llm_layers": 27, "llm_hidden": 32, "llm_inter": 64, "encoder": False},
    "edit": {"llm_layers": 1, "llm_hidden": 32, "llm_inter": 64, "encoder": True},
}

FILE_NAMES = {"diffusion": "dit.gguf", "text_encoder": "llm.gguf", "vae": "vae.safetensors"}


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.02) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float16)


def llm_out_width(layers: int, hidden: int) -> int:
    n = sum(1 for k in (9, 18, 27) if k <= layers)
    return hidden * n if n else hidden


def write_dit(path: Path, context_in_dim: int, seed: int = 1, drop: tuple[str, ...] = ()) -> Path:
    """The Klein DiT; ``drop`` leaves tensors out (a file the library refuses to load)."""
    import gguf

    rng = np.random.default_rng(seed)
    H, M = DIT_HIDDEN, 3 * DIT_HIDDEN
    t: dict[str, np.ndarray] = {
        "img_in.weight": _w(rng, H, 128),
        "time_in.in_layer.weight": _w(rng, H, 256),
        "time_in.out_layer.weight": _w(rng, H, H),
        "txt_in.weight": _w(rng, H, context_in_dim),
    }
    for s in ("img", "txt"):
        p = f"double_blocks.0.{s}_"
        t[p + "attn.qkv.weight"] = _w(rng, 3 * H, H)
        t[p + "attn.norm.query_norm.scale"] = np.ones(128, np.float32)
        t[p + "attn.norm.key_norm.scale"] = np.ones(128, np.float32)
        t[p + "attn.proj.weight"] = _w(rng, H, H)
        t[p + "mlp.0.weight"] = _w(rng, 2 * M, H)
        t[p + "mlp.2.weight"] = _w(rng, H, M)
    t["single_blocks.0.linear1.weight"] = _w(rng, 3 * H + 2 * M, H)
    t["single_blocks.0.linear2.weight"] = _w(rng, H, H + M)
    t["single_blocks.0.norm.query_norm.scale"] = np.ones(128, np.float32)
    t["single_blocks.0.norm.key_norm.scale"] = np.ones(128, np.float32)
    t["final_layer.linear.weight"] = _w(rng, 128, H)
    t["final_layer.adaLN_modulation.1.weight"] = _w(rng, 2 * H, H)
    t["double_stream_modulation_img.lin.weight"] = _w(rng, 6 * H, H)
    t["double_stream_modulation_txt.lin.weight"] = _w(rng, 6 * H, H)
    t["single_stream_modulation.lin.weight"] = _w(rng, 3 * H, H)
    w = gguf.GGUFWriter(str(path), "flux")
    for name, arr in t.items():
        if name not in drop:
            w.add_tensor(name, arr)
    _finish(w)
    return path


def write_llm(path: Path, layers: int, hidden: int, inter: int, seed: int = 2) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "qwen3")
    w.add_tensor("token_embd.weight", _w(rng, VOCAB, hidden, scale=0.5))
    for n in range(layers):
        p = f"blk.{n}."
        w.add_tensor(p + "attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(p + "attn_q.weight", _w(rng, 4096, hidden))
        w.add_tensor(p + "attn_k.weight", _w(rng, 1024, hidden))
        w.add_tensor(p + "attn_v.weight", _w(rng, 1024, hidden))
        w.add_tensor(p + "attn_output.weight", _w(rng, hidden, 4096))
        w.add_tensor(p + "attn_q_norm.weight", np.ones(128, np.float32))
        w.add_tensor(p + "attn_k_norm.weight", np.ones(128, np.float32))
        w.add_tensor(p + "ffn_gate.weight", _w(rng, inter, hidden))
        w.add_tensor(p + "ffn_up.weight", _w(rng, inter, hidden))
        w.add_tensor(p + "ffn_down.weight", _w(rng, hidden, inter))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _resnet(t: dict, rng, p: str, cin: int, cout: int) -> None:
    t[p + "norm1.weight"] = np.ones(cin, np.float32)
    t[p + "norm1.bias"] = np.zeros(cin, np.float32)
    t[p + "conv1.weight"] = _w(rng, cout, cin, 3, 3)
    t[p + "conv1.bias"] = np.zeros(cout, np.float32)
    t[p + "norm2.weight"] = np.ones(cout, np.float32)
    t[p + "norm2.bias"] = np.zeros(cout, np.float32)
    t[p + "conv2.weight"] = _w(rng, cout, cout, 3, 3)
    t[p + "conv2.bias"] = np.zeros(cout, np.float32)
    if cin != cout:
        t[p + "nin_shortcut.weight"] = _w(rng, cout, cin, 1, 1)
        t[p + "nin_shortcut.bias"] = np.zeros(cout, np.float32)


def _attn(t: dict, rng, p: str, c: int) -> None:
    t[p + "norm.weight"] = np.ones(c, np.float32)
    t[p + "norm.bias"] = np.zeros(c, np.float32)
    for k in ("q", "k", "v", "proj_out"):
        t[p + f"{k}.weight"] = _w(rng, c, c, 1, 1)
        t[p + f"{k}.bias"] = np.zeros(c, np.float32)


def _conv(t: dict, rng, p: str, cin: int, cout: int, k: int = 3) -> None:
    t[p + "weight"] = _w(rng, cout, cin, k, k)
    t[p + "bias"] = np.zeros(cout, np.float32)


def write_vae(
    path: Path, encoder: bool = False, dec_ch: int = 32, seed: int = 3, latent: int = 32
) -> Path:
    """The FLUX.2 VAE (``latent=32``: post_quant_conv + bn stats) or the FLUX.1 one
    (``latent=16``: no quant convs, no bn; what Z-Image uses)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    mult = (1, 2, 4, 4)
    z = latent
    t: dict[str, np.ndarray] = {}
    # decoder (width inferred by sd.cpp from conv_in out-channels / 4)
    block_in = dec_ch * mult[-1]
    _conv(t, rng, "decoder.conv_in.", z, block_in)
    _resnet(t, rng, "decoder.mid.block_1.", block_in, block_in)
    _attn(t, rng, "decoder.mid.attn_1.", block_in)
    _resnet(t, rng, "decoder.mid.block_2.", block_in, block_in)
    for i in reversed(range(4)):
        out = dec_ch * mult[i]
        for j in range(3):
            _resnet(t, rng, f"decoder.up.{i}.block.{j}.", block_in, out)
            block_in = out
        if i != 0:
            _conv(t, rng, f"decoder.up.{i}.upsample.conv.", out, out)
    t["decoder.norm_out.weight"] = np.ones(block_in, np.float32)
    t["decoder.norm_out.bias"] = np.zeros(block_in, np.float32)
    _conv(t, rng, "decoder.conv_out.", block_in, 3)
    if latent == 32:
        _conv(t, rng, "post_quant_conv.", z, z, 1)
        t["bn.running_mean"] = np.zeros(128, np.float32)
        t["bn.running_var"] = np.ones(128, np.float32)
    if encoder:  # fixed width ch=128 in sd.cpp
        ch = 128
        _conv(t, rng, "encoder.conv_in.", 3, ch)
        block_in = ch
        for i in range(4):
            out = ch * mult[i]
            for j in range(2):
                _resnet(t, rng, f"encoder.down.{i}.block.{j}.", block_in, out)
                block_in = out
            if i != 3:
                _conv(t, rng, f"encoder.down.{i}.downsample.conv.", out, out)
        _resnet(t, rng, "encoder.mid.block_1.", block_in, block_in)
        _attn(t, rng, "encoder.mid.attn_1.", block_in)
        _resnet(t, rng, "encoder.mid.block_2.", block_in, block_in)
        t["encoder.norm_out.weight"] = np.ones(block_in, np.float32)
        t["encoder.norm_out.bias"] = np.zeros(block_in, np.float32)
        _conv(t, rng, "encoder.conv_out.", block_in, 2 * z)
        if latent == 32:
            _conv(t, rng, "quant_conv.", 2 * z, 2 * z, 1)
    save_file(t, str(path))
    return path


def make_set(out_dir: str | Path, name: str = "fast") -> dict[str, Path]:
    """Write one set into ``out_dir`` (files named by :data:`FILE_NAMES`); return the paths."""
    spec = SETS[name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FILE_NAMES.items()}
    width = llm_out_width(spec["llm_layers"], spec["llm_hidden"])
    write_dit(paths["diffusion"], width)
    write_llm(paths["text_encoder"], spec["llm_layers"], spec["llm_hidden"], spec["llm_inter"])
    write_vae(paths["vae"], encoder=spec["encoder"])
    return paths


def mismatched_llm(path: str | Path) -> Path:
    """A 1-layer Qwen3 with hidden 64: output width 64 != the ``fast`` DiT's 32."""
    return write_llm(Path(path), 1, 64, 64, seed=5)


# ---- Z-Image (sd.cpp VERSION_Z_IMAGE) --------------------------------------------------------
# sd.cpp 90e87bc reads NO Z-Image dimension from the file: ZImageParams (z_image.hpp) is fixed
# at the 6B shape (hidden 3840, 30 layers + 2 noise + 2 context refiners, 30 heads of 128,
# FFN 10240, cap_feat_dim 2560 = Qwen3-4B's hidden) and the loader refuses any other shape
# ("wrong shape in model file") or a missing tensor. Only the tensor TYPES come from the file.
# So the smallest Z-Image DiT it loads is the full 6.15e9-parameter shape: written here in
# TQ2_0 (2.06 bits/weight, the fastest small type on an AVX2 CPU) with zero weights as holes
# of a sparse file: ~1.5 GB apparent, a few MB on disk, 1.52 GB of RAM once loaded, and
# ~15-35 s per 64x64 step on 2 CPU cores (every multiply still runs). The text encoder must
# be 2560 wide (the DiT's cap_embedder.0 is RMSNorm(2560)); sd.cpp reads an LLM's width,
# depth, FFN and vocab from its tensors, so that one is small (1 layer, Q4_0 embedding).

ZIMAGE_FILE_NAMES = {
    "diffusion": "zimage-dit.gguf",
    "text_encoder": "zimage-llm.gguf",
    "vae": "flux1-vae.safetensors",
}
#: sd.cpp's hard-coded ZImageParams (z_image.hpp)
ZIMAGE_DIMS = {
    "hidden": 3840,
    "layers": 30,
    "refiners": 2,
    "heads": 30,
    "head_dim": 128,
    "ffn": 10240,  # multiple_of 256 * ceil(3840 * 8/3 / 256)
    "cap_feat_dim": 2560,
    "adaln": 256,
    "patch_in": 64,  # 2 x 2 patch of 16 latent channels
}


def _qbytes(shape: tuple[int, ...], qtype) -> int:
    from gguf.constants import GGML_QUANT_SIZES

    bs, ts = GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape))
    if shape[-1] % bs:
        raise ValueError(f"{shape} does not fit {qtype.name} blocks of {bs}")
    return n // bs * ts


def write_sparse_gguf(path: Path, arch: str, specs: list[tuple]) -> Path:
    """A GGUF of ``(name, shape [out, in], ggml type, data | None)``; ``None`` data is zeros
    left as a hole (sparse file: no disk, no write time)."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for name, shape, q, _ in specs:
        w.add_tensor_info(name, shape, np.dtype(np.float32), _qbytes(shape, q), raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    align = w.data_alignment
    f.seek(-f.tell() % align, 1)
    for name, shape, q, data in specs:
        n = _qbytes(shape, q)
        if data is None:
            f.seek(n, 1)
        else:
            raw = np.ascontiguousarray(data).tobytes()
            if len(raw) != n:
                raise ValueError(f"{name}: {len(raw)} bytes, {q.name} {shape} needs {n}")
            f.write(raw)
        f.seek(-f.tell() % align, 1)
    f.truncate(f.tell())
    w.close()
    return path


def write_zimage_dit(path: Path, seed: int = 11, drop: tuple[str, ...] = ()) -> Path:
    """The Z-Image DiT at sd.cpp's fixed shape (names as leejet/Z-Image-Turbo-GGUF's, which
    sd.cpp prefixes with ``model.diffusion_model.``; detected by ``cap_embedder.0.weight``)."""
    from gguf import GGMLQuantizationType as Q

    d = ZIMAGE_DIMS
    H, HD, NH, FF = d["hidden"], d["head_dim"], d["heads"], d["ffn"]
    CAP, AD = d["cap_feat_dim"], d["adaln"]
    rng = np.random.default_rng(seed)
    big = Q.TQ2_0
    specs: list[tuple] = []

    def ones(n: int) -> np.ndarray:
        return np.ones(n, np.float32)

    def lin(name: str, out: int, inp: int, q=big, bias: bool = True, data=None) -> None:
        specs.append((name + ".weight", (out, inp), q, data))
        if bias:
            specs.append((name + ".bias", (out,), Q.F32, None))

    def block(p: str, modulation: bool) -> None:
        lin(p + "attention.qkv", 3 * NH * HD, H, bias=False)
        lin(p + "attention.out", H, NH * HD, bias=False)
        specs.append((p + "attention.q_norm.weight", (HD,), Q.F32, ones(HD)))
        specs.append((p + "attention.k_norm.weight", (HD,), Q.F32, ones(HD)))
        lin(p + "feed_forward.w1", FF, H, bias=False)
        lin(p + "feed_forward.w2", H, FF, bias=False)
        lin(p + "feed_forward.w3", FF, H, bias=False)
        for n in ("attention_norm1", "ffn_norm1", "attention_norm2", "ffn_norm2"):
            specs.append((p + n + ".weight", (H,), Q.F32, ones(H)))
        if modulation:
            lin(p + "adaLN_modulation.0", 4 * H, AD)

    # small random in/out projections: the flow is not identically zero
    lin("x_embedder", H, d["patch_in"], Q.F16, data=_w(rng, H, d["patch_in"]))
    lin("t_embedder.mlp.0", 1024, 256, Q.F32)  # sd.cpp forces these two to F32
    lin("t_embedder.mlp.2", 256, 1024, Q.F32)
    specs.append(("cap_embedder.0.weight", (CAP,), Q.F32, ones(CAP)))
    lin("cap_embedder.1", H, CAP)
    specs.append(("cap_pad_token", (H,), Q.F32, None))
    specs.append(("x_pad_token", (H,), Q.F32, None))
    for i in range(d["refiners"]):
        block(f"noise_refiner.{i}.", True)
        block(f"context_refiner.{i}.", False)
    for i in range(d["layers"]):
        block(f"layers.{i}.", True)
    lin("final_layer.linear", d["patch_in"], H, Q.F16, data=_w(rng, d["patch_in"], H))
    lin("final_layer.adaLN_modulation.1", H, AD)
    return write_sparse_gguf(path, "z_image", [s for s in specs if s[0] not in drop])


def write_zimage_llm(path: Path, hidden: int = 2560, layers: int = 1, inter: int = 256) -> Path:
    """A Qwen3 of ``hidden`` width (Z-Image needs 2560); zero weights, sparse. Qwen3's
    32 heads x 128 / 8 KV heads are fixed in sd.cpp; vocab stays 151936 (the template's
    special tokens sit near the top); Q4_0 embedding (the smallest type sd.cpp gathers)."""
    from gguf import GGMLQuantizationType as Q

    q = Q.TQ2_0 if hidden % 256 == 0 and inter % 256 == 0 else Q.F16
    specs: list[tuple] = [("token_embd.weight", (VOCAB, hidden), Q.Q4_0, None)]
    for n in range(layers):
        p = f"blk.{n}."
        specs += [
            (p + "attn_norm.weight", (hidden,), Q.F32, np.ones(hidden, np.float32)),
            (p + "ffn_norm.weight", (hidden,), Q.F32, np.ones(hidden, np.float32)),
            (p + "attn_q.weight", (4096, hidden), q, None),
            (p + "attn_k.weight", (1024, hidden), q, None),
            (p + "attn_v.weight", (1024, hidden), q, None),
            (p + "attn_output.weight", (hidden, 4096), q, None),
            (p + "attn_q_norm.weight", (128,), Q.F32, np.ones(128, np.float32)),
            (p + "attn_k_norm.weight", (128,), Q.F32, np.ones(128, np.float32)),
            (p + "ffn_gate.weight", (inter, hidden), q, None),
            (p + "ffn_up.weight", (inter, hidden), q, None),
            (p + "ffn_down.weight", (hidden, inter), q, None),
        ]
    specs.append(("output_norm.weight", (hidden,), Q.F32, np.ones(hidden, np.float32)))
    return write_sparse_gguf(path, "qwen3", specs)


def make_zimage_set(out_dir: str | Path) -> dict[str, Path]:
    """The Z-Image set (keys as :func:`make_set`'s): the full-shape sparse DiT, a 2560-wide
    1-layer Qwen3 and a decoder-only FLUX.1 (16-channel) VAE. ~0.1 s to write."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in ZIMAGE_FILE_NAMES.items()}
    write_zimage_dit(paths["diffusion"])
    write_zimage_llm(paths["text_encoder"])
    write_vae(paths["vae"], latent=16)
    return paths


def sparse_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy only the data regions (SEEK_DATA / SEEK_HOLE), keeping the holes: ``shutil.copyfile``
    would write the Z-Image DiT's 1.5 GB of zeros out for real."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fd, size, pos = fi.fileno(), os.fstat(fi.fileno()).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fi.seek(start)
            fo.seek(start)
            left = end - start
            while left > 0:
                block = fi.read(min(left, 1 << 20))
                if not block:
                    break
                fo.write(block)
                left -= len(block)
            pos = end
        fo.truncate(size)
    return Path(dst)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.tinymodels", description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--set", default="fast", choices=[*sorted(SETS), "zimage"])
    a = ap.parse_args(argv)
    paths = make_zimage_set(a.out_dir) if a.set == "zimage" else make_set(a.out_dir, a.set)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
