"""Header-only checks of the model files before stable-diffusion.cpp sees them (~0.06 s).

Why: the library aborts the whole process (``GGML_ASSERT`` -> SIGABRT) on the first
generation when the text encoder's output width differs from the DiT's ``context_in_dim``
(a 9B DiT needs Qwen3-8B, the 4B DiT Qwen3-4B), and a truncated file or a file of the wrong
kind only shows up as a NULL context. Reading the GGUF / safetensors headers answers all of
that with a clear message first. No textual import; only ``gguf`` (memory-mapped, headers
only) and the standard library.

Shapes: GGUF reports ggml ``ne`` order ([in, out]); safetensors the PyTorch order
([out, in]). Tensor names are matched by suffix so prefixed files
(``model.diffusion_model.``, ``text_encoders.llm.``, ``vae.``) work too.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"


class PreflightError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "missing_file" | "bad_file" | "mismatch"
        self.message = message


@dataclass(frozen=True)
class TensorTable:
    """name -> shape in PyTorch order ([out, in, ...])."""

    path: Path
    shapes: dict[str, tuple[int, ...]]

    def find(self, suffix: str) -> tuple[int, ...] | None:
        if suffix in self.shapes:
            return self.shapes[suffix]
        for k, v in self.shapes.items():
            if k.endswith("." + suffix):
                return v
        return None

    def has(self, suffix: str) -> bool:
        return self.find(suffix) is not None

    def max_index(self, pattern: str) -> int:
        """Highest N in names matching ``pattern`` (a regex with one group), -1 if none."""
        rx = re.compile(pattern)
        best = -1
        for k in self.shapes:
            m = rx.search(k)
            if m:
                best = max(best, int(m.group(1)))
        return best


def _label(role: str) -> str:
    return {"diffusion": "diffusion model", "text_encoder": "text encoder", "vae": "VAE"}.get(
        role, role
    )


def read_tensors(path: str | os.PathLike[str], role: str = "file") -> TensorTable:
    """Tensor names and shapes from the header; raises PreflightError for bad files."""
    p = Path(path)
    what = _label(role)
    if not p.exists():
        raise PreflightError("missing_file", f"{what} file not found: {p}")
    if not p.is_file():
        raise PreflightError("missing_file", f"{what} path is not a file: {p}")
    size = p.stat().st_size
    if size < 16:
        raise PreflightError("bad_file", f"{what} file is empty or truncated: {p}")
    with open(p, "rb") as f:
        head = f.read(8)
    if head[:4] == GGUF_MAGIC:
        return _read_gguf(p, size, what)
    return _read_safetensors(p, size, head, what)


def _read_gguf(p: Path, size: int, what: str) -> TensorTable:
    try:
        import gguf

        reader = gguf.GGUFReader(str(p))
    except Exception as e:  # noqa: BLE001 - any parse failure = unusable file
        raise PreflightError(
            "bad_file", f"{what} file is not a readable GGUF (truncated?): {p.name}: {e}"
        ) from None
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for t in reader.tensors:
        shapes[t.name] = tuple(int(x) for x in reversed(list(t.shape)))
        end = max(end, int(t.data_offset) + int(t.n_bytes))
    if end > size:
        raise PreflightError(
            "bad_file",
            f"{what} file is truncated: {p.name} has {size} bytes, its tensors need {end}",
        )
    return TensorTable(p, shapes)


def _read_safetensors(p: Path, size: int, head: bytes, what: str) -> TensorTable:
    (hlen,) = struct.unpack("<Q", head)
    if hlen <= 0 or 8 + hlen > size or hlen > 100_000_000:
        raise PreflightError(
            "bad_file", f"{what} file is neither GGUF nor safetensors (or is truncated): {p.name}"
        )
    try:
        with open(p, "rb") as f:
            f.seek(8)
            header: dict[str, Any] = json.loads(f.read(hlen))
    except (ValueError, UnicodeDecodeError):
        raise PreflightError(
            "bad_file", f"{what} file has an unreadable safetensors header: {p.name}"
        ) from None
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for k, v in header.items():
        if k == "__metadata__" or not isinstance(v, dict):
            continue
        shapes[k] = tuple(int(x) for x in v.get("shape", ()))
        offs = v.get("data_offsets") or (0, 0)
        end = max(end, int(offs[1]))
    if 8 + hlen + end > size:
        raise PreflightError(
            "bad_file",
            f"{what} file is truncated: {p.name} has {size} bytes, needs {8 + hlen + end}",
        )
    return TensorTable(p, shapes)


@dataclass(frozen=True)
class DitInfo:
    flux2: bool
    klein: bool
    context_in_dim: int
    single_blocks: int


@dataclass(frozen=True)
class LlmInfo:
    layers: int
    hidden: int
    out_dim: int  # hidden x (number of 9/18/27 <= layers), or hidden below 9 layers


@dataclass(frozen=True)
class VaeInfo:
    flux2: bool
    latent_channels: int
    has_encoder: bool


def inspect_dit(path: str | os.PathLike[str]) -> DitInfo:
    t = read_tensors(path, "diffusion")
    txt_in = t.find("txt_in.weight")
    if txt_in is None or len(txt_in) != 2:
        raise PreflightError(
            "bad_file", f"diffusion model {t.path.name} is not a FLUX model (no txt_in.weight)"
        )
    ctx = txt_in[1]
    flux2 = t.has("double_stream_modulation_img.lin.weight")
    singles = t.max_index(r"single_blocks\.(\d+)\.") + 1
    return DitInfo(
        flux2=flux2,
        klein=flux2 and singles < 48,
        context_in_dim=ctx,
        single_blocks=singles,
    )


def inspect_llm(path: str | os.PathLike[str]) -> LlmInfo:
    t = read_tensors(path, "text_encoder")
    emb = t.find("token_embd.weight") or t.find("embed_tokens.weight")
    if emb is None or len(emb) != 2:
        raise PreflightError(
            "bad_file",
            f"text encoder {t.path.name} is not a Qwen3 language model (no token embedding)",
        )
    hidden = emb[1]
    layers = max(t.max_index(r"(?:^|\.)blk\.(\d+)\."), t.max_index(r"(?:^|\.)layers\.(\d+)\.")) + 1
    if layers <= 0:
        raise PreflightError("bad_file", f"text encoder {t.path.name} has no transformer layers")
    n = sum(1 for k in (9, 18, 27) if k <= layers)
    return LlmInfo(layers=layers, hidden=hidden, out_dim=hidden * n if n else hidden)


def inspect_vae(path: str | os.PathLike[str]) -> VaeInfo:
    t = read_tensors(path, "vae")
    conv_in = t.find("decoder.conv_in.weight")
    if conv_in is None or len(conv_in) != 4:
        raise PreflightError("bad_file", f"VAE {t.path.name} has no decoder (not a VAE file)")
    z = conv_in[1]
    return VaeInfo(flux2=z == 32, latent_channels=z, has_encoder=t.has("encoder.conv_in.weight"))


def check_load(
    diffusion: str | os.PathLike[str],
    text_encoder: str | os.PathLike[str],
    vae: str | os.PathLike[str],
    *,
    need_vae_encoder: bool = False,
) -> None:
    """All checks for one load; raises PreflightError on a problem."""
    dit = inspect_dit(diffusion)
    llm = inspect_llm(text_encoder)
    v = inspect_vae(vae)
    if not dit.flux2:
        raise PreflightError(
            "bad_file", f"{Path(diffusion).name} is a FLUX.1-style model, not FLUX.2 Klein"
        )
    if not dit.klein:
        raise PreflightError(
            "bad_file",
            f"{Path(diffusion).name} is FLUX.2 [dev] ({dit.single_blocks} single blocks), "
            "not FLUX.2 Klein",
        )
    if llm.out_dim != dit.context_in_dim:
        hint = ""
        if dit.context_in_dim == 12288:
            hint = " (the 9B model needs the Qwen3-8B text encoder)"
        elif dit.context_in_dim == 7680:
            hint = " (the 4B model needs the Qwen3-4B text encoder)"
        raise PreflightError(
            "mismatch",
            f"text encoder {Path(text_encoder).name} does not fit diffusion model "
            f"{Path(diffusion).name}: it produces {llm.out_dim}-wide embeddings "
            f"({llm.layers} layers x hidden {llm.hidden}), the model expects "
            f"{dit.context_in_dim}{hint}",
        )
    if not v.flux2:
        raise PreflightError(
            "bad_file",
            f"VAE {Path(vae).name} has {v.latent_channels} latent channels; FLUX.2 needs 32 "
            "(is it the FLUX.1 ae.safetensors?)",
        )
    if need_vae_encoder and not v.has_encoder:
        raise PreflightError(
            "bad_file",
            f"VAE {Path(vae).name} is decoder-only: reference-image edits need the full "
            "FLUX.2 VAE (with its encoder)",
        )
