"""Compare quants in the TUI (ctrl+t on Generate), with the REAL engine on the tiny set."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, SelectionList, Static

from distill_tui.app import DistillApp
from distill_tui.compare import read_sheet_metadata
from distill_tui.display import STILL
from distill_tui.outputs import History
from distill_tui.screens.compare import CompareModal
from distill_tui.widgets.image_view import ImageView
from tests.compare_helpers import (
    DIFFUSION,
    TEXT_ENCODER,
    install_compare_model,
    tiny_compare_files,  # noqa: F401  (fixture)
)
from tests.gen_helpers import wait_for


def status(modal: CompareModal) -> str:
    return str(modal.query_one("#compare-status", Static).render())


@pytest.mark.slow
async def test_compare_modal_runs_stops_and_generate_still_works(
    app_paths,
    tiny_compare_files,  # noqa: F811
):
    core = install_compare_model(app_paths, tiny_compare_files)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a red fox")
        app.screen.query_one("#seed", Input).value = "42"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareModal), 5)
        modal = app.screen
        assert isinstance(modal, CompareModal)
        assert "2 × 2 = 4 cells" in status(modal)
        d_list = modal.query_one("#compare-diffusion", SelectionList)
        assert d_list.selected == list(DIFFUSION)  # every installed quant, chosen
        assert modal.query_one("#compare-text-encoder", SelectionList).selected == list(
            TEXT_ENCODER
        )

        # run all four; the sheet is redrawn as each cell finishes
        await pilot.press("ctrl+g")
        run = modal.run
        assert run is not None
        kinds: list[str] = []
        lines: set[str] = set()
        forward = run.on_change
        assert forward is not None

        def spy(kind, cell):
            kinds.append(kind)
            forward(kind, cell)
            lines.add(status(modal))

        run.on_change = spy
        await wait_for(pilot, lambda: run.finished is not None, 120)
        assert [c.state for c in run.cells] == ["done"] * 4, [c.error for c in run.cells]
        assert kinds.count("sheet") >= 4  # one redraw per finished cell (+ the final one)
        assert any(f"cell 2 of 4: {DIFFUSION[0]} × {TEXT_ENCODER[1]}" in ln for ln in lines), lines
        view = modal.query_one("#compare-sheet", ImageView)
        await wait_for(
            pilot,
            lambda: view.shown_frame is not None and view.shown_frame.path == str(run.sheet_path),
            10,
        )
        assert view.shown is not None and view.shown.size[0] > 256 * 2
        assert "done: 4 of 4 cells" in status(modal)
        assert run.sheet_path.parent == core.settings.outputs_dir
        assert read_sheet_metadata(run.sheet_path)["seed"] == 42
        assert len(History(core.paths.history_file).records()) == 4

        # one diffusion quant off (space), run again, stop after the first cell
        d_list.focus()
        d_list.highlighted = 1
        await pilot.press("space")
        assert "1 × 2 = 2 cells" in status(modal)
        await pilot.press("ctrl+g")
        second = modal.run
        assert second is not run and len(second.cells) == 2
        await wait_for(pilot, lambda: second.cells[0].state == "done", 60)
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: second.finished is not None, 30)
        assert second.interrupted
        assert [c.state for c in second.cells] == ["done", "cancelled"]
        assert "stopped: 1 of 2 cells" in status(modal)
        meta = read_sheet_metadata(second.sheet_path)
        assert [c["state"] for c in meta["cells"]] == ["done", "cancelled"]

        # close; the engine still generates from the Generate screen
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareModal), 5)
        await pilot.press("ctrl+g")
        await wait_for(
            pilot, lambda: app.generation.job is not None and not app.generation.job.running, 60
        )
        job = app.generation.job
        assert job.phase == "done", job.error
        assert Path(job.images[0].path).is_file()
        assert len(History(core.paths.history_file).records()) == 4 + 1 + 1


async def test_escape_is_refused_while_running_and_palette_has_the_command(
    app_paths,
    tiny_compare_files,  # noqa: F811
):
    core = install_compare_model(app_paths, tiny_compare_files)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Compare quants" in titles
        await pilot.press("ctrl+t")  # no prompt: the form says so, nothing opens
        await pilot.pause()
        assert not isinstance(app.screen, CompareModal)
        assert "Prompt: required" in str(app.screen.query_one("#form-errors", Static).render())
        await pilot.press(*"a cat", "ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareModal), 5)
        modal = app.screen
        # nothing chosen on one side: refused with a reason
        tl = modal.query_one("#compare-text-encoder", SelectionList)
        tl.deselect_all()
        await pilot.press("ctrl+g")
        assert modal.run is None and "at least one quant of each" in status(modal)
        tl.select_all()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: modal.run is not None and modal.run.running, 10)
        await pilot.press("escape")
        assert app.screen is modal  # still open while it runs
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: modal.run.finished is not None, 30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareModal), 5)
