"""Generated images on disk: PNG naming + ``parameters`` text chunk, and the history file.

Decisions:

* **Who writes the PNG:** the engine child (``engine/child.py`` calls :func:`save_png`), so
  image bytes never travel over the protocol pipe; the parent gets paths in ``image`` events.
  The parent (``EngineClient`` when given a :class:`History`, or the caller) appends the
  history record once the generation is ``done``.
* **Names** sort by time and never collide: ``YYYYmmdd-HHMMSS-mmm_<seed>_<n>.png`` (local
  time), created with ``O_EXCL``; on a collision ``-1``, ``-2``... is appended.
* **Metadata** is the A1111 ``parameters`` tEXt chunk (read by A1111/Forge/ComfyUI-style
  tools and most image viewers): ``<prompt>\\nNegative prompt: <neg>\\nSteps: 4, Sampler: euler,
  CFG scale: 1.0, Seed: 1, Size: 64x64, Model: ..., Diffusion quant: ..., Text encoder quant:
  ..., Scheduler: ...``. A second ``distill`` chunk holds the same parameters as JSON.
* **History** is JSON lines at ``AppPaths.history_file`` (append under an ``flock`` on a
  sibling lock file plus a thread lock, one ``write`` of the whole line per record, fsync;
  deletes rewrite the file atomically). A torn/invalid line (even one that is not UTF-8) is
  skipped when reading and reported in ``History.warnings``, never fatal.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from pydantic import BaseModel, Field

from distill_tui.atomic import atomic_write_bytes

try:  # POSIX only; Windows falls back to the thread lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def format_parameters(params: Mapping[str, Any]) -> str:
    """The A1111 ``parameters`` text for ``params`` (a generation request's fields)."""
    lines = [str(params.get("prompt", ""))]
    neg = params.get("negative_prompt") or ""
    if neg:
        lines.append(f"Negative prompt: {neg}")
    fields: list[tuple[str, Any]] = [
        ("Steps", params.get("steps")),
        ("Sampler", params.get("sampler")),
        ("CFG scale", params.get("cfg_scale")),
        ("Seed", params.get("seed")),
        ("Size", f"{params.get('width')}x{params.get('height')}"),
        ("Model", params.get("model_id")),
        ("Diffusion quant", params.get("diffusion_quant")),
        ("Text encoder quant", params.get("text_encoder_quant")),
        ("Scheduler", params.get("scheduler")),
    ]
    if params.get("ref_images"):
        fields.append(("Reference images", len(params["ref_images"])))
    fields.extend(_knob_fields(params))
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v not in (None, "")))
    return "\n".join(lines)


def _on_off(value: Any) -> str | None:
    return None if value is None else ("on" if value else "off")


def _knob_fields(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """img2img, LoRAs and the engine knobs (A1111's names where it has one: ``Denoising
    strength``; the rest distill's own). Only what the parameters hold."""
    out: list[tuple[str, Any]] = []
    if params.get("init_image"):
        out.append(("Init image", Path(str(params["init_image"])).name.replace(",", " ")))
        out.append(("Denoising strength", params.get("strength")))
    loras = params.get("loras") or []
    if loras:
        # "name (weight); other (1)": no ':' or ',' inside the value - A1111 readers split the
        # line on ',' and each pair on ':' (sd-parsers drops a value holding another ':')
        text = "; ".join(
            f"{str(lo.get('name')).replace(':', ' ')} ({float(lo.get('weight', 1.0)):g})"
            for lo in loras
        )
        out.append(("LoRAs", text.replace(",", " ")))
    for key, label in (
        ("flash_attn", "Flash attention"),
        ("offload_to_cpu", "Offload to CPU"),
        ("keep_clip_on_cpu", "Text encoder on CPU"),
        ("keep_vae_on_cpu", "VAE on CPU"),
        ("vae_tiling", "VAE tiling"),
    ):
        if key in params:
            out.append((label, _on_off(params[key])))
    threads = params.get("n_threads")
    if threads is not None:
        out.append(("Threads", threads if threads > 0 else "auto"))
    return out


def parse_parameters(text: str) -> dict[str, str]:
    """Best-effort inverse of :func:`format_parameters` (prompt, negative, key: value pairs)."""
    lines = text.split("\n")
    out: dict[str, str] = {}
    kv_line = lines[-1] if len(lines) > 1 else ""
    body = lines[:-1] if len(lines) > 1 else lines
    neg = [ln for ln in body if ln.startswith("Negative prompt: ")]
    out["prompt"] = "\n".join(ln for ln in body if not ln.startswith("Negative prompt: "))
    if neg:
        out["negative_prompt"] = neg[0][len("Negative prompt: ") :]
    for part in kv_line.split(", "):
        if ": " in part:
            k, v = part.split(": ", 1)
            out[k] = v
    return out


def _stamp(now: float) -> str:
    t = time.localtime(now)
    return time.strftime("%Y%m%d-%H%M%S", t) + f"-{int(now * 1000) % 1000:03d}"


def _open_exclusive(path: Path) -> tuple[Path, int]:
    stem, suffix = path.stem, path.suffix or ".png"
    for n in range(10_000):
        cand = path if n == 0 else path.with_name(f"{stem}-{n}{suffix}")
        try:
            return cand, os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name near {path}")


#: ``-o FILE`` extensions and the format each writes; anything else is refused
OUTPUT_FORMATS = {"": "PNG", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
EXIF_IFD = 0x8769  #: the Exif sub-IFD
USER_COMMENT = 0x9286  #: EXIF UserComment: where A1111 writes (and reads) a JPEG/WebP's parameters


def output_format_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be written (None: a format we write)."""
    suffix = Path(path).suffix.lower()
    if suffix in OUTPUT_FORMATS:
        return None
    return (
        f"cannot write {suffix!r} images: use .png (parameters in the `parameters` text chunk), "
        ".jpg/.jpeg or .webp (parameters in EXIF UserComment)"
    )


def user_comment(text: str) -> bytes:
    """EXIF UserComment bytes as A1111 writes them (piexif's ``UserComment.dump(...,
    encoding="unicode")``): the ``UNICODE`` character code, then UTF-16 big-endian."""
    return b"UNICODE\0" + text.encode("utf-16-be")


def read_user_comment(raw: bytes) -> str:
    """The inverse of :func:`user_comment` (also plain ASCII comments)."""
    code, body = raw[:8], raw[8:]
    if code == b"UNICODE\0":
        return body.decode("utf-16-be", errors="replace")
    return body.decode("utf-8", errors="replace")


def exif_user_comment(comment: bytes) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + little-endian TIFF) whose Exif IFD holds one
    UserComment of type UNDEFINED, as the EXIF standard and A1111 (piexif) write it.

    Pillow's ``Image.Exif`` stores a bytes value of a sub-IFD as type BYTE: piexif then reads a
    tuple of ints and A1111's reader fails on ``.decode`` (sd-prompt-reader: FORMAT_ERROR)."""
    import struct

    ifd0 = 8  # IFD0: one entry (the Exif IFD pointer), then the next-IFD offset (0)
    sub = ifd0 + 2 + 12 + 4  # the Exif IFD: one entry (UserComment), next-IFD 0
    data = sub + 2 + 12 + 4  # UserComment's bytes (always more than 4: stored at an offset)
    tiff = b"II*\0" + struct.pack("<I", ifd0)
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", EXIF_IFD, 4, 1, sub) + b"\0" * 4
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", USER_COMMENT, 7, len(comment), data)
    tiff += b"\0" * 4 + comment
    return b"Exif\0\0" + tiff


def encode_image(image: Image.Image, fmt: str, params: Mapping[str, Any]) -> bytes:
    """``image`` in ``fmt`` (PNG, JPEG, WEBP) with the parameters where the format keeps them."""
    import io

    buf = io.BytesIO()
    img = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", format_parameters(params))
        info.add_text("distill", json.dumps(dict(params), default=str, sort_keys=True))
        img.save(buf, format="PNG", pnginfo=info)
    else:
        exif = exif_user_comment(user_comment(format_parameters(params)))
        extra = {"quality": 95} if fmt == "JPEG" else {"quality": 95, "method": 4}
        img.save(buf, format=fmt, exif=exif, **extra)
    return buf.getvalue()


def save_png(
    image: Image.Image,
    target: str | os.PathLike[str],
    params: Mapping[str, Any],
    *,
    index: int = 0,
    exact: bool = False,
) -> Path:
    """Save ``image`` with the ``parameters`` chunk; return the path written.

    ``target`` is a directory (a new time-sorted unique name is made inside it) unless
    ``exact`` is True, in which case it is the file path (overwritten if it exists, written
    through a temp file + ``os.replace``).
    """
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", format_parameters(params))
    info.add_text("distill", json.dumps(dict(params), default=str, sort_keys=True))
    img = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    target = Path(target)
    if exact:  # -o FILE: the format its extension names (.jpg/.webp: EXIF UserComment)
        target.parent.mkdir(parents=True, exist_ok=True)
        fmt = OUTPUT_FORMATS.get(target.suffix.lower(), "PNG")
        atomic_write_bytes(target, encode_image(img, fmt, params))
        return target
    target.mkdir(parents=True, exist_ok=True)
    name = f"{_stamp(time.time())}_{params.get('seed', 0)}_{index}.png"
    path, fd = _open_exclusive(target / name)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format="PNG", pnginfo=info)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path


def read_parameters(path: str | os.PathLike[str]) -> str | None:
    """The ``parameters`` text of a PNG (text chunk) or a JPEG/WebP (EXIF UserComment), or
    None."""
    with Image.open(path) as im:
        text = im.info.get("parameters")
        if text is not None or im.format == "PNG":
            return text  # type: ignore[return-value]
        raw = im.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
        return read_user_comment(raw) if isinstance(raw, bytes) and raw else None


# ---- history --------------------------------------------------------------------------


class HistoryRecord(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    model_id: str
    diffusion_quant: str
    text_encoder_quant: str
    params: dict[str, Any]  # every generation parameter as requested (seed -1 kept here)
    seed: int  # seed used for image 0 (image i used seed + i)
    images: list[str]
    timings: dict[str, float] = Field(default_factory=dict)
    backend: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model_id, self.diffusion_quant, self.text_encoder_quant)


class History:
    """Append-only JSONL history; ``records()`` newest first."""

    _tlock = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.warnings: list[str] = []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._tlock, open(self.path.with_name(self.path.name + ".lock"), "a+") as lf:
            if fcntl is not None:
                fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(lf.fileno(), fcntl.LOCK_UN)

    def add(self, record: HistoryRecord) -> HistoryRecord:
        """Append one record as ONE ``write`` of the whole line (``O_APPEND``), then fsync.

        A crash cannot leave half a record that swallows the next one: a previous torn tail
        (no final newline) gets a newline first, and a short write (disk full) is cut back
        to where the file ended."""
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    line = b"\n" + line
                try:
                    written = os.write(fd, line)
                    if written != len(line):
                        raise OSError(errno.ENOSPC, "short write to the history file")
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, end)
                    raise
                os.fsync(fd)
            finally:
                os.close(fd)
        return record

    def _lines(self) -> list[tuple[bytes, HistoryRecord | None]]:
        """Every non-empty line with its record (None: not a valid record, e.g. torn by a
        crash or not UTF-8). Each bad line adds one entry to :attr:`warnings`."""
        self.warnings = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[tuple[bytes, HistoryRecord | None]] = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                out.append((raw, HistoryRecord.model_validate_json(raw.decode("utf-8"))))
            except ValueError:  # UnicodeDecodeError and pydantic's ValidationError
                out.append((raw, None))
                self.warnings.append(f"{self.path.name}: line {n} is not a valid record; skipped")
        return out

    def _read(self) -> list[HistoryRecord]:
        return [rec for _raw, rec in self._lines() if rec is not None]

    def records(self) -> list[HistoryRecord]:
        """All records, newest first."""
        return list(reversed(self._read()))

    def get(self, record_id: str) -> HistoryRecord | None:
        return next((r for r in self._read() if r.id == record_id), None)

    def delete(self, record_id: str, delete_files: bool = True) -> bool:
        """Remove a record (and its image files). False if there was no such record.
        Lines that are not valid records are kept as they are (nothing is lost by a delete)."""
        with self._locked():
            lines = self._lines()
            recs = [rec for _raw, rec in lines if rec is not None]
            keep = [raw for raw, rec in lines if rec is None or rec.id != record_id]
            if len(keep) == len(lines):
                return False
            atomic_write_bytes(self.path, b"".join(raw + b"\n" for raw in keep))
        if delete_files:
            for r in recs:
                if r.id == record_id:
                    for p in r.images:
                        with contextlib.suppress(FileNotFoundError):
                            Path(p).unlink()
        return True
