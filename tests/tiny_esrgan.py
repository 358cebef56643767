"""A tiny random-weight Real-ESRGAN x4 (RRDBNet) that stable-diffusion.cpp loads for real.

sd.cpp's ESRGAN loader (``src/esrgan.hpp`` at the vendored 90e87bc) fixes ``num_feat`` 64,
``num_grow_ch`` 32 and 3 input channels, and reads the block count and the scale from the
tensor names: the Real-ESRGAN/basicsr layout ``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1`` + ``conv_up2`` (x4), ``conv_hr``, ``conv_last``. Here: ONE RRDB
block (the real x4plus has 23, anime_6B 6), ~3.5 MB of float32.

The file is written as the real ``RealESRGAN_x4plus.pth`` is: a torch zip checkpoint
(``archive/data.pkl`` + ``archive/data/<key>``) whose pickle is ``{"params_ema":
OrderedDict(name -> tensor)}`` - written by hand (torch is not installed): protocol-2 opcodes
that sd.cpp's own restricted pickle reader (``src/model_io/pickle_io.cpp``) understands and
that Python's ``pickle`` would read back with torch present (``torch._utils._rebuild_tensor_v2``
on ``('storage', torch.FloatStorage, key, 'cpu', numel)`` persistent ids).

Usage: ``python -m tests.tiny_esrgan OUT.pth`` (``--safetensors`` for the other format).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

NUM_FEAT = 64
GROW = 32
SCALE = 4


def tensors(num_block: int = 1, seed: int = 7) -> dict[str, np.ndarray]:
    """The RRDBNet x4 state dict (basicsr names), small random weights: a stable image."""
    rng = np.random.default_rng(seed)

    def conv(name: str, cout: int, cin: int, scale: float = 0.02) -> None:
        out[f"{name}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * scale).astype(np.float32)
        out[f"{name}.bias"] = np.zeros(cout, dtype=np.float32)

    out: dict[str, np.ndarray] = {}
    conv("conv_first", NUM_FEAT, 3)
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                cin = NUM_FEAT + (c - 1) * GROW
                cout = NUM_FEAT if c == 5 else GROW
                conv(f"body.{b}.rdb{r}.conv{c}", cout, cin)
    conv("conv_body", NUM_FEAT, NUM_FEAT)
    conv("conv_up1", NUM_FEAT, NUM_FEAT)
    conv("conv_up2", NUM_FEAT, NUM_FEAT)
    conv("conv_hr", NUM_FEAT, NUM_FEAT)
    conv("conv_last", 3, NUM_FEAT)
    # a visible picture, not noise: the last conv passes the first feature maps' mean on
    out["conv_last.bias"] = np.full(3, 0.5, dtype=np.float32)
    return out


# ---- a torch zip checkpoint, by hand ------------------------------------------------------


def _uni(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def data_pkl(state: dict[str, np.ndarray], wrap: str | None = "params_ema") -> bytes:
    """The ``data.pkl`` of ``torch.save({wrap: state})`` (``wrap`` None: the bare dict)."""
    ordered = b"ccollections\nOrderedDict\n)R"
    body = [b"\x80\x02"]
    if wrap:
        body += [b"}", _uni(wrap)]
    body += [ordered, b"("]
    for key, (name, arr) in enumerate(state.items()):
        strides, acc = [], 1
        for d in reversed(arr.shape):
            strides.insert(0, acc)
            acc *= d
        pid = _tuple(
            [
                _uni("storage"),
                b"ctorch\nFloatStorage\n",
                _uni(str(key)),
                _uni("cpu"),
                _int(arr.size),
            ]
        )
        args = _tuple(
            [
                pid + b"Q",
                _int(0),
                _tuple([_int(d) for d in arr.shape]),
                _tuple([_int(s) for s in strides]),
                b"\x89",
                ordered,
            ]
        )
        body += [_uni(name), b"ctorch._utils\n_rebuild_tensor_v2\n", args, b"R"]
    body += [b"u"]
    if wrap:
        body += [b"s"]
    body += [b"."]
    return b"".join(body)


def write_pth(path: Path, num_block: int = 1, wrap: str | None = "params_ema") -> Path:
    """A torch zip ``.pth`` of the tiny x4 RRDBNet (what Real-ESRGAN ships)."""
    state = tensors(num_block)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl(state, wrap))
        z.writestr("archive/byteorder", "little")
        for key, arr in enumerate(state.values()):
            z.writestr(f"archive/data/{key}", np.ascontiguousarray(arr, "<f4").tobytes())
        z.writestr("archive/version", "3\n")
    path.write_bytes(buf.getvalue())
    return path


def write_safetensors(path: Path, num_block: int = 1) -> Path:
    """The same weights as a ``.safetensors`` file (sd.cpp's loader takes both)."""
    state = tensors(num_block)
    header: dict[str, dict] = {}
    blobs, off = [], 0
    for name, arr in state.items():
        raw = np.ascontiguousarray(arr, "<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [off, off + len(raw)],
        }
        blobs.append(raw)
        off += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--safetensors", action="store_true")
    ap.add_argument("--blocks", type=int, default=1)
    a = ap.parse_args()
    if a.safetensors:
        print(write_safetensors(a.out, a.blocks))
    else:
        print(write_pth(a.out, a.blocks))


if __name__ == "__main__":
    main()
