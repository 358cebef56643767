"""Quant comparison (``distill compare``): the real engine child on the tiny model set, with
two diffusion and two text encoder quants installed (tests/compare_helpers.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from distill_tui.compare import (
    BG,
    EMPTY,
    CompareError,
    CompareRun,
    SheetRenderer,
    display_size,
    parse_quant_list,
    plan_compare,
    read_sheet_metadata,
)
from distill_tui.engine.client import EngineClient
from distill_tui.generation import GenParams
from distill_tui.outputs import History, read_parameters
from tests.compare_helpers import (
    COMPARE_MODEL_ID,
    DIFFUSION,
    MISSING_DIFFUSION,
    MISSING_TEXT_ENCODER,
    TEXT_ENCODER,
    install_compare_model,
    tiny_compare_files,  # noqa: F401  (fixture)
)

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a lighthouse on a cliff at dusk"
PAIRS = [(d, t) for d in DIFFUSION for t in TEXT_ENCODER]


@pytest.fixture
def compare_core(app_paths, tiny_compare_files):  # noqa: F811
    return install_compare_model(app_paths, tiny_compare_files)


def params(seed: int = 42) -> GenParams:
    return GenParams(prompt=PROMPT, width=64, height=64, steps=2, seed=seed)


def region(img: Image.Image, box) -> Image.Image:
    return img.crop(tuple(box))


def assert_picture(img: Image.Image, box) -> None:
    """The box holds a picture: not one flat colour, and not the sheet's background."""
    part = region(img, box)
    lo_hi = part.getextrema()
    assert any(hi - lo > 20 for lo, hi in lo_hi), lo_hi
    mean = ImageStat.Stat(part).mean
    assert max(abs(m - b) for m, b in zip(mean, BG, strict=True)) > 10, mean


def assert_empty(img: Image.Image, box) -> None:
    """The box holds the "no image" placeholder (dark, close to EMPTY)."""
    mean = ImageStat.Stat(region(img, box)).mean
    assert max(abs(m - e) for m, e in zip(mean, EMPTY, strict=True)) < 25, mean


# ---- no engine ----------------------------------------------------------------------------


def test_quant_lists_and_display_size():
    assert parse_quant_list(None) is None
    assert parse_quant_list(["Q4_K_S, Q8_0", "Q8_0", " Q6_K"]) == ["Q4_K_S", "Q8_0", "Q6_K"]
    assert parse_quant_list("a,,b") == ["a", "b"]
    assert display_size(64, 64) == (256, 256)  # small: whole-factor upscale (crisp pixels)
    assert display_size(96, 64) == (288, 192)
    assert display_size(512, 512) == (512, 512)
    assert display_size(1024, 768) == (768, 576)  # large: down to 768 on the long side


def test_plan_defaults_and_one_line_errors(compare_core):
    plan = plan_compare(compare_core, params(seed=-1))
    assert [q.id for q in plan.diffusion] == list(DIFFUSION)  # every installed quant
    assert [q.id for q in plan.text_encoder] == list(TEXT_ENCODER)
    assert [(c.diffusion.id, c.text_encoder.id) for c in plan.cells] == PAIRS
    assert 0 <= plan.params.seed < 2**32  # one random seed, fixed for every cell
    assert plan.params.batch_count == 1
    assert len({c.diffusion.path for c in plan.cells}) == 2

    with pytest.raises(CompareError) as e:
        plan_compare(compare_core, params(), diffusion=[DIFFUSION[0], MISSING_DIFFUSION])
    msg = str(e.value)
    assert "\n" not in msg and MISSING_DIFFUSION in msg
    assert f"distill models download {COMPARE_MODEL_ID} --diffusion {MISSING_DIFFUSION}" in msg
    with pytest.raises(CompareError) as e:
        plan_compare(compare_core, params(), text_encoder=[MISSING_TEXT_ENCODER])
    assert f"--text-encoder {MISSING_TEXT_ENCODER}" in str(e.value)
    with pytest.raises(CompareError, match="no diffusion quant 'Q9'"):
        plan_compare(compare_core, params(), diffusion=["Q9"])
    with pytest.raises(CompareError, match="nope"):
        plan_compare(compare_core, params(), model_id="nope")


def test_sheet_layout_is_a_grid(compare_core):
    plan = plan_compare(compare_core, params())
    lay = SheetRenderer(plan).layout
    boxes = lay.image_boxes
    assert len(boxes) == 4
    # same size everywhere, rows share y, columns share x, nothing overlaps, inside the sheet
    assert {(b[2] - b[0], b[3] - b[1]) for b in boxes.values()} == {(256, 256)}
    assert boxes[(0, 0)][1] == boxes[(0, 1)][1] and boxes[(0, 0)][0] == boxes[(1, 0)][0]
    assert boxes[(0, 1)][0] >= boxes[(0, 0)][2] and boxes[(1, 0)][1] >= boxes[(0, 0)][3]
    assert boxes[(1, 1)][2] < lay.width and boxes[(1, 1)][3] < lay.height


# ---- the real engine ------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_by_two_sheet_images_in_history(compare_core, tmp_path):
    core = compare_core
    plan = plan_compare(core, params())
    client = EngineClient(history=History(core.paths.history_file))
    sheet = tmp_path / "sheet.png"
    seen: list[tuple[str, str]] = []
    run = CompareRun(
        plan,
        client,
        output_dir=core.settings.outputs_dir,
        sheet_path=sheet,
        on_change=lambda kind, cell: seen.append((kind, run.progress_line())),
    )
    try:
        result = await run.run()
    finally:
        await client.shutdown()
    assert not result.interrupted and result.sheet == sheet
    assert [c.state for c in result.cells] == ["done"] * 4, [c.error for c in result.cells]
    assert ("cell", f"cell 2 of 4: {DIFFUSION[0]} × {TEXT_ENCODER[1]}") in seen
    assert seen[-1] == ("finished", "done: 4 of 4 cells")

    # one sheet: the renderer's size, a 2x2 grid of pictures
    lay = run.renderer.layout
    with Image.open(sheet) as im:
        im.load()
        assert im.size == (lay.width, lay.height)
        text = im.info["parameters"]
        rgb = im.convert("RGB")
    for box in lay.image_boxes.values():
        assert_picture(rgb, box)
    # the parameters chunk lists every cell with its quants and timing
    lines = text.split("\n")
    assert lines[0] == PROMPT
    assert "Seed: 42" in lines[-1] and "Size: 64x64" in lines[-1] and "Grid: 2x2" in lines[-1]
    assert "Cells done: 4/4" in lines[-1]
    cell_lines = [ln for ln in lines if ln.startswith("Cell ")]
    assert len(cell_lines) == 4
    for (d, t), line in zip(PAIRS, cell_lines, strict=True):
        assert f"Diffusion quant: {d} (" in line and f"Text encoder quant: {t} (" in line
        assert "State: done" in line and "Time: " in line and "Load: " in line
        assert "Peak RSS: " in line  # Linux: the engine child's VmHWM
    meta = read_sheet_metadata(sheet)
    assert meta["rows"] == list(DIFFUSION) and meta["cols"] == list(TEXT_ENCODER)
    assert [c["state"] for c in meta["cells"]] == ["done"] * 4
    assert all(c["peak_rss"] > 10_000_000 and c["seconds"] > 0 for c in meta["cells"])

    # the four images: 64x64 files, each recorded in the history with its quants
    records = History(core.paths.history_file).records()
    assert len(records) == 4
    by_pair = {(r.diffusion_quant, r.text_encoder_quant): r for r in records}
    assert set(by_pair) == set(PAIRS)
    pixels = {}
    for cell in result.cells:
        rec = by_pair[(cell.diffusion.id, cell.text_encoder.id)]
        assert rec.images == [cell.image] and rec.id == cell.history_id
        assert rec.seed == 42 and rec.model_id == COMPARE_MODEL_ID
        assert Path(cell.image).parent == core.settings.outputs_dir
        with Image.open(cell.image) as im:
            assert im.size == (64, 64)
            pixels[(cell.diffusion.id, cell.text_encoder.id)] = im.convert("RGB").tobytes()
        assert f"Diffusion quant: {cell.diffusion.id}" in (read_parameters(cell.image) or "")
    # another diffusion model (other weights) makes another picture from the same seed
    assert pixels[(DIFFUSION[0], TEXT_ENCODER[0])] != pixels[(DIFFUSION[1], TEXT_ENCODER[0])]


@pytest.mark.slow
async def test_cancel_after_first_cell_partial_sheet_engine_still_works(compare_core, tmp_path):
    core = compare_core
    plan = plan_compare(core, params(seed=5))
    client = EngineClient(history=History(core.paths.history_file))
    sheet = tmp_path / "partial.png"

    def on_change(kind, cell):
        if kind == "cell" and cell is not None and cell.index == 1 and cell.state == "running":
            run.cancel()  # the second cell has started: stop here

    run = CompareRun(
        plan, client, output_dir=core.settings.outputs_dir, sheet_path=sheet, on_change=on_change
    )
    try:
        result = await run.run()
        assert result.interrupted
        assert [c.state for c in result.cells] == ["done", "cancelled", "cancelled", "cancelled"]
        assert run.progress_line() == "stopped: 1 of 4 cells"
        with Image.open(sheet) as im:
            im.load()
            text = im.info["parameters"]
            rgb = im.convert("RGB")
        lay = run.renderer.layout
        assert rgb.size == (lay.width, lay.height)  # a partial sheet has the full size
        assert_picture(rgb, lay.image_boxes[(0, 0)])
        for rc in ((0, 1), (1, 0), (1, 1)):
            assert_empty(rgb, lay.image_boxes[rc])
        assert "Cells done: 1/4" in text and "State: cancelled" in text
        assert len(History(core.paths.history_file).records()) == 1

        # the engine still generates: the next request runs (a fresh child if it was ended)
        cell = plan.cells[3]
        again = await client.generate(
            plan.load_request(cell), plan.generate_request(cell, str(tmp_path))
        )
        assert Path(again.paths[0]).is_file()
    finally:
        await client.shutdown()


@pytest.mark.slow
async def test_cancel_while_a_cell_runs(compare_core, tmp_path):
    """Stop in the middle of a cell: the engine child is ended, the cell is 'not run'."""
    core = compare_core
    plan = plan_compare(core, params(seed=6))
    client = EngineClient(history=History(core.paths.history_file))

    def on_change(kind, cell):
        if kind == "cell" and cell is not None and cell.index == 1 and cell.state == "running":
            asyncio.get_running_loop().call_later(0.3, run.cancel)  # during load/generate

    run = CompareRun(
        plan,
        client,
        output_dir=core.settings.outputs_dir,
        sheet_path=tmp_path / "s.png",
        on_change=on_change,
    )
    try:
        result = await run.run()
        assert result.interrupted
        assert result.cells[0].state == "done"
        assert {c.state for c in result.cells[1:]} == {"cancelled"}
        assert client.busy is False
        ok = await client.generate(
            plan.load_request(plan.cells[0]), plan.generate_request(plan.cells[0], str(tmp_path))
        )
        assert ok.paths
    finally:
        await client.shutdown()


# ---- the CLI ----------------------------------------------------------------------------------


def distill_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def distill(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=distill_env(),
    )


@pytest.mark.slow
def test_cli_compare_writes_the_sheet(compare_core, tmp_path):
    out = tmp_path / "sheet.png"
    p = distill(
        "compare",
        PROMPT,
        "--seed",
        "9",
        "--diffusion",
        f"{DIFFUSION[1]},{DIFFUSION[0]}",
        "--text-encoder",
        TEXT_ENCODER[0],
        "--text-encoder",
        TEXT_ENCODER[1],
        "-o",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [str(out)]
    assert "cell 4 of 4 done" in p.stderr and "sheet of 4 cells" in p.stderr
    meta = read_sheet_metadata(out)
    assert meta["rows"] == [DIFFUSION[1], DIFFUSION[0]]  # the order asked for
    assert meta["seed"] == 9 and meta["width"] == 64
    assert len(History(compare_core.paths.history_file).records()) == 4


def test_cli_missing_quant_is_one_line(compare_core):
    p = distill("compare", PROMPT, "--diffusion", f"{DIFFUSION[0]},{MISSING_DIFFUSION}")
    assert p.returncode == 1 and p.stdout == ""
    [line] = p.stderr.strip().splitlines()
    assert MISSING_DIFFUSION in line
    assert f"distill models download {COMPARE_MODEL_ID} --diffusion {MISSING_DIFFUSION}" in line


@pytest.mark.slow
def test_cli_ctrl_c_keeps_a_partial_sheet(compare_core, tmp_path):
    out = tmp_path / "partial.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill_tui", "compare", PROMPT, "--seed", "3", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=distill_env(),
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        seen.append(line)
        if "cell 1 of 4 done" in line or time.monotonic() > deadline:
            break
    assert any("cell 1 of 4 done" in s for s in seen), seen
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stdout.strip().splitlines() == [str(out)]
    assert "interrupted after" in stderr.strip().splitlines()[-1]
    meta = read_sheet_metadata(out)
    states = [c["state"] for c in meta["cells"]]
    assert states[0] == "done" and "cancelled" in states


def test_compare_core_and_cli_never_import_textual():
    code = (
        "import sys\n"
        "import distill_tui.compare, distill_tui.cli.compare\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_vram_weights_from_the_engine_log():
    from distill_tui.compare import vram_weights

    cpu = (
        "[INFO ] stable-diffusion.cpp:858  - total params memory size = 17.83MB "
        "(VRAM 0.00MB, RAM 17.83MB): text_encoders 9.91MB(RAM), diffusion_model 1.92MB(RAM)"
    )
    gpu = cpu.replace("(VRAM 0.00MB, RAM 17.83MB)", "(VRAM 2048.00MB, RAM 6.00MB)")
    assert vram_weights([cpu, "other"]) is None
    assert vram_weights([cpu, gpu, "[INFO ] sampling"]) == 2048 * 1024 * 1024
    assert vram_weights(["nothing here"]) is None
