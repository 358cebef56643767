"""Header-only checks of the model files before stable-diffusion.cpp sees them (~0.06 s).

Why: the library aborts the whole process (``GGML_ASSERT`` -> SIGABRT) on the first
generation when the text encoder's output width differs from the DiT's ``context_in_dim``
(a 9B Klein DiT needs Qwen3-8B, the 4B DiT and Z-Image Qwen3-4B: both verified to SIGABRT),
and a truncated file or a file of the wrong kind only shows up as a NULL context (a FLUX.2 VAE
under a Z-Image DiT) or not at all (a Klein DiT loaded as a Z-Image model). Reading the GGUF /
safetensors headers answers all of that with a clear message first; what each family's files
must look like is its ``signatures`` in distill_tui/families.py, checked by :func:`check_load`. No textual import; the headers are read here with every
count and length bounded by what the file still holds (``read_gguf_header``,
``read_safetensors_header``: a crafted header is one :class:`HeaderError` line, never a
spin or a traceback); ``gguf`` gives only the tensor type sizes.

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
        header = read_gguf_header(p)
    except HeaderError as e:
        raise PreflightError(
            "bad_file", f"{what} file is not a valid GGUF file (truncated?): {p.name}: {e}"
        ) from None
    except OSError as e:
        raise PreflightError("bad_file", f"{what} file cannot be read: {p.name}: {e}") from None
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for t in header.tensors:
        shapes[t.name] = tuple(reversed(t.dims))
        end = max(end, t.offset + t.n_bytes)
    if end > size:
        raise PreflightError(
            "bad_file",
            f"{what} file is truncated: {p.name} has {size} bytes, its tensors need {end}",
        )
    return TensorTable(p, shapes)


def _read_safetensors(p: Path, size: int, head: bytes, what: str) -> TensorTable:
    (hlen,) = struct.unpack("<Q", head)
    if hlen <= 0 or 8 + hlen > size or hlen > MAX_SAFETENSORS_HEADER:
        raise PreflightError(
            "bad_file", f"{what} file is neither GGUF nor safetensors (or is truncated): {p.name}"
        )
    try:
        header = read_safetensors_header(p)
    except HeaderError as e:
        raise PreflightError(
            "bad_file", f"{what} file is not a valid safetensors file: {p.name}: {e}"
        ) from None
    except OSError as e:
        raise PreflightError("bad_file", f"{what} file cannot be read: {p.name}: {e}") from None
    shapes = {k: t.shape for k, t in header.tensors.items()}
    end = header.data_end
    if end > size:
        raise PreflightError(
            "bad_file", f"{what} file is truncated: {p.name} has {size} bytes, needs {end}"
        )
    return TensorTable(p, shapes)


# ---- bounded header readers (issue 19.20) ----------------------------------------------------
# Every count and length read from a header is checked against the bytes the file still has
# (and a documented cap) BEFORE anything is allocated or looped over: a 113-byte file that
# claims an array of 2**60 strings is refused at once, never walked.

#: a safetensors JSON header larger than this is refused (real ones: a few MB)
MAX_SAFETENSORS_HEADER = 100_000_000
#: caps for a GGUF header (real files: ~1,000 tensors, ~40 keys, a 152k-string tokenizer)
MAX_GGUF_TENSORS = 1_000_000
MAX_GGUF_KEYS = 1_000_000
MAX_GGUF_STRING_ARRAY = 1 << 20
MAX_GGUF_NAME = 65_535
MAX_DIMS = 8
#: a tensor of more elements than this is not a tensor (2**62)
MAX_ELEMENTS = 1 << 62


class HeaderError(ValueError):
    """A model file whose header cannot be read; the message is the reason, for a person."""


@dataclass(frozen=True)
class GgufTensor:
    name: str
    dims: tuple[int, ...]  #: ggml ``ne`` order ([in, out])
    ggml_type: int
    offset: int  #: absolute, in the file
    n_bytes: int


@dataclass(frozen=True)
class GgufArray:
    """A metadata array, summarised (its elements are skipped, not kept)."""

    item_type: int
    count: int


@dataclass(frozen=True)
class GgufHeader:
    version: int
    fields: dict[str, Any]  #: scalars and strings; arrays as :class:`GgufArray`
    tensors: list[GgufTensor]
    data_start: int

    def type_name(self, t: GgufTensor) -> str:
        try:
            from gguf import GGMLQuantizationType

            return GGMLQuantizationType(t.ggml_type).name
        except Exception:  # noqa: BLE001 - an unknown type is refused when read; be safe
            return str(t.ggml_type)


class _Cursor:
    """Reads a file forward through a window of bytes; every read is checked against the
    file's size first (so a count read from the file can never make it read or allocate more
    than the file holds)."""

    def __init__(self, fh: Any, size: int):
        self.fh = fh
        self.size = size
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.pos = 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return self.size - self.offset

    def _need(self, n: int, what: str) -> None:
        if n > self.left:
            raise HeaderError(f"{what} runs past the end of the file ({self.size} bytes)")
        if self.pos + n > len(self.buf):
            keep = self.buf[self.pos :]
            self.base += self.pos
            self.pos = 0
            self.fh.seek(self.base + len(keep))
            self.buf = keep + self.fh.read(max(n - len(keep), 1 << 20))
            if len(self.buf) < n:
                raise HeaderError(f"{what}: the file ends early (did it change while read?)")

    def unpack(self, st: struct.Struct, what: str) -> tuple[Any, ...]:
        self._need(st.size, what)
        v = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return v

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            raise HeaderError(f"{what} runs past the end of the file ({self.size} bytes)")
        if self.pos + n <= len(self.buf):
            self.pos += n
        else:
            self.base, self.buf, self.pos = self.offset + n, b"", 0

    def skip_strings(self, count: int, u64: struct.Struct, what: str) -> None:
        """Skip ``count`` length-prefixed strings (a tokenizer's 150k: a tight loop over the
        window, the checked path only where a string crosses its end)."""
        unpack, i = u64.unpack_from, 0
        while i < count:
            buf, pos, end = self.buf, self.pos, len(self.buf) - 8
            while i < count and pos <= end:
                (n,) = unpack(buf, pos)
                if pos + 8 + n > len(buf):
                    break
                pos += 8 + n
                i += 1
            self.pos = pos
            if i < count:
                (n,) = self.unpack(u64, what)
                self.skip(n, what)
                i += 1


#: GGUF value types: struct format of the fixed-size ones; 8 = string, 9 = array
_GGUF_FIXED = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: str | os.PathLike[str]) -> GgufHeader:
    """The GGUF header of ``path``: metadata (arrays summarised) and tensor infos, read with
    every count bounded. Raises :class:`HeaderError` (never anything else for bad bytes;
    OSError for an unreadable file)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        return _parse_gguf(_Cursor(fh, size))


def _parse_gguf(c: _Cursor) -> GgufHeader:
    if c.take(4, "the magic") != GGUF_MAGIC:
        raise HeaderError("it does not start with GGUF")
    (version,) = c.unpack(struct.Struct("<I"), "the version")
    e = "<"
    if version > 0xFFFF and (version >> 24) in (2, 3):  # a big-endian file
        e, version = ">", version >> 24
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version} is not supported (2 or 3)")
    u32, u64 = struct.Struct(e + "I"), struct.Struct(e + "Q")
    n_tensors, n_kv = c.unpack(struct.Struct(e + "QQ"), "the counts")
    # each key/value takes >= 13 bytes (length, type, a 1-byte value), each tensor info >= 24
    if n_kv > MAX_GGUF_KEYS or n_kv * 13 > c.left:
        raise HeaderError(f"it claims {n_kv} metadata keys, more than its {c.size} bytes hold")
    if n_tensors > MAX_GGUF_TENSORS or n_tensors * 24 > c.left:
        raise HeaderError(f"it claims {n_tensors} tensors, more than its {c.size} bytes hold")
    fixed = {t: struct.Struct(e + f) for t, f in _GGUF_FIXED.items()}

    def string(what: str, cap: int | None = None) -> bytes | None:
        (n,) = c.unpack(u64, what)
        if cap is not None and n > cap:
            raise HeaderError(f"{what} is {n} bytes long (at most {cap})")
        if n > c.left:
            raise HeaderError(f"{what} is {n} bytes long, more than the file holds")
        if n > 65_536:  # a long value (a chat template...): skipped, not kept
            c.skip(n, what)
            return None
        return c.take(n, what)

    def value(t: int, what: str, depth: int = 0) -> Any:
        st = fixed.get(t)
        if st is not None:
            return c.unpack(st, what)[0]
        if t == _STRING:
            b = string(what)
            return None if b is None else b.decode("utf-8", "replace")
        if t != _ARRAY:
            raise HeaderError(f"{what} has an unknown value type {t}")
        if depth >= 2:
            raise HeaderError(f"{what} nests arrays too deeply")
        item, count = c.unpack(struct.Struct(e + "IQ"), what)
        ist = fixed.get(item)
        if ist is not None:
            if count * ist.size > c.left:
                raise HeaderError(
                    f"{what} claims {count} elements, more than the file's {c.size} bytes hold"
                )
            c.skip(count * ist.size, what)
        elif item in (_STRING, _ARRAY):
            least = 8 if item == _STRING else 12
            if count * least > c.left or count > MAX_GGUF_STRING_ARRAY:
                raise HeaderError(
                    f"{what} claims {count} elements, more than the file's {c.size} bytes hold"
                )
            if item == _STRING:
                c.skip_strings(count, u64, what)
            else:
                for _ in range(count):
                    value(_ARRAY, what, depth + 1)
        else:
            raise HeaderError(f"{what} has an unknown element type {item}")
        return GgufArray(item, count)

    fields: dict[str, Any] = {}
    for i in range(n_kv):
        raw = string(f"metadata key {i}", MAX_GGUF_NAME)
        key = (raw or b"").decode("utf-8", "replace")
        (t,) = c.unpack(u32, f"the type of {key!r}")
        fields[key] = value(t, f"metadata {key!r}")

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    for i in range(n_tensors):
        raw = string(f"tensor {i}'s name", MAX_GGUF_NAME)
        name = (raw or b"").decode("utf-8", "replace")
        (nd,) = c.unpack(u32, f"tensor {name!r}")
        if nd > MAX_DIMS:
            raise HeaderError(f"tensor {name!r} claims {nd} dimensions (at most {MAX_DIMS})")
        dims = c.unpack(struct.Struct(e + "Q" * nd), f"tensor {name!r}") if nd else ()
        t, off = c.unpack(struct.Struct(e + "IQ"), f"tensor {name!r}")
        infos.append((name, tuple(dims), t, off))

    align = fields.get("general.alignment", 32)
    if not isinstance(align, int) or isinstance(align, bool) or align <= 0 or align & (align - 1):
        raise HeaderError(f"general.alignment {align!r} is not a power of two")
    data_start = -(-c.offset // align) * align
    tensors = []
    for name, dims, t, off in infos:
        n = 1
        for d in dims:
            n *= d
        if n > MAX_ELEMENTS:
            raise HeaderError(f"tensor {name!r} claims {n} elements")
        try:
            bs, ts = GGML_QUANT_SIZES[GGMLQuantizationType(t)]
        except (ValueError, KeyError):
            raise HeaderError(f"tensor {name!r} has an unknown type {t}") from None
        tensors.append(GgufTensor(name, dims, t, data_start + off, n // bs * ts))
    return GgufHeader(version, fields, tensors, data_start)


@dataclass(frozen=True)
class SafeTensor:
    dtype: str
    shape: tuple[int, ...]  #: PyTorch order
    offsets: tuple[int, int]  #: in the data section (after the header)


@dataclass(frozen=True)
class SafetensorsHeader:
    header_len: int
    tensors: dict[str, SafeTensor]
    metadata: dict[str, Any]

    @property
    def data_end(self) -> int:
        """Where the last tensor's bytes end, from the start of the file."""
        return 8 + self.header_len + max((t.offsets[1] for t in self.tensors.values()), default=0)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """The JSON header of a safetensors file, its size capped (100 MB) and its shape checked
    (a dict of {dtype, shape, data_offsets}). Raises :class:`HeaderError`."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise HeaderError(f"it is {size} bytes, too short for a header")
        (hlen,) = struct.unpack("<Q", head)
        if hlen < 2 or hlen > MAX_SAFETENSORS_HEADER:
            raise HeaderError(
                f"its header length {hlen} is not plausible (2 to {MAX_SAFETENSORS_HEADER})"
            )
        if 8 + hlen > size:
            raise HeaderError(
                f"its {hlen}-byte header runs past the end of the file ({size} bytes)"
            )
        raw = fh.read(hlen)
    if raw.lstrip()[:1] != b"{":
        raise HeaderError("its header is not a JSON object")
    try:
        header = json.loads(raw)
    except RecursionError:
        raise HeaderError("its header is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise HeaderError(f"its header is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(header, dict):
        raise HeaderError("its header is not a JSON object")
    tensors: dict[str, SafeTensor] = {}
    meta = header.get("__metadata__")
    for k, v in header.items():
        if k == "__metadata__":
            continue
        what = f"tensor {k[:80]!r}"
        if not isinstance(v, dict):
            raise HeaderError(f"{what} is not an object")
        dtype, shape, offs = v.get("dtype"), v.get("shape"), v.get("data_offsets")
        if not isinstance(dtype, str):
            raise HeaderError(f"{what} has no dtype")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_int, shape)):
            raise HeaderError(f"{what} has no valid shape")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(map(_int, offs))
            or offs[0] > offs[1]
        ):
            raise HeaderError(f"{what} has no valid data_offsets")
        tensors[k] = SafeTensor(dtype, tuple(shape), (offs[0], offs[1]))
    return SafetensorsHeader(hlen, tensors, meta if isinstance(meta, dict) else {})


# ---- signatures: what a file must look like for its role in a family -------------------------
# distill_tui/families.py names, per family and component role, the signature its file must
# show ("flux2-dit", "zimage-dit", "qwen3-llm", "flux2-vae", "flux1-vae"); the checks below
# are keyed by those names. A wrong pairing is refused here, from the headers, before
# stable-diffusion.cpp sees it: sd.cpp would otherwise abort the process (GGML_ASSERT on a
# text-embedding width it does not expect) or load the wrong pipeline without a word.

#: what a diffusion model of each DiT kind is, in a refusal's words
DIT_WHAT = {
    "flux2-dit": "a FLUX.2 Klein model",
    "zimage-dit": "a Z-Image model",
    "flux2-dev-dit": "FLUX.2 [dev]",
    "flux1-dit": "a FLUX.1-style model",
}
#: the LLM hidden layers sd.cpp concatenates into the text embedding, per DiT signature
#: (conditioner.hpp ``out_layers``: Klein 9/18/27; Z-Image 35, i.e. Qwen3-4B's second to last);
#: a text encoder with fewer layers gives its final (normed) output, ``hidden`` wide
LLM_OUT_LAYERS = {"flux2-dit": (9, 18, 27), "zimage-dit": (35,)}
#: the text encoder each DiT needs, by its context width (a refusal's hint)
LLM_HINTS = {
    ("flux2-dit", 12288): "the 9B model needs the Qwen3-8B text encoder",
    ("flux2-dit", 7680): "the 4B model needs the Qwen3-4B text encoder",
    ("zimage-dit", 2560): "Z-Image needs the Qwen3-4B text encoder",
}
#: VAE signature -> latent channels (the decoder's conv_in input)
VAE_CHANNELS = {"flux2-vae": 32, "flux1-vae": 16}
VAE_WHAT = {
    32: "a FLUX.2 VAE (32 latent channels)",
    16: "a FLUX.1 VAE (16 latent channels)",
    4: "an SD/SDXL VAE (4 latent channels)",
}
LLM_SIGNATURES = frozenset({"qwen3-llm"})


@dataclass(frozen=True)
class DitInfo:
    flux2: bool
    klein: bool
    context_in_dim: int  #: the text-embedding width the DiT takes
    single_blocks: int
    kind: str = "flux2-dit"  #: a key of :data:`DIT_WHAT`

    @property
    def what(self) -> str:
        w = DIT_WHAT[self.kind]
        return f"{w} ({self.single_blocks} single blocks)" if self.kind == "flux2-dev-dit" else w


@dataclass(frozen=True)
class LlmInfo:
    layers: int
    hidden: int
    out_dim: int  # hidden x (number of 9/18/27 <= layers), or hidden below 9 layers (Klein)

    def width(self, out_layers: tuple[int, ...]) -> int:
        """The embedding width sd.cpp builds from this LLM for a DiT reading ``out_layers``."""
        n = sum(1 for k in out_layers if k <= self.layers)
        return self.hidden * n if n else self.hidden


@dataclass(frozen=True)
class VaeInfo:
    flux2: bool
    latent_channels: int
    has_encoder: bool

    @property
    def what(self) -> str:
        z = self.latent_channels
        return VAE_WHAT.get(z, f"a VAE with {z} latent channels")


def inspect_dit(path: str | os.PathLike[str]) -> DitInfo:
    t = read_tensors(path, "diffusion")
    cap = t.find("cap_embedder.0.weight")  # sd.cpp's VERSION_Z_IMAGE key (model.cpp)
    if cap is not None and len(cap) == 1:
        return DitInfo(False, False, cap[0], 0, kind="zimage-dit")
    txt_in = t.find("txt_in.weight")
    if txt_in is None or len(txt_in) != 2:
        raise PreflightError(
            "bad_file",
            f"diffusion model {t.path.name} is neither a FLUX model (no txt_in.weight) "
            "nor a Z-Image model (no cap_embedder.0.weight)",
        )
    ctx = txt_in[1]
    flux2 = t.has("double_stream_modulation_img.lin.weight")
    singles = t.max_index(r"single_blocks\.(\d+)\.") + 1
    klein = flux2 and singles < 48
    kind = "flux2-dit" if klein else "flux2-dev-dit" if flux2 else "flux1-dit"
    return DitInfo(flux2=flux2, klein=klein, context_in_dim=ctx, single_blocks=singles, kind=kind)


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


def family_signatures(family: str) -> tuple[str, dict[str, str]]:
    """(the family's label, role -> signature) from distill_tui/families.py; an unknown family
    or one that is not an image generator is a ``bad_request``."""
    from distill_tui.families import UnknownFamilyError
    from distill_tui.families import family as get_family

    try:
        fam = get_family(family)
    except UnknownFamilyError as e:
        raise PreflightError("bad_request", str(e)) from None
    sig = dict(fam.signatures)
    missing = [r for r in ("diffusion", "textEncoder", "vae") if r not in sig]
    if missing:
        raise PreflightError(
            "bad_request",
            f"model family {family!r} ({fam.label}) is not a diffusion model with a text "
            "encoder and a VAE; it cannot be loaded for generation",
        )
    return fam.label, sig


def check_load(
    diffusion: str | os.PathLike[str],
    text_encoder: str | os.PathLike[str],
    vae: str | os.PathLike[str],
    *,
    need_vae_encoder: bool = False,
    family: str = "flux2-klein",
) -> None:
    """All checks for one load of ``family``; raises PreflightError on a problem."""
    label, sig = family_signatures(family)
    want_dit, want_llm, want_vae = sig["diffusion"], sig["textEncoder"], sig["vae"]
    unknown = [s for s in (want_dit, want_llm, want_vae) if s not in _KNOWN_SIGNATURES]
    if unknown:
        raise PreflightError(
            "bad_request", f"the preflight has no check for signature {unknown[0]!r} ({label})"
        )
    dit = inspect_dit(diffusion)
    llm = inspect_llm(text_encoder)
    v = inspect_vae(vae)
    if dit.kind != want_dit:
        raise PreflightError(
            "bad_file",
            f"diffusion model {Path(diffusion).name} is {dit.what}, not {DIT_WHAT[want_dit]}",
        )
    width = llm.width(LLM_OUT_LAYERS[want_dit])
    if width != dit.context_in_dim:
        hint = LLM_HINTS.get((want_dit, dit.context_in_dim))
        raise PreflightError(
            "mismatch",
            f"text encoder {Path(text_encoder).name} does not fit diffusion model "
            f"{Path(diffusion).name}: it produces {width}-wide embeddings "
            f"({llm.layers} layers x hidden {llm.hidden}), the model expects "
            f"{dit.context_in_dim}" + (f" ({hint})" if hint else ""),
        )
    want_z = VAE_CHANNELS[want_vae]
    if v.latent_channels != want_z:
        raise PreflightError(
            "bad_file",
            f"VAE {Path(vae).name} is {v.what}; {label} needs {VAE_WHAT[want_z]}",
        )
    if need_vae_encoder and not v.has_encoder:
        raise PreflightError(
            "bad_file",
            f"VAE {Path(vae).name} is decoder-only: reference-image edits and img2img need "
            f"the full {VAE_WHAT[want_z].split(' (')[0].removeprefix('a ')} (with its encoder)",
        )


_KNOWN_SIGNATURES = frozenset(LLM_OUT_LAYERS) | LLM_SIGNATURES | frozenset(VAE_CHANNELS)


# ---- what a file looks like (distill models import: an unmatched file) ------------------------
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


def describe_model_file(path: str | os.PathLike[str]) -> tuple[bool, str]:
    """(valid, words): a short description from the file's header — GGUF architecture and
    quant, or a safetensors tensor count and dtypes — or, for a file that says it is one of
    them (magic, suffix) but whose header is not, False and "not a valid GGUF file: <why>".
    Bounded (the readers above); never raises."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(8)
    except OSError as e:
        return True, f"unreadable ({e.strerror or e})"
    try:
        if magic[:4] == GGUF_MAGIC or p.suffix.lower() == ".gguf":
            return True, _describe_gguf(read_gguf_header(p))
        n = struct.unpack("<Q", magic)[0] if len(magic) == 8 else 0
        if p.suffix.lower() in SAFETENSORS_SUFFIXES or 2 <= n <= MAX_SAFETENSORS_HEADER:
            return True, _describe_safetensors(read_safetensors_header(p))
    except HeaderError as e:
        kind = "GGUF" if magic[:4] == GGUF_MAGIC or p.suffix.lower() == ".gguf" else "safetensors"
        if kind == "safetensors" and p.suffix.lower() not in SAFETENSORS_SUFFIXES:
            # a .bin/.pt whose first 8 bytes happen to read as a header length: not ours
            return True, "not a GGUF or safetensors file"
        return False, f"not a valid {kind} file: {e}"
    except OSError as e:
        return True, f"unreadable ({e.strerror or e})"
    return True, "not a GGUF or safetensors file"


def _describe_gguf(h: GgufHeader) -> str:
    arch = h.fields.get("general.architecture")
    arch = arch if isinstance(arch, str) and arch else "unknown architecture"
    name = h.fields.get("general.name")
    quant = None
    ftype = h.fields.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        try:
            from gguf import LlamaFileType

            quant = LlamaFileType(ftype).name.removeprefix("MOSTLY_")
        except Exception:  # noqa: BLE001 - an unknown file type: judged by the tensors
            quant = None
    if quant is None:  # the most common tensor type by size
        counts: dict[str, int] = {}
        for t in h.tensors:
            tn = h.type_name(t)
            counts[tn] = counts.get(tn, 0) + t.n_bytes
        quant = max(counts, key=counts.__getitem__) if counts else "?"
    who = f" ({name})" if isinstance(name, str) and name else ""
    return f"GGUF, architecture {arch}{who}, quant {quant}, {len(h.tensors)} tensors"


def _describe_safetensors(h: SafetensorsHeader) -> str:
    dtypes = sorted({t.dtype for t in h.tensors.values()})
    return f"safetensors, {len(h.tensors)} tensors ({', '.join(dtypes) or 'no dtype'})"
