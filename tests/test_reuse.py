"""Gallery `r` restores the whole recipe of an image — model and quants, not only the prompt —
and the next generation uses it; the saved choice changes only when the user generates. The
real engine on the tiny set."""

from __future__ import annotations

import os

import pytest
from textual.widgets import Static

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.outputs import History
from distill_tui.reuse import plan_reuse
from distill_tui.screens.confirm import ConfirmModal
from tests.gen_helpers import MODEL_ID, ready_core, wait_for


def add_q5(core, tiny_models) -> str:
    """Q5_K_M installed too (the same tiny bytes under Q5_K_M's path)."""
    q5 = core.catalog.require(MODEL_ID).diffusion.get("Q5_K_M")
    dest = core.inventory.abs_path(q5.file)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.link(tiny_models["diffusion"], dest)
    core.inventory.record(q5.file, dest.stat().st_size, None)
    return q5.file


async def generate(pilot, app) -> None:
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: app.generation.job and not app.generation.job.running, 60)
    assert app.generation.job.phase == "done", app.generation.job.error


@pytest.mark.slow
async def test_gallery_reuse_restores_quants_and_next_generation_uses_them(tiny_models):
    core = ready_core(tiny_models)  # Q4_K_S active
    add_q5(core, tiny_models)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a red fox")
        await generate(pilot, app)
        made = History(core.paths.history_file).records()[0]
        assert made.diffusion_quant == "Q4_K_S"
        core.settings.set_quant(MODEL_ID, "diffusion", "Q5_K_M")  # now Q5_K_M is active
        await pilot.press("f4")
        await wait_for(pilot, lambda: getattr(app.screen, "selected", None) is not None, 10)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.query("#reuse-line"), 10)
        line = app.screen.query_one("#reuse-line", Static)
        await wait_for(pilot, lambda: line.display, 5)
        assert "Q4_K_S" in str(line.render()) and "ready" in str(line.render())
        # loading the recipe saved nothing
        assert core.settings.selection(MODEL_ID).diffusion_quant == "Q5_K_M"
        await generate(pilot, app)
        assert app.generation.job.diffusion_quant == "Q4_K_S"
        again = History(core.paths.history_file).records()[0]
        assert again.id != made.id and again.diffusion_quant == "Q4_K_S"
        # generating with it made it the saved choice; the pin is gone
        assert core.settings.selection(MODEL_ID).diffusion_quant == "Q4_K_S"
        assert not line.display


@pytest.mark.slow
async def test_gallery_reuse_with_a_missing_quant_offers_the_download(tiny_models):
    core = ready_core(tiny_models)
    q5_file = add_q5(core, tiny_models)
    core.settings.set_quant(MODEL_ID, "diffusion", "Q5_K_M")
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a fox")
        await generate(pilot, app)  # made with Q5_K_M
        core.inventory.forget(q5_file)  # ... which is then removed
        os.unlink(core.inventory.abs_path(q5_file))
        core.settings.set_quant(MODEL_ID, "diffusion", "Q4_K_S")
        rec = History(core.paths.history_file).records()[0]
        plan = plan_reuse(core, rec)
        assert not plan.ready and [m.quant_id for m in plan.missing] == ["Q5_K_M"]
        await pilot.press("f4")
        await wait_for(pilot, lambda: getattr(app.screen, "selected", None) is not None, 10)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), 10)
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "Q5_K_M" in body and "Download now?" in body
        await pilot.press("n")
        line = app.screen.query_one("#reuse-line", Static)
        assert "not downloaded" in str(line.render())
        await pilot.press("ctrl+g")  # refused with a reason, nothing generated
        await pilot.pause()
        assert len(History(core.paths.history_file).records()) == 1
        assert core.settings.selection(MODEL_ID).diffusion_quant == "Q4_K_S"


def test_plan_reuse_of_a_model_no_longer_in_the_catalog(tiny_models):
    from distill_tui.outputs import HistoryRecord

    core = ready_core(tiny_models)
    rec = HistoryRecord(
        model_id="gone-model",
        diffusion_quant="Q4_K_S",
        text_encoder_quant="Q4_K_M",
        params={"prompt": "x"},
        seed=1,
        images=[],
    )
    plan = plan_reuse(core, rec)
    assert plan.problem and "no longer in the catalog" in plan.problem


def _distill(*args: str):
    from tests.test_cli_models import distill

    return distill(*args)


@pytest.mark.slow
def test_cli_reuse_follows_the_same_rule(tiny_models):
    """`distill generate --reuse ID`: the record's prompt, seed, model and quants; the quants
    become the saved choice only after it generated; missing files are named with the
    download command."""
    core = ready_core(tiny_models)  # Q4_K_S active
    q5_file = add_q5(core, tiny_models)
    made = _distill("generate", "a red fox", "--width", "64", "--height", "64", "--steps", "1")
    assert made.returncode == 0, made.stderr
    first = History(core.paths.history_file).records()[0]
    assert first.diffusion_quant == "Q4_K_S"
    core.settings.set_quant(MODEL_ID, "diffusion", "Q5_K_M")
    again = _distill("generate", "--reuse", first.id[:8])
    assert again.returncode == 0, again.stderr
    rec = History(core.paths.history_file).records()[0]
    assert rec.id != first.id
    assert (rec.diffusion_quant, rec.params["prompt"], rec.seed) == (
        "Q4_K_S",
        "a red fox",
        first.seed,
    )
    core.settings.load()
    assert core.settings.selection(MODEL_ID).diffusion_quant == "Q4_K_S"  # saved once used
    # a recipe whose quant is gone: one line with what to download, nothing generated
    core.settings.set_quant(MODEL_ID, "diffusion", "Q5_K_M")
    made_q5 = _distill("generate", "a cat", "--width", "64", "--height", "64", "--steps", "1")
    assert made_q5.returncode == 0, made_q5.stderr
    core.inventory.forget(q5_file)
    os.unlink(core.inventory.abs_path(q5_file))
    n = len(History(core.paths.history_file).records())
    gone = _distill("generate", "--reuse", "last")
    assert gone.returncode != 0 and "Traceback" not in gone.stderr
    assert "Q5_K_M" in gone.stderr and "distill models download flux2-klein-4b" in gone.stderr
    assert len(History(core.paths.history_file).records()) == n
    bad = _distill("generate", "--reuse", "nope")
    assert bad.returncode != 0 and "no generation 'nope'" in bad.stderr
