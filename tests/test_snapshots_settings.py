"""SVG snapshots of the first run (issue 13.5) and the Settings screen (issue 13.6) at 80x24
and 120x40.

Deterministic: the bundled catalog, a stub download registry, the directories under ``~``
(the test's home), a fixed free-space figure, the token file under ``~`` and absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.paths import AppPaths
from tests.test_snapshots_models import StubDownloads

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
FREE = 512_000_000_000


@pytest.fixture(autouse=True)
def fixed_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("distill_tui.dirs._free", lambda path: FREE)
    monkeypatch.setenv("HF_TOKEN_PATH", str(Path.home() / ".cache" / "huggingface" / "token"))
    # the Display rows say the colour depth and renderer, each with why: the same everywhere
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setattr("distill_tui.image_probe.detected", "halfcell")
    # and name `distill` as a shell with it on PATH would (not this checkout's absolute path)
    monkeypatch.setattr("distill_tui.selfcmd.command_for", lambda name, fallback: name)


def build_app(**settings: Any) -> DistillApp:
    paths = AppPaths.from_env()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "schema_version": 1,
        "model_base_path": "~/models",
        "output_dir": "~/outputs",
        **settings,
    }
    paths.settings_file.write_text(json.dumps(data))
    core = CoreContext.build(paths)
    core.inventory.free_bytes = lambda: FREE  # type: ignore[method-assign]
    stub = StubDownloads([])
    return DistillApp(core, downloads_factory=lambda app: stub, display_settings=STILL)


def put_vae(app: DistillApp) -> None:
    core = app.core
    vae = core.catalog.require("flux2-klein-4b").vae
    path = core.inventory.abs_path(vae.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(vae.size)
    core.inventory.record(vae.file, vae.size, None)


async def settle(pilot, cond=lambda: True, n: int = 50) -> None:
    for _ in range(n):
        if cond():
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_first_run_generate(snap_compare, size) -> None:
    assert snap_compare(build_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_first_run_ctrl_g_opens_the_9b_card(snap_compare, size) -> None:
    app = build_app(active_model_id="flux2-klein-9b")

    async def run_before(pilot) -> None:
        await pilot.press(*"a fox")
        await pilot.press("ctrl+g")
        await settle(pilot, lambda: app.current_mode == "models")
        await settle(pilot, n=5)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_settings(snap_compare, size) -> None:
    assert snap_compare(build_app(), press=["f5"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_settings_relative_path_refused(snap_compare, size) -> None:
    app = build_app()

    async def run_before(pilot) -> None:
        await pilot.press("f5")
        await settle(pilot)
        from textual.widgets import Input

        app.screen.query_one("#models-dir", Input).value = "models"
        await pilot.press("enter")
        await settle(pilot, n=5)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_settings_move_question(snap_compare, size) -> None:
    from distill_tui.screens.models_dir_modal import ModelsDirModal

    app = build_app()
    put_vae(app)

    async def run_before(pilot) -> None:
        await pilot.press("f5")
        await settle(pilot)
        from textual.widgets import Input

        app.screen.query_one("#models-dir", Input).value = "~/big/models"
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ModelsDirModal))

    assert snap_compare(app, terminal_size=size, run_before=run_before)
