"""Quant comparison: one prompt and seed through every chosen (diffusion × text encoder) quant
pair that is installed, and one contact sheet PNG of the results. No textual import.

* :func:`plan_compare` turns a model, the quant lists asked for (default: every downloaded
  quant of each component) and the generation parameters into a :class:`ComparePlan`, or
  raises :class:`CompareError` with one line a person can act on (a quant that is not
  downloaded names itself and the ``distill models download`` command that fetches it).
* :class:`CompareRun` drives an :class:`~distill_tui.engine.client.EngineClient` through the
  cells, row by row. Before each cell the engine unloads the previous model and the engine
  child's peak RSS is reset (``/proc/<pid>/clear_refs``), so each cell's load time and peak
  memory are its own. Each image is saved by the engine into the outputs folder and recorded
  in the history (when the client has one), so it shows in the Gallery. After every cell the
  sheet is rendered again and written atomically: a stop or a failure leaves a sheet of the
  cells that finished. :meth:`CompareRun.cancel` (or cancelling the task, e.g. Ctrl-C) ends
  the running cell by ending the engine child; the next request starts a fresh one.
* :class:`SheetRenderer` draws the sheet with Pillow: the prompt and shared parameters on
  top, text encoder quants as column headers, diffusion quants as row headers, each cell
  labelled with both quants, seconds (generation and load) and peak RSS. The sheet's
  ``parameters`` text chunk lists every cell; a ``distill-compare`` chunk holds the same as
  JSON (with each cell's pixel box).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from distill_tui.atomic import atomic_write_bytes
from distill_tui.catalog import UnknownModelError
from distill_tui.engine.protocol import MAX_SEED, GenerateRequest, LoadRequest
from distill_tui.formatting import human_size
from distill_tui.generation import GenParams
from distill_tui.resolver import ActivePaths as _NoPaths
from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.context import CoreContext
    from distill_tui.engine.client import EngineClient, GenerationResult
    from distill_tui.recipe import Recipe

log = logging.getLogger(__name__)

CellState = Literal["pending", "running", "done", "failed", "cancelled"]
COMPONENT_NAMES = {"diffusion": "diffusion", "textEncoder": "text encoder"}
DOWNLOAD_FLAGS = {"diffusion": "--diffusion", "textEncoder": "--text-encoder"}


class CompareError(Exception):
    """A comparison that cannot start; the message is one line for the person."""


# ---- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantFile:
    """One installed quant of a component."""

    id: str
    label: str
    size: int
    path: Path


@dataclass
class Cell:
    """One (diffusion quant, text encoder quant) pair and what came of it."""

    index: int
    row: int
    col: int
    diffusion: QuantFile
    text_encoder: QuantFile
    state: CellState = "pending"
    image: str | None = None
    seed: int | None = None
    seconds: float | None = None  # the whole cell: load + generate, client side
    load_seconds: float | None = None
    generate_seconds: float | None = None  # the engine's generate request (load excluded)
    peak_rss: int | None = None  # bytes: the engine child's peak resident memory in this cell
    vram_weights: int | None = None  # bytes of weights sd.cpp put in VRAM (GPU builds; its log)
    history_id: str | None = None
    error: str | None = None
    started: float | None = None

    @property
    def label(self) -> str:
        return f"{self.diffusion.id} × {self.text_encoder.id}"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


@dataclass
class ComparePlan:
    model_id: str
    model_name: str
    diffusion_name: str
    text_encoder_name: str
    diffusion: list[QuantFile]
    text_encoder: list[QuantFile]
    vae: Path
    params: GenParams  # seed fixed (never -1), batch 1, no reference image
    load: LoadRequest  # the shared load options; the paths are each cell's
    cells: list[Cell] = field(default_factory=list)
    family: str = "flux2-klein"  #: the model's: which engine slot each file loads into

    def __post_init__(self) -> None:
        if not self.cells:
            self.cells = [
                Cell(
                    index=r * len(self.text_encoder) + c, row=r, col=c, diffusion=d, text_encoder=t
                )
                for r, d in enumerate(self.diffusion)
                for c, t in enumerate(self.text_encoder)
            ]

    @property
    def rows(self) -> int:
        return len(self.diffusion)

    @property
    def cols(self) -> int:
        return len(self.text_encoder)

    @property
    def image_size(self) -> tuple[int, int]:
        """The size the engine makes (it rounds width and height up to multiples of 16)."""
        p = self.params
        return (math.ceil(p.width / 16) * 16, math.ceil(p.height / 16) * 16)

    def load_request(self, cell: Cell) -> LoadRequest:
        """The shared options with this cell's files, each in its family's engine slot."""
        from distill_tui.families import family

        spec = family(self.family)
        files = {"diffusion": cell.diffusion.path, "textEncoder": cell.text_encoder.path}
        files["vae"] = self.vae
        return self.load.model_copy(
            update={spec.slot(role): str(path) for role, path in files.items()}
        )

    def generate_request(self, cell: Cell, output_dir: str) -> GenerateRequest:
        return self.params.request(
            model_id=self.model_id,
            diffusion_quant=cell.diffusion.id,
            text_encoder_quant=cell.text_encoder.id,
            output_dir=output_dir,
            preview=False,
        )


def parse_quant_list(text: str | Sequence[str] | None) -> list[str] | None:
    """``"Q4_K_S, Q8_0"`` (or repeated flags) -> ``["Q4_K_S", "Q8_0"]``; None stays None."""
    if text is None:
        return None
    parts = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in parts:
        for q in part.split(","):
            q = q.strip()
            if q and q not in out:
                out.append(q)
    return out


def _pick_quants(
    core: CoreContext, model: Any, component: str, wanted: list[str] | None
) -> list[QuantFile]:
    section = model.section(component)
    name = COMPONENT_NAMES[component]
    inv = core.inventory
    if wanted is None:
        chosen = [q for q in section.quants if inv.is_present(q.file)]
        if not chosen:
            raise CompareError(
                f"no {name} quant of {model.id} is downloaded "
                f"(distill models download {model.id} {DOWNLOAD_FLAGS[component]} "
                f"{section.quants[0].id})"
            )
    else:
        if not wanted:
            raise CompareError(f"no {name} quant given")
        chosen = []
        for qid in wanted:
            quant = section.get(qid)
            if quant is None:
                raise CompareError(
                    f"{model.id} has no {name} quant {visible(qid)!r} "
                    f"(known: {', '.join(section.ids)})"
                )
            if not inv.is_present(quant.file):
                raise CompareError(
                    f"{name} quant {quant.id} of {model.id} is not downloaded "
                    f"(distill models download {model.id} {DOWNLOAD_FLAGS[component]} {quant.id})"
                )
            chosen.append(quant)
    return [
        QuantFile(
            id=q.id,
            label=q.label,
            size=rec.size if (rec := inv.get(q.file)) else q.size,
            path=inv.abs_path(q.file).resolve(),
        )
        for q in chosen
    ]


def base_load_request(
    core: CoreContext,
    threads: int | None = None,
    knobs: Recipe | None = None,
    family: str | None = None,
) -> LoadRequest:
    """The engine options (``knobs``' load-side rows, else the settings'; ``threads`` over
    them); the paths are filled per cell."""
    from distill_tui.recipe import Recipe

    recipe = knobs or Recipe.resolve(None, core.settings.settings.generation)
    if threads is not None:
        recipe = recipe.replace(n_threads=threads)
    paths = _NoPaths("", "", "", Path(), Path(), Path())
    return recipe.load_request(paths, None, encoder=False, family=family).model_copy(
        update={"diffusion_model_path": "", "llm_path": "", "vae_path": "", "lora_model_dir": ""}
    )


def plan_compare(
    core: CoreContext,
    params: GenParams,
    *,
    model_id: str | None = None,
    diffusion: Sequence[str] | None = None,
    text_encoder: Sequence[str] | None = None,
    threads: int | None = None,
    knobs: Recipe | None = None,
) -> ComparePlan:
    """The cells to run, or :class:`CompareError` (unknown model/quant, not downloaded)."""
    try:
        model = core.resolver.model(model_id)
    except UnknownModelError as e:
        raise CompareError(visible(str(e))) from None
    if model.type != "image-generation" or not {"diffusion", "textEncoder"} <= set(
        model.quant_roles
    ):
        what = "an upscaler" if model.type == "upscaler" else f"a {model.type} model"
        raise CompareError(
            visible(f"{model.id} is {what}: compare runs the quants of an image-generation model")
        )
    core.inventory.refresh()
    d = _pick_quants(core, model, "diffusion", None if diffusion is None else list(diffusion))
    t = _pick_quants(
        core, model, "textEncoder", None if text_encoder is None else list(text_encoder)
    )
    if not core.inventory.is_present(model.vae.file):
        raise CompareError(
            f"the VAE of {model.id} is not downloaded (distill models download {model.id})"
        )
    if not params.prompt.strip():
        raise CompareError("the prompt is empty")
    seed = params.seed if params.seed >= 0 else random.randrange(0, 2**32)
    if seed > MAX_SEED:
        raise CompareError(f"seed {seed} is too large (at most {MAX_SEED})")
    fixed = dataclasses.replace(
        params, seed=seed, batch_count=1, ref_images=(), init_image="", loras=()
    )
    return ComparePlan(
        model_id=model.id,
        model_name=model.name,
        diffusion_name=model.diffusion.name or "Diffusion",
        text_encoder_name=model.text_encoder_name,
        diffusion=d,
        text_encoder=t,
        vae=core.inventory.abs_path(model.vae.file).resolve(),
        params=fixed,
        load=base_load_request(core, threads, knobs, model.family),
        family=model.family,
    )


def default_sheet_path(output_dir: Path, seed: int) -> Path:
    """``<outputs>/compare-YYYYmmdd-HHMMSS_<seed>.png`` (a free name: ``-1``, ``-2``...)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(output_dir) / f"compare-{stamp}_{seed}.png"
    cand, n = base, 0
    while cand.exists():
        n += 1
        cand = base.with_name(f"{base.stem}-{n}.png")
    return cand


# ---- peak memory of the engine child ------------------------------------------------------


def reset_peak_rss(pid: int | None) -> bool:
    """Reset the child's peak RSS (Linux ``clear_refs`` 5). False where that is not possible."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_PARAMS_LINE = re.compile(r"total params memory size = [\d.]+ ?MB \(VRAM ([\d.]+) ?MB")


def vram_weights(log_lines: Sequence[str]) -> int | None:
    """Bytes of weights the last load put in VRAM, from sd.cpp's ``total params memory
    size`` log line; None on a CPU build (0 MB) or when the line is not in the tail."""
    for line in reversed(log_lines):
        m = _PARAMS_LINE.search(line)
        if m:
            mb = float(m.group(1))
            return int(mb * 1024 * 1024) if mb > 0 else None
    return None


def peak_rss(pid: int | None) -> int | None:
    """The process's peak resident memory in bytes (``VmHWM``), None where unknown."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# ---- the run ---------------------------------------------------------------------------

ChangeKind = Literal["cell", "sheet", "finished"]


@dataclass
class CompareResult:
    sheet: Path | None
    cells: list[Cell]
    interrupted: bool = False  # stopped by cancel() or task cancellation (Ctrl-C)
    seconds: float = 0.0

    @property
    def done(self) -> list[Cell]:
        return [c for c in self.cells if c.state == "done"]

    @property
    def failed(self) -> list[Cell]:
        return [c for c in self.cells if c.state == "failed"]


class CompareRun:
    """Runs a :class:`ComparePlan` on one engine client; call :meth:`run` once."""

    def __init__(
        self,
        plan: ComparePlan,
        client: EngineClient,
        *,
        output_dir: str | os.PathLike[str],
        sheet_path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        on_change: Callable[[ChangeKind, Cell | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.client = client
        self.output_dir = Path(output_dir)
        self.sheet_path = (
            Path(sheet_path)
            if sheet_path is not None
            else default_sheet_path(self.output_dir, plan.params.seed)
        )
        #: a sheet path given by the person: written as ``distill generate -o`` writes (never
        #: over a device, FIFO or folder; over an existing file only with ``overwrite``)
        self.exact = sheet_path is not None
        self._sheet_lock = threading.Lock()
        self.overwrite = overwrite
        self.on_change = on_change
        self.clock = clock
        self.renderer = SheetRenderer(plan)
        self.current: Cell | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.interrupted = False
        self.sheet_written = False
        self.sheet_error: str | None = None
        #: why no sheet was written on purpose (stopped before any cell finished)
        self.no_sheet: str | None = None
        self._cancel = False
        self._ending = False  # the last sheet is being written
        self._cancel_task: asyncio.Task | None = None

    @property
    def cells(self) -> list[Cell]:
        return self.plan.cells

    @property
    def running(self) -> bool:
        return self.started is not None and self.finished is None

    def progress_line(self) -> str:
        """``cell 2 of 4: Q8_0 × Q4_K_M`` (or how it ended)."""
        total = len(self.cells)
        done = sum(1 for c in self.cells if c.state == "done")
        if self.finished is not None:
            how = "stopped" if self.interrupted else "done"
            failed = sum(1 for c in self.cells if c.state == "failed")
            extra = f", {failed} failed" if failed else ""
            return f"{how}: {done} of {total} cells{extra}"
        if self.current is not None:
            return f"cell {self.current.index + 1} of {total}: {self.current.label}"
        if self.started is None or not any(c.finished for c in self.cells):
            return f"starting: {total} cells"
        return f"{done} of {total} cells done"

    def _changed(self, kind: ChangeKind, cell: Cell | None = None) -> None:
        if self.on_change is not None:
            try:
                self.on_change(kind, cell)
            except Exception:  # a UI bug must not stop the comparison
                log.exception("compare listener failed")

    def cancel(self) -> None:
        """Stop: the running cell is ended (with the engine child), no further cell starts.
        Call on the loop that runs :meth:`run`."""
        if self.finished is not None or self._cancel:
            return
        self._cancel = True
        if self.current is not None and self.client.busy:
            self._cancel_task = asyncio.get_running_loop().create_task(self.client.cancel())

    async def run(self) -> CompareResult:
        """Every cell in order; the sheet is written after each. Never raises for a failed
        cell (it is marked failed); re-raises task cancellation after the partial sheet."""
        from distill_tui.engine.client import EngineError

        self.started = self.clock()
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.finished = self.clock()
            raise CompareError(
                f"cannot create the output folder {self.output_dir}: {e.strerror or e}"
            ) from e
        cancelled_by_task = False
        try:
            for cell in self.cells:
                if self._cancel:
                    break
                try:
                    await self._run_cell(cell)
                except EngineError as e:
                    cell.seconds = self.clock() - (cell.started or self.clock())
                    if e.kind == "cancelled" or self._cancel:
                        cell.state = "cancelled"
                        self._cancel = True
                    else:
                        cell.state, cell.error = "failed", f"{e.kind}: {e.message}"
                        log.warning("compare cell %s failed: %s", cell.label, cell.error)
                    self._changed("cell", cell)
                    if e.kind in ("busy", "start"):
                        break  # nothing else can run
                finally:
                    self.current = None
                if cell.state in ("done", "failed"):
                    await self._write_sheet()
        except asyncio.CancelledError:
            cancelled_by_task = True
            self._cancel = True
            with contextlib.suppress(Exception):
                await self.client.cancel()
        finally:
            if self._cancel_task is not None:
                with contextlib.suppress(Exception):
                    await self._cancel_task
            self.interrupted = self._cancel
            self._ending = True
            for cell in self.cells:  # "cancelled": not run (stopped, or the engine gave up)
                if cell.state == "running" and not self._cancel:
                    cell.state, cell.error = "failed", "ended by an internal error"
                elif cell.state in ("pending", "running"):
                    cell.state = "cancelled"
            if self.interrupted and not any(c.state in ("done", "failed") for c in self.cells):
                # stopped before any cell finished: an empty sheet says nothing (issue 22.13)
                self.no_sheet = "stopped before any cell finished: no sheet written"
            else:
                await self._write_sheet(notify=False)
            self.finished = self.clock()
            if self.sheet_written:
                self._changed("sheet")
            self._changed("finished")
        result = CompareResult(
            sheet=self.sheet_path if self.sheet_written else None,
            cells=list(self.cells),
            interrupted=self.interrupted,
            seconds=round(self.finished - self.started, 3),
        )
        if cancelled_by_task:
            raise asyncio.CancelledError
        return result

    async def _run_cell(self, cell: Cell) -> None:
        self.current = cell
        cell.state = "running"
        cell.started = self.clock()
        self._changed("cell", cell)
        client = self.client
        # a clean start for this cell: the previous model is freed, the peak is reset
        if client.pid is not None and client.loaded_model is not None:
            await client.unload()
        if self._cancel:  # stopped while the previous model was being freed
            from distill_tui.engine.client import EngineError

            raise EngineError("cancelled", "stopped")
        reset_peak_rss(client.pid)
        result: GenerationResult = await client.generate(
            self.plan.load_request(cell),
            self.plan.generate_request(cell, str(self.output_dir)),
        )
        cell.seconds = round(self.clock() - cell.started, 3)
        cell.peak_rss = peak_rss(client.pid)
        cell.vram_weights = vram_weights(client.log_tail)
        cell.load_seconds = result.timings.load
        cell.generate_seconds = result.timings.total
        cell.seed = result.seed
        cell.image = result.paths[0] if result.paths else None
        cell.history_id = result.history_id
        cell.state = "done" if cell.image else "failed"
        if cell.image is None:
            cell.error = "the engine returned no image"
        self._changed("cell", cell)

    async def _write_sheet(self, notify: bool = True) -> None:
        try:
            await asyncio.to_thread(self.write_sheet)
        except OSError as e:
            self.sheet_error = f"sheet not written: {e.strerror or e}"
            log.warning("compare: %s", self.sheet_error)
            return
        if notify:
            self._changed("sheet")

    def write_sheet(self) -> Path:
        """Render and atomically write the sheet as it is now (blocking). One write at a
        time, each rendering the cells as they are when it runs: a write still running in
        its thread when Ctrl-C ends the run never races the final one (nor replaces it with
        an older sheet)."""
        with self._sheet_lock:
            png = self.renderer.png(self.cells, status=self.status_text())
            if self.exact:  # after the first write the file is ours to replace
                from distill_tui.outputs import write_output_file

                write_output_file(
                    self.sheet_path, png, overwrite=self.overwrite or self.sheet_written
                )
            else:
                atomic_write_bytes(self.sheet_path, png)
            self.sheet_written = True
            self.sheet_error = None
            return self.sheet_path

    def status_text(self) -> str:
        total = len(self.cells)
        done = sum(1 for c in self.cells if c.state == "done")
        if not self._ending:
            return f"{done} of {total} cells so far"
        if self.interrupted:
            return f"stopped after {done} of {total} cells"
        return f"{done} of {total} cells"


# ---- the sheet ---------------------------------------------------------------------------

BG = (19, 21, 26)
PANEL = (31, 34, 41)
EMPTY = (24, 26, 32)
HATCH = (36, 39, 47)
BORDER = (52, 57, 68)
TEXT = (233, 235, 238)
MUTED = (146, 153, 166)
ACCENT = (125, 166, 245)
GOOD = (124, 205, 150)
BAD = (238, 118, 124)

MIN_CELL = 256  # smaller images are scaled up (nearest) to at least this long side
MAX_CELL = 768  # larger ones are scaled down to this long side on the sheet

_FONT_FILES = {
    False: ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    True: ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
}


@dataclass
class _Font:
    font: Any
    fake_bold: bool = False  # no bold face found: draw with a 1 px stroke


def _font(size: int, bold: bool = False) -> _Font:
    for name in _FONT_FILES[bold]:
        with contextlib.suppress(OSError):
            return _Font(ImageFont.truetype(name, size))
    try:
        return _Font(ImageFont.load_default(size=size), fake_bold=bold)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return _Font(ImageFont.load_default(), fake_bold=bold)


def display_size(w: int, h: int) -> tuple[int, int]:
    """The size of an image on the sheet: small images are scaled up by a whole factor (crisp
    pixels), large ones down to :data:`MAX_CELL`."""
    long = max(w, h, 1)
    if long < MIN_CELL:
        k = math.ceil(MIN_CELL / long)
        return w * k, h * k
    if long > MAX_CELL:
        f = MAX_CELL / long
        return max(1, round(w * f)), max(1, round(h * f))
    return w, h


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


@dataclass
class SheetLayout:
    width: int
    height: int
    image_boxes: dict[tuple[int, int], tuple[int, int, int, int]]  # (row, col) -> box
    panel_boxes: dict[tuple[int, int], tuple[int, int, int, int]]


class SheetRenderer:
    """Draws the contact sheet of a plan; the layout depends on the plan only, so a partial
    sheet has the size of the full one."""

    def __init__(self, plan: ComparePlan) -> None:
        self.plan = plan
        w, h = plan.image_size
        self.iw, self.ih = display_size(w, h)
        f = max(13, min(22, round(max(self.iw, 300) / 19)))
        self.f = f
        self.font = _font(f)
        self.bold = _font(f, bold=True)
        self.small = _font(max(11, f - 3))
        self.small_bold = _font(max(11, f - 3), bold=True)
        self.title = _font(round(f * 1.35), bold=True)
        self.line = round(f * 1.45)
        self.pad = max(8, f // 2)
        self.gap = round(f * 0.9)
        self.margin = round(f * 1.6)
        self.layout = self._layout()

    # ---- measuring ---------------------------------------------------------------------
    @staticmethod
    def _width(text: str, font: _Font) -> int:
        return int(math.ceil(font.font.getlength(text))) + (1 if font.fake_bold else 0)

    def _wrap(self, text: str, font: _Font, max_w: int, max_lines: int) -> list[str]:
        words = text.split()
        lines: list[str] = []
        cur = ""
        for word in words:
            cand = f"{cur} {word}" if cur else word
            if self._width(cand, font) <= max_w:
                cur = cand
                continue
            if cur:
                lines.append(cur)
            cur = word
            while self._width(cur, font) > max_w and len(cur) > 1:  # one very long word
                cut = len(cur)
                while cut > 1 and self._width(cur[:cut], font) > max_w:
                    cut -= 1
                lines.append(cur[:cut])
                cur = cur[cut:]
        if cur:
            lines.append(cur)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            last = lines[-1]
            while last and self._width(last + "…", font) > max_w:
                last = last[:-1]
            lines[-1] = last.rstrip() + "…"
        return lines or [""]

    def _row_header_lines(self, q: QuantFile) -> list[tuple[str, _Font, tuple[int, int, int]]]:
        return [(visible(q.id), self.bold, ACCENT), (human_size(q.size, 2), self.small, MUTED)]

    def _layout(self) -> SheetLayout:
        p = self.plan
        caption_h = self.pad + 3 * self.line
        self.panel_w = self.iw + 2 * self.pad
        self.panel_h = self.pad + self.ih + caption_h
        # left band: the rotated axis title, then the row labels
        label_w = max(
            self._width(text, font)
            for q in p.diffusion
            for text, font, _c in self._row_header_lines(q)
        )
        self.axis_w = self.line
        self.row_label_w = max(label_w, self._width("DIFFUSION", self.small_bold)) + self.gap
        grid_x = self.margin + self.axis_w + self.gap + self.row_label_w
        grid_w = p.cols * self.panel_w + (p.cols - 1) * self.gap
        width = grid_x + grid_w + self.margin
        # top: title block (prompt up to 2 lines, parameters line), axis title, column labels
        self.title_lines = self._wrap(
            visible(" ".join(p.params.prompt.split())), self.title, width - 2 * self.margin, 2
        )
        title_line_h = round(self.title.font.size * 1.3)
        self.title_h = len(self.title_lines) * title_line_h + self.line  # + parameters line
        self.title_line_h = title_line_h
        header_y = self.margin + self.title_h + self.gap
        self.col_axis_y = header_y
        self.col_label_y = header_y + self.line
        grid_y = self.col_label_y + self.line + self.gap
        grid_h = p.rows * self.panel_h + (p.rows - 1) * self.gap
        footer_y = grid_y + grid_h + self.gap
        height = footer_y + self.line + self.margin // 2
        self.grid_x, self.grid_y, self.grid_w, self.grid_h = grid_x, grid_y, grid_w, grid_h
        self.footer_y = footer_y
        images: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        panels: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        for r in range(p.rows):
            for c in range(p.cols):
                x = grid_x + c * (self.panel_w + self.gap)
                y = grid_y + r * (self.panel_h + self.gap)
                panels[(r, c)] = (x, y, x + self.panel_w, y + self.panel_h)
                ix, iy = x + self.pad, y + self.pad
                images[(r, c)] = (ix, iy, ix + self.iw, iy + self.ih)
        return SheetLayout(width, height, images, panels)

    # ---- drawing -----------------------------------------------------------------------
    def _text(
        self,
        d: ImageDraw.ImageDraw,
        xy: tuple[float, float],
        text: str,
        font: _Font,
        fill: tuple[int, int, int],
        anchor: str = "la",
    ) -> None:
        kw: dict[str, Any] = {}
        if font.fake_bold:
            kw = {"stroke_width": 1, "stroke_fill": fill}
        d.text(xy, text, font=font.font, fill=fill, anchor=anchor, **kw)

    def _badge(
        self, d: ImageDraw.ImageDraw, right: float, mid: float, text: str, room: int
    ) -> None:
        """A small right-aligned green word, only where it does not touch the line's text."""
        if self._width(text, self.small) + self.f <= room:
            self._text(d, (right, mid), text, self.small, GOOD, "rm")

    def _params_line(self) -> str:
        p = self.plan.params
        w, h = self.plan.image_size
        bits = [
            f"seed {p.seed}",
            f"{w}×{h}",
            f"{p.steps} step{'s' if p.steps != 1 else ''}",
            f"cfg {p.cfg_scale:g}",
            visible(p.sampler) + ("" if p.scheduler == "default" else f"/{visible(p.scheduler)}"),
            visible(self.plan.model_name),
        ]
        if p.negative_prompt:
            bits.append("negative: " + visible(" ".join(p.negative_prompt.split())))
        return "  ·  ".join(bits)

    def render(self, cells: Iterable[Cell], status: str = "") -> Image.Image:
        cells = list(cells)
        lay = self.layout
        im = Image.new("RGB", (lay.width, lay.height), BG)
        d = ImageDraw.Draw(im)
        m = self.margin
        # title
        y = m
        for line in self.title_lines:
            self._text(d, (m, y), line, self.title, TEXT)
            y += self.title_line_h
        params = self._wrap(self._params_line(), self.font, lay.width - 2 * m, 1)[0]
        self._text(d, (m, y + (self.line - self.f) // 2), params, self.font, MUTED)
        # column axis + labels
        cx = self.grid_x + self.grid_w / 2
        axis = f"TEXT ENCODER  ·  {visible(self.plan.text_encoder_name)}"
        axis = self._wrap(axis, self.small_bold, self.grid_w, 1)[0]
        self._text(d, (cx, self.col_axis_y + self.line / 2), axis, self.small_bold, MUTED, "mm")
        for c, q in enumerate(self.plan.text_encoder):
            x0 = self.grid_x + c * (self.panel_w + self.gap)
            qid = visible(q.id)
            size = human_size(q.size, 2)
            wq = self._width(qid, self.bold)
            ws = self._width("  " + size, self.small)
            left = x0 + (self.panel_w - wq - ws) / 2
            base = self.col_label_y + self.line * 0.75
            self._text(d, (left, base), qid, self.bold, ACCENT, "ls")
            self._text(d, (left + wq, base), "  " + size, self.small, MUTED, "ls")
        # underline of the header band
        d.line(
            [
                (self.grid_x, self.grid_y - self.gap / 2),
                (self.grid_x + self.grid_w, self.grid_y - self.gap / 2),
            ],
            fill=BORDER,
            width=1,
        )
        # row axis (rotated) + labels
        axis = f"DIFFUSION  ·  {visible(self.plan.diffusion_name)}"
        axis = self._wrap(axis, self.small_bold, self.grid_h, 1)[0]
        tw = self._width(axis, self.small_bold) + 4
        strip = Image.new("RGB", (tw, self.line), BG)
        self._text(
            ImageDraw.Draw(strip), (tw / 2, self.line / 2), axis, self.small_bold, MUTED, "mm"
        )
        strip = strip.rotate(90, expand=True)
        im.paste(strip, (m, int(self.grid_y + self.grid_h / 2 - strip.height / 2)))
        lx = m + self.axis_w + self.gap
        for r, q in enumerate(self.plan.diffusion):
            y0 = self.grid_y + r * (self.panel_h + self.gap) + self.pad
            mid = y0 + self.ih / 2
            lines = self._row_header_lines(q)
            top = mid - len(lines) * self.line / 2
            for i, (text, font, fill) in enumerate(lines):
                self._text(d, (lx, top + i * self.line + self.line / 2), text, font, fill, "lm")
        d.line(
            [
                (self.grid_x - self.gap / 2, self.grid_y),
                (self.grid_x - self.gap / 2, self.grid_y + self.grid_h),
            ],
            fill=BORDER,
            width=1,
        )
        # cells
        done = [c for c in cells if c.state == "done"]
        timed = [c for c in done if c.generate_seconds]
        fastest = (
            min(timed, key=lambda c: c.generate_seconds or 0).index if len(timed) > 1 else None
        )
        with_rss = [c for c in done if c.peak_rss]
        leanest = (
            min(with_rss, key=lambda c: (c.vram_weights or 0, c.peak_rss or 0)).index
            if len(with_rss) > 1
            else None
        )
        for cell in cells:
            self._draw_cell(im, d, cell, fastest == cell.index, leanest == cell.index)
        # footer
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
        foot = (
            f"distill compare  ·  {status}  ·  {stamp}"
            if status
            else f"distill compare  ·  {stamp}"
        )
        self._text(d, (m, self.footer_y + self.line / 2), foot, self.small, MUTED, "lm")
        return im

    def _draw_cell(
        self, im: Image.Image, d: ImageDraw.ImageDraw, cell: Cell, fastest: bool, leanest: bool
    ) -> None:
        lay = self.layout
        x0, y0, x1, y1 = lay.panel_boxes[(cell.row, cell.col)]
        ix0, iy0, ix1, iy1 = lay.image_boxes[(cell.row, cell.col)]
        outline = ACCENT if cell.state == "running" else BORDER
        d.rounded_rectangle(
            [x0, y0, x1 - 1, y1 - 1], radius=max(4, self.pad // 2), fill=PANEL, outline=outline
        )
        shown = False
        if cell.state == "done" and cell.image:
            try:
                with Image.open(cell.image) as src:
                    src.load()
                    pic = src.convert("RGB")
                sw, sh = pic.size
                k = min(self.iw / sw, self.ih / sh)
                size = (max(1, round(sw * k)), max(1, round(sh * k)))
                if size != pic.size:
                    whole = k >= 1 and abs(k - round(k)) < 1e-6
                    resample = Image.Resampling.NEAREST if whole else Image.Resampling.LANCZOS
                    pic = pic.resize(size, resample)
                im.paste(pic, (ix0 + (self.iw - size[0]) // 2, iy0 + (self.ih - size[1]) // 2))
                shown = True
            except (OSError, ValueError) as e:
                cell_note = f"image unreadable: {e}"
                log.warning("compare sheet: %s", cell_note)
        if not shown:
            d.rectangle([ix0, iy0, ix1 - 1, iy1 - 1], fill=EMPTY)
            step = max(10, self.f)
            for k in range(-self.ih, self.iw, step):  # a quiet hatch: "no image here"
                d.line(
                    [
                        (ix0 + max(k, 0), iy0 + max(-k, 0)),
                        (ix0 + min(k + self.ih, self.iw) - 1, iy0 + min(self.ih, self.iw - k) - 1),
                    ],
                    fill=HATCH,
                )
            word = {
                "pending": "waiting",
                "running": "running…",
                "failed": "failed",
                "cancelled": "not run",
                "done": "image missing",
            }[cell.state]
            color = (
                BAD
                if cell.state in ("failed", "done")
                else (ACCENT if cell.state == "running" else MUTED)
            )
            self._text(d, ((ix0 + ix1) / 2, (iy0 + iy1) / 2), word, self.bold, color, "mm")
        d.rectangle([ix0, iy0, ix1 - 1, iy1 - 1], outline=BORDER)
        # caption: quants, then seconds, then memory (or the error)
        cx = x0 + self.pad
        cy = iy1 + self.pad // 2
        inner = self.iw
        d_id, t_id = visible(cell.diffusion.id), visible(cell.text_encoder.id)
        self._text(d, (cx, cy + self.line / 2), d_id, self.bold, TEXT, "lm")
        wx = cx + self._width(d_id, self.bold)
        self._text(d, (wx, cy + self.line / 2), "  ×  ", self.font, MUTED, "lm")
        wx += self._width("  ×  ", self.font)
        self._text(d, (wx, cy + self.line / 2), t_id, self.bold, TEXT, "lm")
        sizes = f"{human_size(cell.diffusion.size, 2)} + {human_size(cell.text_encoder.size, 2)}"
        if self._width(d_id + "  ×  " + t_id + "   " + sizes, self.bold) <= inner:
            self._text(
                d, (x0 + self.pad + inner, cy + self.line / 2), sizes, self.small, MUTED, "rm"
            )
        cy += self.line
        if cell.state == "done":
            if cell.generate_seconds:
                line2 = f"gen {_fmt_seconds(cell.generate_seconds)}"
                rest = f"  ·  load {_fmt_seconds(cell.load_seconds)}" if cell.load_seconds else ""
            else:
                line2, rest = f"{_fmt_seconds(cell.seconds)} in all", ""
            mid = cy + self.line / 2
            self._text(d, (cx, mid), line2, self.font, GOOD if fastest else TEXT, "lm")
            if rest:
                self._text(
                    d, (cx + self._width(line2, self.font), mid), rest, self.font, TEXT, "lm"
                )
            used = self._width(line2 + rest, self.font)
            if fastest:
                self._badge(d, x0 + self.pad + inner, mid, "fastest", inner - used)
            cy += self.line
            mid = cy + self.line / 2
            mem = (
                f"peak RSS {human_size(cell.peak_rss, 1)}"
                if cell.peak_rss
                else "peak memory unknown"
            )
            if cell.vram_weights:  # a GPU build: what the weights took on the card first
                mem = f"VRAM {human_size(cell.vram_weights, 1)} weights · {mem}"
            mem = self._wrap(mem, self.small, inner, 1)[0]
            self._text(d, (cx, mid), mem, self.small, GOOD if leanest else MUTED, "lm")
            if leanest:  # the green line says it; the word too where there is room
                used = self._width(mem, self.small)
                self._badge(d, x0 + self.pad + inner, mid, "least memory", inner - used)
        elif cell.state == "failed":
            for line in self._wrap(visible(cell.error or "failed"), self.small, inner, 2):
                self._text(d, (cx, cy + self.line / 2), line, self.small, BAD, "lm")
                cy += self.line
        else:
            words = {"cancelled": "stopped before it ran", "pending": "", "running": "generating…"}
            self._text(
                d, (cx, cy + self.line / 2), words.get(cell.state, ""), self.small, MUTED, "lm"
            )

    # ---- the file ----------------------------------------------------------------------
    def parameters_text(self, cells: Sequence[Cell], status: str = "") -> str:
        return sheet_parameters(self.plan, cells, status)

    def metadata(self, cells: Sequence[Cell]) -> dict[str, Any]:
        p = self.plan
        w, h = p.image_size
        return {
            "kind": "distill-compare",
            "prompt": p.params.prompt,
            "negative_prompt": p.params.negative_prompt,
            "seed": p.params.seed,
            "width": w,
            "height": h,
            "steps": p.params.steps,
            "cfg_scale": p.params.cfg_scale,
            "sampler": p.params.sampler,
            "scheduler": p.params.scheduler,
            "model_id": p.model_id,
            "rows": [q.id for q in p.diffusion],
            "cols": [q.id for q in p.text_encoder],
            "cells": [
                {
                    "row": c.row,
                    "col": c.col,
                    "diffusion_quant": c.diffusion.id,
                    "text_encoder_quant": c.text_encoder.id,
                    "diffusion_size": c.diffusion.size,
                    "text_encoder_size": c.text_encoder.size,
                    "state": c.state,
                    "seconds": c.seconds,
                    "load_seconds": c.load_seconds,
                    "generate_seconds": c.generate_seconds,
                    "peak_rss": c.peak_rss,
                    "vram_weights": c.vram_weights,
                    "image": c.image,
                    "history_id": c.history_id,
                    "error": c.error,
                    "box": list(self.layout.image_boxes[(c.row, c.col)]),
                }
                for c in cells
            ],
        }

    def png(self, cells: Sequence[Cell], status: str = "") -> bytes:
        img = self.render(cells, status)
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", self.parameters_text(cells, status))
        info.add_text("distill-compare", json.dumps(self.metadata(cells), sort_keys=True))
        buf = io.BytesIO()
        img.save(buf, format="PNG", pnginfo=info, optimize=False)
        return buf.getvalue()


def sheet_parameters(plan: ComparePlan, cells: Sequence[Cell], status: str = "") -> str:
    """The sheet's ``parameters`` text: prompt, negative prompt, one line per cell, then the
    shared A1111-style ``key: value`` line (last, as A1111 readers expect)."""
    p = plan.params
    w, h = plan.image_size
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    for c in cells:
        bits = [
            f"Diffusion quant: {c.diffusion.id} ({human_size(c.diffusion.size, 2)})",
            f"Text encoder quant: {c.text_encoder.id} ({human_size(c.text_encoder.size, 2)})",
            f"State: {c.state}",
        ]
        if c.state == "done":
            bits += [
                f"Time: {c.seconds:.2f} s" if c.seconds is not None else "Time: ?",
                f"Generate: {c.generate_seconds:.2f} s" if c.generate_seconds else "Generate: ?",
                f"Load: {c.load_seconds:.2f} s" if c.load_seconds is not None else "Load: ?",
                f"Peak RSS: {human_size(c.peak_rss, 1)}" if c.peak_rss else "Peak RSS: unknown",
                *([f"VRAM weights: {human_size(c.vram_weights, 2)}"] if c.vram_weights else []),
                f"Image: {Path(c.image).name}" if c.image else "Image: none",
            ]
        elif c.error:
            bits.append(f"Error: {' '.join(c.error.split())}")
        lines.append(
            f"Cell {c.index + 1} (row {c.row + 1}, column {c.col + 1}): " + ", ".join(bits)
        )
    kv = [
        ("Steps", p.steps),
        ("Sampler", p.sampler),
        ("CFG scale", p.cfg_scale),
        ("Seed", p.seed),
        ("Size", f"{w}x{h}"),
        ("Model", plan.model_id),
        ("Scheduler", p.scheduler),
        ("Diffusion quants", "|".join(q.id for q in plan.diffusion)),
        ("Text encoder quants", "|".join(q.id for q in plan.text_encoder)),
        ("Grid", f"{plan.rows}x{plan.cols}"),
        ("Cells done", f"{sum(1 for c in cells if c.state == 'done')}/{len(cells)}"),
    ]
    if status:
        kv.append(("Status", status))
    lines.append(", ".join(f"{k}: {v}" for k, v in kv))
    return "\n".join(lines)


def read_sheet_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``distill-compare`` JSON of a sheet PNG, or None."""
    with Image.open(path) as im:
        raw = im.info.get("distill-compare")
    return json.loads(raw) if isinstance(raw, str) else None
