"""Issue 22.13: stopping a compare before any cell finished writes no sheet (it wrote an empty
1860x2071 sheet) and says so. The real engine child on the tiny models."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from distill_tui.compare import CompareRun, plan_compare
from distill_tui.engine.client import EngineClient
from distill_tui.outputs import History
from tests.compare_helpers import tiny_compare_files  # noqa: F401  (fixture)
from tests.test_compare import PROMPT, ROOT, compare_core, distill_env, params  # noqa: F401


async def test_stop_before_any_cell_writes_no_sheet(compare_core, tmp_path):  # noqa: F811
    core = compare_core
    plan = plan_compare(core, params(seed=5))
    client = EngineClient(history=History(core.paths.history_file))
    sheet = tmp_path / "none.png"

    def on_change(kind, cell):
        if kind == "cell" and cell is not None and cell.index == 0 and cell.state == "running":
            run.cancel()  # the first cell has just started

    run = CompareRun(
        plan, client, output_dir=core.settings.outputs_dir, sheet_path=sheet, on_change=on_change
    )
    try:
        result = await run.run()
    finally:
        await client.shutdown()
    assert result.interrupted and not result.done
    assert result.sheet is None and not run.sheet_written
    assert not sheet.exists()
    assert run.no_sheet and "no sheet" in run.no_sheet
    assert run.progress_line() == "stopped: 0 of 4 cells"


def test_cli_ctrl_c_in_the_first_cell_writes_nothing(compare_core, tmp_path):  # noqa: F811
    out = tmp_path / "none.png"
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
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        seen.append(line)
        if "cell 1 of 4" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stdout.strip() == ""
    assert not out.exists()
    last = stderr.strip().splitlines()[-1]
    assert "no sheet" in last and "Traceback" not in stderr, stderr


async def test_modal_stop_before_any_cell_says_no_sheet(app_paths, tiny_compare_files):  # noqa: F811
    from textual.widgets import Input, Static

    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.screens.compare import CompareModal
    from tests.compare_helpers import install_compare_model
    from tests.gen_helpers import wait_for

    core = install_compare_model(app_paths, tiny_compare_files)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a red fox")
        app.screen.query_one("#seed", Input).value = "42"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareModal), 5)
        modal = app.screen
        await pilot.press("ctrl+g", "ctrl+x")  # stop at once
        run = modal.run
        await wait_for(pilot, lambda: run.finished is not None, 30)
        assert not run.sheet_written and not run.sheet_path.exists()
        line = str(modal.query_one("#compare-status", Static).render())
        assert "stopped: 0 of 4 cells" in line and "no sheet written" in line, line
