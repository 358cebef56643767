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
  deletes rewrite the file atomically). A torn/invalid line (even one that is not UTF-8, or
  whose parameters have the wrong types) is skipped when reading and reported in
  ``History.warnings``, never fatal: every reader (Gallery, ``--reuse``) sees valid records
  only. The history holds prompts: it is private (0600), as the settings are; images follow
  the umask.
* **Nothing of the user's is replaced or deleted.** ``-o FILE`` never replaces what is not a
  regular file (a device, a FIFO, a folder: checked by the CLI before the engine loads and
  again right before the rename), nor an existing file unless asked (``overwrite``; without
  it the file is published with ``link``, which never replaces). Each record keeps the size
  and sha256 of every image it wrote (``files``); a delete removes only an image that is
  still ours: in the outputs folder, the recorded output folder (our own names) or the exact
  ``-o`` path, and still holding the recorded bytes (:meth:`History.delete`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Required

from PIL import Image, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

from distill_tui.atomic import atomic_write_bytes, fsync_dir, private_opener

try:  # POSIX only; Windows falls back to the thread lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def format_parameters(params: Mapping[str, Any]) -> str:
    """The A1111 ``parameters`` text for ``params`` (a generation request's fields)."""
    prompt = str(params.get("prompt", ""))
    # A1111 keeps a LoRA in the prompt as <lora:name:weight>, where its readers look for it;
    # distill applies LoRAs beside the prompt (the record keeps the prompt as typed), so the
    # tags are added here unless the prompt already holds one for that LoRA
    tags = [
        f"<lora:{lo.get('name')}:{float(lo.get('weight', 1.0)):g}>"
        for lo in params.get("loras") or []
        if isinstance(lo, Mapping) and f"<lora:{lo.get('name')}:" not in prompt
    ]
    lines = [" ".join([prompt, *tags]) if tags else prompt]
    neg = params.get("negative_prompt") or ""
    if neg:
        lines.append(f"Negative prompt: {neg}")
    from distill_tui.recipe import BY_NAME

    def row(name: str) -> tuple[str, Any]:  # a recipe.PARAMS row: its label, its value
        return BY_NAME[name].label, params.get(name)

    fields: list[tuple[str, Any]] = [
        row("steps"),
        row("sampler"),
        row("cfg_scale"),
        row("seed"),
        ("Size", f"{params.get('width')}x{params.get('height')}"),
        # A1111's: the first 10 hex of the checkpoint's sha256 (the diffusion file's, when
        # the inventory knows it)
        ("Model hash", params.get("model_hash")),
        ("Model", params.get("model_id")),
        ("Diffusion quant", params.get("diffusion_quant")),
        ("Text encoder quant", params.get("text_encoder_quant")),
        row("scheduler"),
    ]
    if (params.get("batch_count") or 1) > 1:
        fields.append(row("batch_count"))
    if params.get("ref_images"):
        fields.append((BY_NAME["ref_images"].label, len(params["ref_images"])))
    fields.extend(_knob_fields(params))
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v not in (None, "")))
    return "\n".join(lines)


def _on_off(value: Any) -> str | None:
    return None if value is None else ("on" if value else "off")


def _knob_fields(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """img2img, LoRAs and the engine knobs (A1111's names where it has one: ``Denoising
    strength``; the rest distill's own). Only what the parameters hold."""
    out: list[tuple[str, Any]] = []
    from distill_tui.recipe import BY_NAME, KNOBS

    if params.get("init_image"):
        name = Path(str(params["init_image"])).name.replace(",", " ")
        out.append((BY_NAME["init_image"].label, name))
        out.append((BY_NAME["strength"].label, params.get("strength")))
    loras = params.get("loras") or []
    if loras:
        # "name (weight); other (1)": no ':' or ',' inside the value - A1111 readers split the
        # line on ',' and each pair on ':' (sd-parsers drops a value holding another ':')
        text = "; ".join(
            f"{str(lo.get('name')).replace(':', ' ')} ({float(lo.get('weight', 1.0)):g})"
            for lo in loras
        )
        out.append((BY_NAME["loras"].label, text.replace(",", " ")))
    # the knobs of recipe.PARAMS, each by its label: what the parameters hold
    for p in KNOBS:
        if p.name in _ENGINE_KNOBS or params.get(p.name) is None:
            continue
        value = params[p.name]
        if p.kind == "bool":
            value = _on_off(value)
        elif p.name == "n_threads" and value <= 0:
            value = "auto"
        out.append((p.label, value))
    # the engine's own knobs (issue 20.4): shown when not the engine's default
    for key in _ENGINE_KNOBS:
        p, value = BY_NAME[key], params.get(key)
        if value is not None and value != p.default:
            out.append((p.label, _on_off(value) if p.kind == "bool" else value))
    return out


#: the ``recipe.PARAMS`` rows :func:`_knob_fields` labels by the table
_ENGINE_KNOBS = (
    "cache_mode",
    "cache_threshold",
    "flow_shift",
    "max_vram",
    "diffusion_conv_direct",
    "vae_conv_direct",
)


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
            return cand, os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask
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


class OutputRefused(OSError):
    """The exact output path holds something we must not replace (one line for the person)."""


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def output_files(path: str | os.PathLike[str], batch: int = 1) -> list[Path]:
    """The files ``-o path`` writes for a batch of ``batch`` (the engine child's names:
    ``<stem>-<n><suffix>`` when more than one)."""
    p = Path(path)
    if batch <= 1:
        return [p]
    return [p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}") for i in range(batch)]


def output_file_problem(path: str | os.PathLike[str], overwrite: bool) -> str | None:
    """Why the exact output ``path`` must not be written (None: it may). Not a regular file
    (device, FIFO, folder, a symlink to one): never. A regular file: only with
    ``overwrite``. Its folder: the nearest existing one must be a writable folder."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows a symlink: a link to /dev/full is a character device
    except (FileNotFoundError, NotADirectoryError):  # its folder is checked below
        st = None
        if os.path.islink(p):
            return f"{p} is a symbolic link to nothing; not replaced"
    except OSError as e:
        return f"{p} cannot be checked: {e.strerror or e}"
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            return f"{p} is {file_kind(st.st_mode)}, not a regular file; nothing is written there"
        if not overwrite:
            return f"{p} already exists; add --overwrite to replace it"
    folder = p.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder: {p} cannot be written"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by this user: {p} cannot be written"
    return None


def _umask() -> int:
    """The process umask (read without changing it where Linux says it)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_output_file(target: Path, data: bytes, *, overwrite: bool) -> None:
    """Publish ``data`` at the exact path ``target``: a temp file beside it (mode from the
    umask, fsync), then ``link`` (never replaces anything) or, with ``overwrite``, ``rename``
    over a regular file only (checked right before the rename). Raises :class:`OutputRefused`
    when the path holds something that is not ours to replace."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # an image, not a secret
            os.fsync(fh.fileno())
        published = False
        if not overwrite:
            try:
                os.link(tmp, target)  # fails on anything already there: never replaces
                published = True
            except FileExistsError:
                raise OutputRefused(_exists_problem(target, overwrite)) from None
            except OSError as e:  # a filesystem without hard links: check, then rename
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
        if not published:
            problem = _exists_problem(target, overwrite)
            if problem:
                raise OutputRefused(problem)
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(target.parent)


def _exists_problem(target: Path, overwrite: bool) -> str | None:
    try:
        st = os.lstat(target)  # the path itself: a symlink put there is not replaced either
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return f"{target} is {file_kind(st.st_mode)}, not a regular file; not replaced"
    if not overwrite:
        return f"{target} already exists; not replaced (--overwrite replaces it)"
    return None


def save_png(
    image: Image.Image,
    target: str | os.PathLike[str],
    params: Mapping[str, Any],
    *,
    index: int = 0,
    exact: bool = False,
    overwrite: bool = False,
) -> Path:
    """Save ``image`` with the ``parameters`` chunk; return the path written.

    ``target`` is a directory (a new time-sorted unique name is made inside it) unless
    ``exact`` is True, in which case it is the file path, written by
    :func:`write_output_file` (an existing regular file is replaced only with ``overwrite``;
    anything else never).
    """
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", format_parameters(params))
    info.add_text("distill", json.dumps(dict(params), default=str, sort_keys=True))
    img = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    target = Path(target)
    if exact:  # -o FILE: the format its extension names (.jpg/.webp: EXIF UserComment)
        fmt = OUTPUT_FORMATS.get(target.suffix.lower(), "PNG")
        write_output_file(target, encode_image(img, fmt, params), overwrite=overwrite)
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


def _text_info(texts: Mapping[str, str]) -> PngImagePlugin.PngInfo:
    """PNG text chunks, each as given (tEXt; iTXt for a value Latin-1 cannot hold)."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    return info


def save_texts_png(
    image: Image.Image,
    target: str | os.PathLike[str],
    texts: Mapping[str, str],
    *,
    seed: int = 0,
    index: int = 0,
    exact: bool = False,
    overwrite: bool = False,
) -> Path:
    """:func:`save_png` for an image whose text chunks are already made (an upscale keeps its
    source's): the same names in a folder, the same ``-o`` rules (a .jpg/.webp gets the
    ``parameters`` text as EXIF UserComment)."""
    img = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    target = Path(target)
    if exact:
        import io

        fmt = OUTPUT_FORMATS.get(target.suffix.lower(), "PNG")
        buf = io.BytesIO()
        if fmt == "PNG":
            img.save(buf, format="PNG", pnginfo=_text_info(texts))
        else:
            exif = exif_user_comment(user_comment(texts.get("parameters", "")))
            extra = {"quality": 95} if fmt == "JPEG" else {"quality": 95, "method": 4}
            img.save(buf, format=fmt, exif=exif, **extra)
        write_output_file(target, buf.getvalue(), overwrite=overwrite)
        return target
    target.mkdir(parents=True, exist_ok=True)
    path, fd = _open_exclusive(target / f"{_stamp(time.time())}_{seed}_{index}.png")
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format="PNG", pnginfo=_text_info(texts))
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


class _RecordLora(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow", allow_inf_nan=False)  # type: ignore[misc]
    name: Required[str]
    weight: float


#: a whole number a 64-bit field holds (a record's 5000-digit width is not a width)
_Int = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]


def _record_params() -> Any:
    """The types of the ``params`` a record's readers use (the Gallery's ``r``, ``--reuse``,
    the captions): one key per ``recipe.PARAMS`` row, typed by the row's kind. Types only, no
    ranges: a value out of today's range is refused where a request is built, as a typed one;
    a value of the wrong type makes the record invalid where it is read, once, for every
    reader. Keys it does not name are kept as they are. (A TypedDict: pydantic checks it while
    parsing the line, and it stays a plain dict.)"""
    from distill_tui.recipe import PARAMS

    kinds: dict[str, Any] = {
        "int": _Int | None,
        "float": float | None,
        "bool": bool | None,
        "choice": str | None,
        "text": str | None,
        "path": str | None,
        "paths": list[str] | None,
        "loras": list[_RecordLora] | None,
    }
    fields = {p.name: kinds[p.kind] for p in PARAMS}
    fields["prompt"] = str
    fields.update(output_dir=str | None, output_file=str | None)
    typed = TypedDict("RecordParams", fields, total=False)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="allow", allow_inf_nan=False)  # type: ignore[attr-defined]
    return typed


RecordParams = _record_params()


if TYPE_CHECKING:  # readers see a plain dict; pydantic checks the TypedDict's types
    _Params = dict[str, Any]
else:
    _Params = RecordParams


class ImageFile(BaseModel):
    """What one image of a record held when it was written: a delete removes only that."""

    path: str
    size: int
    sha256: str


def _problem(e: ValidationError) -> str:
    """The first problem of a validation error, in one short line (``params.width: ...``)."""
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return (f"{loc}: {msg}" if loc else msg)[:120]


class HistoryRecord(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    model_id: str
    diffusion_quant: str
    text_encoder_quant: str
    params: _Params  # every generation parameter as requested (seed -1 kept here)
    seed: int  # seed used for image 0 (image i used seed + i)
    images: list[str]
    timings: dict[str, float] = Field(default_factory=dict)
    backend: str = ""
    #: size + sha256 of each image when the record was written (older records: none)
    files: list[ImageFile] = Field(default_factory=list)

    def file(self, path: str) -> ImageFile | None:
        return next((f for f in self.files if f.path == path), None)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model_id, self.diffusion_quant, self.text_encoder_quant)


class History:
    """Append-only JSONL history; ``records()`` newest first."""

    _tlock = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.warnings: list[str] = []
        self.kept: list[tuple[str, str]] = []  #: images the last delete kept: (path, why)
        #: the newest line is a whole record of the wrong shape (``--reuse last`` says so)
        self.newest_is_invalid = False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with self._tlock, open(lock, "a+", opener=private_opener) as lf:
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
        to where the file ended. The size and sha256 of each image are recorded first
        (:attr:`HistoryRecord.files`)."""
        _stamp_files(record)
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._locked():
            # prompts are private (0600), also a history an older version created 0644
            fd = private_opener(str(self.path), os.O_RDWR | os.O_CREAT | os.O_APPEND)
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
        self.newest_is_invalid = False
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
            except UnicodeDecodeError:
                out.append((raw, None))
                self.warnings.append(f"{self.path.name}: line {n} is not UTF-8; skipped")
            except ValidationError as e:  # torn JSON, or a field of the wrong type
                out.append((raw, None))
                self.warnings.append(
                    f"{self.path.name}: line {n} is not a valid record ({_problem(e)}); skipped"
                )
        last = out[-1][0] if out else b""
        if out and out[-1][1] is None and last.rstrip().endswith(b"}"):  # not a torn tail
            self.newest_is_invalid = True
        return out

    def _read(self) -> list[HistoryRecord]:
        return [rec for _raw, rec in self._lines() if rec is not None]

    def records(self) -> list[HistoryRecord]:
        """All records, newest first."""
        return list(reversed(self._read()))

    def get(self, record_id: str) -> HistoryRecord | None:
        return next((r for r in self._read() if r.id == record_id), None)

    def delete(
        self,
        record_id: str,
        delete_files: bool = True,
        *,
        outputs_dir: str | os.PathLike[str] | None = None,
    ) -> bool:
        """Remove a record (and its image files). False if there was no such record.
        Lines that are not valid records are kept as they are (nothing is lost by a delete).

        Only an image that is still ours is deleted (:func:`deletable`); each one kept is
        listed in :attr:`kept` as ``(path, why)`` for the person to see."""
        self.kept = []
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
                        why = deletable(r, p, outputs_dir)
                        if why is not None:
                            if why:  # "": already gone, nothing to say
                                self.kept.append((p, why))
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            Path(p).unlink()
        return True


def _hash_file(path: str) -> ImageFile | None:
    """Size and sha256 of the regular file ``path`` (not following a symlink); None when it
    is not one or cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h, size = hashlib.sha256(), 0
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
            size += len(chunk)
        return ImageFile(path=path, size=size, sha256=h.hexdigest())
    except OSError:
        return None
    finally:
        os.close(fd)


def _stamp_files(record: HistoryRecord) -> None:
    """Record the size + sha256 of each image the record names and does not stamp yet."""
    for p in record.images:
        if record.file(p) is None:
            stamp = _hash_file(p)
            if stamp is not None:
                record.files.append(stamp)


#: the names :func:`save_png` gives in a folder (``<stamp>_<seed>_<index>[-n].png``)
_OUR_NAME = re.compile(r"\d{8}-\d{6}-\d{3}_-?\d+_\d+(-\d+)?\.png")


def _inside(path: Path, folder: str | os.PathLike[str] | None) -> bool:
    """``path`` is directly or deeper inside ``folder`` (real paths: a symlinked folder that
    leads elsewhere is not inside)."""
    if not folder:
        return False
    try:
        return path.parent.resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError):
        return False


def _is_output_file(p: Path, out_file: Path, batch: int | None) -> bool:
    """``p`` is the ``-o`` file or one of its batch's names (:func:`output_files`)."""
    if p == out_file:
        return True
    suffix = re.escape(out_file.suffix or ".png")
    m = re.fullmatch(re.escape(out_file.stem) + r"-(\d{1,4})" + suffix, p.name)
    return p.parent == out_file.parent and m is not None and 1 <= int(m[1]) <= (batch or 1)


def deletable(
    record: HistoryRecord, path: str, outputs_dir: str | os.PathLike[str] | None
) -> str | None:
    """None when the image ``path`` of ``record`` may be deleted; otherwise why it is kept
    ("" when there is nothing there). Ours means: a regular file (not a symlink), where
    distill wrote it — inside the outputs folder, or (a record that kept the image's bytes)
    the record's output folder under one of our own names, or its exact ``-o`` path — and,
    when the record kept them, still holding the same size and sha256."""
    p = Path(path)
    name = p.name
    if not p.is_absolute():
        return f"{name}: not an absolute path in the record; kept"
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"{name}: cannot be checked ({e.strerror or e}); kept"
    if not stat.S_ISREG(st.st_mode):
        return f"{name}: {file_kind(st.st_mode)}, not an image distill wrote; kept"
    stamp = record.file(path)
    params = record.params
    if stamp is None:  # an older record: only what is in the outputs folder
        if _inside(p, outputs_dir):
            return None
        return f"{name}: outside the outputs folder and no record of its bytes; kept"
    out_dir, out_file = params.get("output_dir"), params.get("output_file")
    inside = _inside(p, outputs_dir)
    where = (
        inside
        or (bool(out_dir) and p.parent == Path(str(out_dir)) and bool(_OUR_NAME.fullmatch(name)))
        or (bool(out_file) and _is_output_file(p, Path(str(out_file)), params.get("batch_count")))
    )
    if not where:
        return f"{name}: outside the outputs folder and not the recorded -o file; kept"
    now = _hash_file(path) if st.st_size == stamp.size else None
    if now is None or now.sha256 != stamp.sha256:
        return f"{name}: changed since it was generated (not distill's image any more); kept"
    if not inside and not _has_parameters(p):  # a record naming (and hashing) any file
        return f"{name}: not an image with distill's parameters; kept"
    return None


def _has_parameters(path: Path) -> bool:
    """The file is an image carrying the parameters distill writes into every image."""
    try:
        return read_parameters(path) is not None
    except Exception:  # noqa: BLE001 - not an image PIL reads: not ours
        return False
