"""Upscale images with an ESRGAN file through the engine child (no textual import).

The one path ``distill upscale`` and the TUI (Gallery ``u``, the Generate form's option) take:

* :func:`resolve_upscaler` - which file: a catalog model of type ``upscaler`` (its
  ``upscaler`` component, installed), named by id, else the ``active_upscaler_id`` setting
  when there is one, else the first installed; or a PATH to a ``.pth``/``.safetensors`` file.
  Its scale (1, 2 or 4) is read from the tensor names, as stable-diffusion.cpp reads it
  (``src/esrgan.hpp``): a file that is no ESRGAN is refused before the engine sees it.
* :func:`check_source` - the image: a regular file, a format Pillow reads, at most
  :data:`MAX_SOURCE_BYTES`, at most :data:`MAX_SOURCE_SIDE` px a side, and a result of at
  most :data:`MAX_RESULT_SIDE` px a side and :data:`MAX_RESULT_PIXELS` pixels - all read
  from the header, before a pixel is decoded (a decompression bomb never is).
* :func:`upscale_image` - run it (``EngineClient.upscale``), write the PNG where the Gallery
  finds it (the outputs folder, ``--out-dir`` or ``-o FILE`` under ``outputs.output_file_problem``'s
  rules) and append a history record linked to its source.

The result keeps the source's metadata: every PNG text chunk of the source (A1111
``parameters``, ComfyUI's ``prompt``/``workflow`` ...) is copied; ``parameters`` gets A1111's
own postprocessing fields appended (``Postprocess upscale by: 4, Postprocess upscaler:
NAME``) and the ``distill`` JSON chunk is the source's record plus an ``upscale`` object
(:func:`upscale_info`). The history record keeps the source's model, quants and parameters (a
reuse regenerates the source's picture) plus ``params["upscale"]``: the upscaler (id, name,
file, sha256), the scale, the sizes and the link to the source (path, sha256, its history id).

Memory and time are bounded by the limits above and the tile size (the engine's compute
buffer grows with the tile's square); the engine holds the whole result as float32 (12 B a
pixel) plus the 8-bit copies: ~1.2 GB at :data:`MAX_RESULT_PIXELS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill_tui.context import CoreContext
    from distill_tui.engine.client import EngineClient
    from distill_tui.engine.protocol import UpscaledEvent
    from distill_tui.outputs import History, HistoryRecord

#: a source image bigger than this on disk is refused before it is opened
MAX_SOURCE_BYTES = 256 << 20
#: the longest side of a source image
MAX_SOURCE_SIDE = 4096
#: the longest side of a result (source side x the model's scale)
MAX_RESULT_SIDE = 16384
#: the pixels of a result (8192 x 8192): the engine's float32 copy is 12 bytes a pixel
MAX_RESULT_PIXELS = 1 << 26
#: the image formats read as sources
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
#: an upscaler file larger than this is not an ESRGAN (x4plus: 67 MB)
MAX_UPSCALER_BYTES = 2 << 30
#: the text chunks of a source copied into the result: each, and all together
MAX_TEXT_CHUNK = 1 << 20
MAX_TEXTS = 4 << 20


class UpscaleError(Exception):
    """One line for the person. ``code`` 2: their input (a file, an option); 1: the run."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Upscaler:
    """An ESRGAN file ready to load."""

    path: Path
    name: str  # the catalog model's name, else the file name
    model_id: str | None = None  # the catalog id (None: a PATH)
    sha256: str | None = None  # full hex, when known
    scale: int = 4  # what the file's tensor names say (1, 2 or 4)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "name": self.name,
            "file": self.path.name,
            "sha256": (self.sha256 or "")[:10] or None,
            "scale": self.scale,
        }


@dataclass(frozen=True)
class Source:
    """A checked source image (its header only was read)."""

    path: Path
    width: int
    height: int
    format: str
    sha256: str
    texts: dict[str, str] = field(default_factory=dict)  # its text chunks (bounded)


@dataclass
class UpscaleOutcome:
    """What one upscale did (``distill upscale --json`` prints these)."""

    path: str
    source: Source
    upscaler: Upscaler
    width: int
    height: int
    scale: int
    timings: dict[str, float]
    history_id: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "scale": self.scale,
            "source": {
                "path": str(self.source.path),
                "sha256": self.source.sha256,
                "width": self.source.width,
                "height": self.source.height,
            },
            "upscaler": self.upscaler.info(),
            "historyId": self.history_id,
            "timings": self.timings,
        }


# ---- the upscaler -----------------------------------------------------------------------

_UPSCALER_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]{0,200}\.weight")


def _tensor_names(path: Path) -> set[str]:
    """The weight names of an ESRGAN file, read as sd.cpp reads them (safetensors header; a
    torch zip's ``data.pkl``; a legacy torch file's leading pickle), without unpickling."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) == 8 and not head.startswith(b"PK"):
            n = int.from_bytes(head, "little")
            if 2 <= n <= 100 << 20:  # a safetensors header
                first = fh.read(1)
                if first == b"{":
                    try:
                        header = json.loads(first + fh.read(n - 1))
                    except (ValueError, UnicodeDecodeError):
                        header = None
                    if isinstance(header, dict):
                        return {k for k in header if k.endswith(".weight")}
    raw = b""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith("data.pkl") and info.file_size <= 64 << 20:
                        raw = z.read(info)
                        break
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
            raw = b""
    else:
        with open(path, "rb") as fh:
            raw = fh.read(16 << 20)
    return {m.group(0).decode("ascii") for m in _NAME.finditer(raw)}


def esrgan_scale(path: Path) -> int | None:
    """The scale stable-diffusion.cpp gives this file (``src/esrgan.hpp``), None when the file
    is no ESRGAN it loads (neither the Real-ESRGAN ``body.N`` names nor the old
    ``model.N`` ones)."""
    names = _tensor_names(path)
    if "model.0.weight" in names:  # the old ESRGAN layout: the highest model.N decides
        top = max(int(m[1]) for n in names if (m := re.match(r"model\.(\d+)\.", n)))
        return 1 if top <= 4 else 2 if top <= 7 else 4
    if "conv_first.weight" in names and any(n.startswith("body.") for n in names):
        return 4 if "conv_up2.weight" in names else 2 if "conv_up1.weight" in names else 1
    return None


def upscaler_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be loaded as an upscaler (None: it can be tried)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return f"upscaler file not found: {p}"
    except OSError as e:
        return f"upscaler {p}: cannot be read ({e.strerror or e})"
    if not stat.S_ISREG(st.st_mode):
        return f"upscaler {p}: not a regular file"
    if st.st_size > MAX_UPSCALER_BYTES:
        return f"upscaler {p}: {st.st_size >> 20} MB is no ESRGAN file (those are under 100 MB)"
    if p.suffix.lower() not in _UPSCALER_SUFFIXES:
        return f"upscaler {p}: expected a .pth or .safetensors ESRGAN file"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _from_file(path: Path, name: str | None, model_id: str | None, sha: str | None) -> Upscaler:
    problem = upscaler_file_problem(path)
    if problem:
        raise UpscaleError(problem)
    try:
        scale = esrgan_scale(path)
    except OSError as e:
        raise UpscaleError(f"upscaler {path}: cannot be read ({e.strerror or e})") from None
    if scale is None:
        raise UpscaleError(
            f"upscaler {path}: not an ESRGAN (RRDBNet) file stable-diffusion.cpp loads "
            "(no conv_first/body.N or model.N weights)"
        )
    try:
        sha = sha or _sha256(path)
    except OSError as e:
        raise UpscaleError(f"upscaler {path}: cannot be read ({e.strerror or e})") from None
    return Upscaler(path=path, name=name or path.name, model_id=model_id, sha256=sha, scale=scale)


def _installed_file(ctx: CoreContext, model: Any) -> tuple[Path, str | None] | None:
    """(path, sha256) of the installed ``upscaler`` file of a catalog model, None if absent."""
    comp = model.component("upscaler") if hasattr(model, "component") else None
    if comp is None:
        return None
    for _qid, f in comp.files():
        if ctx.inventory.is_present(f.file):
            rec = ctx.inventory.get(f.file)
            return ctx.inventory.abs_path(f.file), f.sha256 or (rec.sha256 if rec else None)
    return None


def upscaler_models(ctx: CoreContext) -> list[Any]:
    """The catalog's upscaler models (none in a catalog without that type)."""
    of_type = getattr(ctx.catalog, "of_type", None)
    return list(of_type("upscaler")) if of_type else []


def resolve_upscaler(ctx: CoreContext, ref: str | None = None) -> Upscaler:
    """The upscaler ``ref`` names (a catalog id or a file path); None: the active one (the
    ``active_upscaler_id`` setting; not downloaded: refused, naming it), else the first
    installed."""
    models = upscaler_models(ctx)
    by_id = {m.id: m for m in models}
    if ref and ref not in by_id:
        p = Path(ref).expanduser()
        if p.suffix or os.sep in ref or p.exists():
            return _from_file(p.resolve(), None, None, None)
        ids = ", ".join(by_id) or "none in the catalog"
        other = ctx.catalog.get(ref)
        if other is not None:  # a catalog model of another type: say what it is
            what = "an image model" if other.type == "image-generation" else f"a {other.type}"
            raise UpscaleError(
                f"{other.id} is {what}, not an upscaler; upscalers: {ids} (or a .pth file path)"
            )
        raise UpscaleError(f"unknown upscaler {ref!r} (upscalers: {ids}; or a .pth file path)")
    active = getattr(ctx.settings.settings, "active_upscaler_id", None)
    if not ref and active in by_id:  # the one chosen (a stale id: as if none was)
        ref = active
    chosen = [by_id[ref]] if ref else models
    for m in chosen:
        got = _installed_file(ctx, m)
        if got is not None:
            return _from_file(got[0], m.name, m.id, got[1])
    if ref:  # the active one by its name (the command names its id); one typed as typed
        which = f"the active upscaler {by_id[ref].name}" if ref == active else f"upscaler {ref}"
        raise UpscaleError(
            f"{which} is not downloaded; run: distill models download {ref} (or --upscaler ID|PATH)"
        )
    if models:
        raise UpscaleError(
            "no upscaler is downloaded; run: distill models download "
            f"{models[0].id} (or --upscaler PATH)"
        )
    raise UpscaleError("no upscaler in the catalog; name a file: --upscaler PATH")


# ---- the source -------------------------------------------------------------------------


def _texts(im: Any) -> dict[str, str]:
    """The image's text chunks (PNG tEXt/zTXt/iTXt; a JPEG/WebP's parameters), bounded."""
    from distill_tui.outputs import read_parameters

    out: dict[str, str] = {}
    total = 0
    raw = getattr(im, "text", None) or {}
    for k, v in raw.items():
        v = str(v)
        try:
            ok = 0 < len(k.encode("latin-1")) < 80
        except UnicodeEncodeError:
            ok = False
        if not ok or len(v) > MAX_TEXT_CHUNK or total + len(v) > MAX_TEXTS:
            continue
        out[k] = v
        total += len(v)
    if "parameters" not in out and im.format in ("JPEG", "WEBP"):
        try:
            text = read_parameters(im.filename)
        except Exception:  # noqa: BLE001 - no readable EXIF: no parameters
            text = None
        if text and len(text) <= MAX_TEXT_CHUNK:
            out["parameters"] = text
    return out


def _size_problem(fmt: str, w: int, h: int, scale: int) -> str | None:
    """Why an image of this format and size is not upscaled (None: it is)."""
    if fmt not in SOURCE_FORMATS:
        return f"{fmt or 'unknown'} images are not upscaled (PNG, JPEG, WebP, BMP)"
    if w < 1 or h < 1 or max(w, h) > MAX_SOURCE_SIDE:
        return f"{w}x{h}; at most {MAX_SOURCE_SIDE} px a side is upscaled"
    ow, oh = w * scale, h * scale
    if max(ow, oh) > MAX_RESULT_SIDE or ow * oh > MAX_RESULT_PIXELS:
        return (
            f"{w}x{h} x{scale} would be {ow}x{oh}; at most {MAX_RESULT_SIDE} px a side and "
            f"{MAX_RESULT_PIXELS // 1_000_000} megapixels"
        )
    return None


def check_source(path: str | os.PathLike[str], scale: int = 4, *, digest: bool = True) -> Source:
    """The source image, checked from its header (see the module docstring); raises
    :class:`UpscaleError` with one line. ``digest`` False: no sha256 (the engine's guard)."""
    from PIL import Image

    p = Path(path).expanduser()
    try:
        p = p.resolve()
        st = os.stat(p)
    except FileNotFoundError:
        raise UpscaleError(f"image not found: {p}") from None
    except (OSError, RuntimeError) as e:
        raise UpscaleError(f"image {p}: cannot be read ({e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UpscaleError(f"image {p}: not a regular file")
    if st.st_size > MAX_SOURCE_BYTES:
        raise UpscaleError(
            f"image {p}: {st.st_size >> 20} MB; at most {MAX_SOURCE_BYTES >> 20} MB is upscaled"
        )
    try:
        with warnings.catch_warnings():  # a huge one is refused below, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)  # the header only: no pixel is decoded here
        with im:
            problem = _size_problem(im.format or "", *im.size, scale)
            if problem:
                raise UpscaleError(f"image {p}: {problem}")
            # a PNG's text after the pixels is read by decoding them: in bounds now
            texts = _texts(im) if digest else {}
            w, h, fmt = im.width, im.height, im.format or ""
    except Image.DecompressionBombError:
        raise UpscaleError(f"image {p}: too many pixels to upscale") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UpscaleError(f"image {p}: not an image ({e})") from None
    try:
        sha = _sha256(p) if digest else ""
    except OSError as e:
        raise UpscaleError(f"image {p}: cannot be read ({e.strerror or e})") from None
    return Source(path=p, width=w, height=h, format=fmt, sha256=sha, texts=texts)


# ---- metadata ---------------------------------------------------------------------------


def _source_record(
    ctx: CoreContext | None, history: History | None, src: Source
) -> HistoryRecord | None:
    """The history record that wrote the source image (by path, then by its bytes)."""
    if history is None:
        return None
    try:
        records = history.records()
    except OSError:
        return None
    path = str(src.path)
    for rec in records:
        if path in rec.images:
            f = rec.file(path)
            if f is None or f.sha256 == src.sha256:
                return rec
    for rec in records:
        if any(f.sha256 == src.sha256 for f in rec.files):
            return rec
    return None


def upscale_info(src: Source, up: Upscaler, record_id: str | None) -> dict[str, Any]:
    """The ``upscale`` object of the result's ``distill`` chunk and history params."""
    return {
        "upscaler": up.name,
        "upscaler_id": up.model_id,
        "upscaler_file": up.path.name,
        "upscaler_sha256": (up.sha256 or "")[:10] or None,
        "scale": up.scale,
        "width": src.width * up.scale,
        "height": src.height * up.scale,
        "source": str(src.path),
        "source_sha256": src.sha256,
        "source_width": src.width,
        "source_height": src.height,
        "source_record": record_id,
    }


def _postprocess_line(up: Upscaler) -> str:
    """A1111's own fields for an Extras upscale (its readers parse ``key: value`` pairs)."""
    name = re.sub(r"[,:\n\r]", " ", up.name).strip() or "ESRGAN"
    return f"Postprocess upscale by: {up.scale}, Postprocess upscaler: {name}"


def result_texts(src: Source, up: Upscaler, params: Mapping[str, Any]) -> dict[str, str]:
    """The result's text chunks: the source's, ``parameters`` + the postprocess fields, and
    ``distill`` = the source's parameters + ``upscale`` (``params``)."""
    texts = dict(src.texts)
    base = texts.get("parameters")
    if base is None and params.get("prompt") is not None and "prompt" in params:
        from distill_tui.outputs import format_parameters

        base = format_parameters(params) if params.get("steps") is not None else None
    extra = _postprocess_line(up)
    if base:
        lines = base.split("\n")
        if len(lines) > 1:  # the key: value line is the last one
            lines[-1] = f"{lines[-1]}, {extra}" if lines[-1].strip() else extra
            texts["parameters"] = "\n".join(lines)
        else:  # a prompt only
            texts["parameters"] = f"{base}\n{extra}"
    else:
        texts["parameters"] = f"\n{extra}"
    texts["distill"] = json.dumps(dict(params), default=str, sort_keys=True)
    return texts


def _source_params(src: Source, rec: HistoryRecord | None) -> dict[str, Any]:
    """The source's parameters: its history record's, else its ``distill`` chunk's, else
    what its A1111 ``parameters`` say (the prompt)."""
    if rec is not None:
        return dict(rec.params)
    raw = src.texts.get("distill")
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data.pop("upscale", None)
            return data
    text = src.texts.get("parameters")
    if text:
        from distill_tui.outputs import parse_parameters

        parsed = parse_parameters(text)
        out: dict[str, Any] = {"prompt": parsed.get("prompt", "")}
        seed = parsed.get("Seed", "")
        if seed.lstrip("-").isdigit() and len(seed) < 20:  # the name a result gets in a folder
            out["seed"] = int(seed)
        return out
    return {"prompt": ""}


# ---- run --------------------------------------------------------------------------------


def output_problem(out_file: str | None, overwrite: bool) -> str | None:
    """``-o FILE``'s rules (``distill generate -o``'s: the format, then what is there - a link
    is followed, a device/FIFO/folder never replaced) and a link to nothing is refused, not
    followed to create its target."""
    if not out_file:
        return None
    from distill_tui.outputs import output_file_problem, output_format_problem

    given = Path(out_file).expanduser()
    problem = output_format_problem(given)
    if problem is None and os.path.islink(given):
        problem = output_file_problem(given.absolute(), overwrite)
    if problem is None:
        try:
            problem = output_file_problem(given.resolve(), overwrite)
        except (OSError, RuntimeError) as e:  # a symlink loop
            problem = f"cannot be resolved ({e})"
    return problem


async def upscale_image(
    ctx: CoreContext,
    client: EngineClient,
    source: str | os.PathLike[str] | Source,
    upscaler: Upscaler,
    *,
    output_file: str | None = None,
    output_dir: str | None = None,
    overwrite: bool = False,
    tile_size: int | None = None,
    history: History | None = None,
    n_threads: int | None = None,
) -> UpscaleOutcome:
    """Upscale one image: check it, run the engine, write the result and its history record.

    ``output_file``: the exact path (``-o``; checked again here); else ``output_dir``, else the
    outputs folder. ``history``: where the record goes (default: ``ctx.paths.history_file``).
    Raises :class:`UpscaleError` (the input) or ``EngineError`` (the engine)."""
    from distill_tui.engine.protocol import UPSCALE_TILE_DEFAULT, UpscaleRequest
    from distill_tui.outputs import History, HistoryRecord

    t0 = time.monotonic()
    src = source if isinstance(source, Source) else check_source(source, upscaler.scale)
    if output_file:
        problem = output_problem(output_file, overwrite)
        if problem:
            raise UpscaleError(f"-o {output_file}: {problem}")
        output_file = str(Path(output_file).expanduser().resolve())
    history = history if history is not None else History(ctx.paths.history_file)
    rec = _source_record(ctx, history, src)
    params = _source_params(src, rec)
    params["upscale"] = upscale_info(src, upscaler, rec.id if rec else None)
    gen = ctx.settings.settings.generation
    threads = n_threads if n_threads is not None else gen.threads
    req = UpscaleRequest(
        upscaler_path=str(upscaler.path),
        image=str(src.path),
        tile_size=tile_size or UPSCALE_TILE_DEFAULT,
        n_threads=threads,
        offload_to_cpu=gen.offload_to_cpu,
        texts=result_texts(src, upscaler, params),
        seed=int(rec.seed if rec else params.get("seed") or 0),
        output_file=output_file,
        output_dir=None if output_file else str(output_dir or ctx.settings.outputs_dir),
        output_overwrite=overwrite,
    )
    ev: UpscaledEvent = await client.upscale(req)
    timings = {
        "load": ev.load_seconds,
        "upscale": ev.upscale_seconds,
        "save": ev.save_seconds,
        "total": round(time.monotonic() - t0, 4),
    }
    out = UpscaleOutcome(
        path=ev.path,
        source=src,
        upscaler=upscaler,
        width=ev.width,
        height=ev.height,
        scale=ev.scale,
        timings=timings,
    )
    record_params = dict(params)
    record_params.update(output_file=output_file, output_dir=req.output_dir)
    hrec = HistoryRecord(
        model_id=rec.model_id if rec else str(params.get("model_id") or ""),
        diffusion_quant=rec.diffusion_quant if rec else str(params.get("diffusion_quant") or ""),
        text_encoder_quant=(
            rec.text_encoder_quant if rec else str(params.get("text_encoder_quant") or "")
        ),
        params=record_params,
        seed=int(req.seed),
        images=[ev.path],
        timings=timings,
        backend=client.backend.backend if client.backend else "",
    )
    try:
        history.add(hrec)
        out.history_id = hrec.id
    except (OSError, ValueError):  # a full disk must not lose the image
        pass
    return out


async def upscale_many(
    ctx: CoreContext,
    client: EngineClient,
    sources: list[Source],
    upscaler: Upscaler,
    *,
    output_file: str | None = None,
    output_dir: str | None = None,
    overwrite: bool = False,
    tile_size: int | None = None,
    on_done: Callable[[UpscaleOutcome], None] | None = None,
) -> list[UpscaleOutcome]:
    """:func:`upscale_image` for each source in turn (the upscaler stays loaded)."""
    outs: list[UpscaleOutcome] = []
    for src in sources:
        out = await upscale_image(
            ctx,
            client,
            src,
            upscaler,
            output_file=output_file,
            output_dir=output_dir,
            overwrite=overwrite,
            tile_size=tile_size,
        )
        outs.append(out)
        if on_done is not None:
            on_done(out)
    return outs
