"""Issue 21: the Generate form hides what a model's family does not have (Pilot, the real App).

Z-Image has no edit references (``edit_refs``). A hidden field is not sent either. The
negative prompt stays for every model: sd.cpp encodes it whenever CFG is not 1 (distilled
Klein's too).
"""

from __future__ import annotations

from textual.widgets import Input

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.generation import GenParams
from distill_tui.widgets.generate_form import GenerateForm
from distill_tui.widgets.model_select import ModelSelect


def ready(core: CoreContext, model_id: str) -> None:
    """The model looks downloaded and selected (placeholder bytes; never loaded)."""
    model = core.catalog.require(model_id)
    for comp in model.components:
        qid = model.default_quant(comp.role) if comp.has_quants else None
        entry = comp.get(qid) if qid else comp.file
        assert entry is not None
        dest = core.inventory.abs_path(entry.file)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"x" * 16)
        core.inventory.record(entry.file, 16, None)
        if qid:
            core.settings.set_quant(model_id, comp.role, qid)


def core_with(active: str, *others: str) -> CoreContext:
    core = CoreContext.build()
    for model_id in (active, *others):
        ready(core, model_id)
    core.settings.update(active_model_id=active)
    return core


def shown(form: GenerateForm, field_id: str) -> bool:
    """The field's row is on screen (the field and its label)."""
    widget = form.query_one(f"#{field_id}")
    return bool(widget.parent.display and widget.display)  # type: ignore[union-attr]


async def test_zimage_form_has_no_edit_references(isolated_dirs, tmp_path):
    ref = tmp_path / "ref.png"
    ref.write_bytes(b"not read")
    app = DistillApp(core_with("z-image-turbo", "flux2-klein-4b"), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        assert not shown(form, "ref-image")  # Z-Image: no edit references
        assert shown(form, "negative-prompt")
        # choosing Klein: edit references appear
        app.screen.query_one(ModelSelect).value = "flux2-klein-4b"
        await pilot.pause()
        await pilot.pause()
        assert app.core.settings.settings.active_model_id == "flux2-klein-4b"
        assert shown(form, "ref-image") and shown(form, "negative-prompt")
        form.load(GenParams(prompt="a cat", negative_prompt="blurry", ref_images=(str(ref),)))
        await pilot.pause()
        params, errors = form.to_request()
        assert errors == [] and params is not None
        assert params.ref_images == (str(ref),) and params.negative_prompt == "blurry"
        # back to Z-Image: the references typed for Klein are not sent (nor refused)
        app.screen.query_one(ModelSelect).value = "z-image-turbo"
        await pilot.pause()
        await pilot.pause()
        assert not shown(form, "ref-image") and shown(form, "negative-prompt")
        params, errors = form.to_request()
        assert errors == [] and params is not None
        assert params.ref_images == () and params.negative_prompt == "blurry"
        # the field keeps what was typed (choosing Klein again shows it)
        assert form.query_one("#ref-image", Input).value == str(ref)


async def test_klein_base_has_a_negative_prompt_and_edit_references(isolated_dirs):
    app = DistillApp(core_with("flux2-klein-base-4b"), display_settings=STILL)
    async with app.run_test(size=(120, 40)):
        form = app.screen.query_one(GenerateForm)
        assert shown(form, "negative-prompt") and shown(form, "ref-image")


async def test_choosing_a_model_brings_its_defaults_but_keeps_what_was_typed(isolated_dirs):
    """Z-Image-Turbo starts at 8 steps, CFG 1 (its family's and entry's); Klein base at 20
    steps, CFG 4. A field still at the old model's default takes the new one's; a typed one
    stays."""
    app = DistillApp(core_with("z-image-turbo", "flux2-klein-base-4b"), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.query_one(GenerateForm)
        assert form.value("steps") == "8" and form.value("cfg") == "1"
        app.screen.query_one(ModelSelect).value = "flux2-klein-base-4b"
        await pilot.pause()
        assert form.value("steps") == "20" and form.value("cfg") == "4"
        form.set_value("steps", "6")
        app.screen.query_one(ModelSelect).value = "z-image-turbo"
        await pilot.pause()
        assert form.value("steps") == "6" and form.value("cfg") == "1"


async def test_ctrl_g_on_zimage_loads_its_files_as_z_image(isolated_dirs):
    """The TUI's path (GenerationService): each component in its slot, the family named (the
    engine child's preflight checks Z-Image's signatures by it), Z-Image's 8 steps."""
    from tests.gen_helpers import wait_for
    from tests.test_generate_ui import FakeEngine, batch_files

    core = core_with("z-image-turbo")
    files = batch_files(core, 1)
    engines: list[FakeEngine] = []
    loads = []

    def factory(app):
        engine = FakeEngine(app, files)
        real = engine.generate

        async def generate(load, gen):
            loads.append(load)
            return await real(load, gen)

        engine.generate = generate  # type: ignore[method-assign]
        engines.append(engine)
        return engine

    app = DistillApp(core, display_settings=STILL, engine_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"a lighthouse")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: bool(loads) and not app.generation.running, 10)
    [load] = loads
    model = core.catalog.require("z-image-turbo")
    assert load.family == "z-image"
    dit = model.section("diffusion").get(model.default_quant("diffusion"))
    assert dit is not None and load.diffusion_model_path.endswith(dit.file.split("/")[-1])
    assert load.vae_path.endswith("flux1-ae.safetensors")
    assert engines[0].requests[0].steps == 8 and engines[0].requests[0].model_id == model.id
