"""settings.json is shared by every distill process: a save merges field by field, and the TUI
adopts what the CLI wrote (within 2 s) instead of generating with a stale choice and undoing
it at its next save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from distill_tui.display import STILL
from distill_tui.paths import AppPaths
from distill_tui.settings import SettingsStore
from tests.pty_tui import ROOT

M4, M9 = "flux2-klein-4b", "flux2-klein-9b"


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_save_keeps_what_another_process_wrote(isolated_dirs):
    a, b = SettingsStore(AppPaths.from_env()), SettingsStore(AppPaths.from_env())
    a.load()
    b.load()
    a.set_quant(M4, "diffusion", "Q5_K_M")  # process A
    b.update(download_concurrency=3)  # process B, with a copy loaded before A's save
    on_disk = json.loads(a.path.read_text())
    assert on_disk["model_quant_selections"][M4]["diffusionQuant"] == "Q5_K_M"
    assert on_disk["download_concurrency"] == 3
    assert b.selection(M4).diffusion_quant == "Q5_K_M"  # B learnt A's value at its save
    # the same field: the later writer wins, nothing else is touched
    b.set_quant(M4, "diffusion", "Q8_0")
    assert a.reload_if_changed() and a.selection(M4).diffusion_quant == "Q8_0"
    assert not a.reload_if_changed()  # no news, no notification


def test_reload_ignores_a_half_written_file(isolated_dirs):
    a = SettingsStore(AppPaths.from_env())
    a.load()
    a.update(download_concurrency=2)
    a.path.write_text('{"download_concurrency": 4')  # someone mid-edit
    assert not a.reload_if_changed()
    assert a.settings.download_concurrency == 2


async def test_tui_follows_models_use_from_another_process(isolated_dirs):
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext

    core = CoreContext.build()
    m = core.catalog.require(M9)
    for f in (m.diffusion.get("Q6_K"), m.text_encoder.get("Q8_0")):  # "downloaded" (sparse)
        p = core.inventory.abs_path(f.file)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            fh.truncate(f.size)
        core.inventory.record(f.file, f.size, "1" * 64)
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = []
        core.settings.subscribe(lambda s: seen.append(s.active_model_id))
        out = distill("models", "use", M9, "--diffusion", "Q6_K", "--text-encoder", "Q8_0")
        assert out.returncode == 0, out.stderr
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5 and core.settings.settings.active_model_id != M9:
            await pilot.pause(0.1)
        assert core.settings.settings.active_model_id == M9, "the TUI kept its stale choice"
        assert time.monotonic() - t0 < 2.0
        assert seen and seen[-1] == M9  # the screens were told
        # a later change in the TUI keeps the CLI's choice
        core.settings.set_quant(M4, "textEncoder", "Q5_K_M")
    on_disk = json.loads(core.settings.path.read_text())
    assert on_disk["active_model_id"] == M9
    assert on_disk["model_quant_selections"][M9] == {
        "diffusionQuant": "Q6_K",
        "textEncoderQuant": "Q8_0",
    }
    assert on_disk["model_quant_selections"][M4]["textEncoderQuant"] == "Q5_K_M"
