"""Model Manager (F3) with catalog v3 (issue 21): tabs decided by each model's ``type`` (no
"(soon)" tab, no tab without a model), cards drawn from the components (an upscaler is one file
row), files shared by several models said as shared, the Upscalers tab's download / active
upscaler / removal. Driven by keys (Pilot) against the loopback Hub serving the whole bundled
catalog (``hub_catalog_v3``): real DownloadManager, real files, real settings.json."""

from __future__ import annotations

import json

from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.screens.confirm import ConfirmModal
from distill_tui.screens.models import ModelManagerScreen
from distill_tui.widgets.file_row import FileRow
from distill_tui.widgets.model_card import ModelCard
from tests.hub_fixtures import HubCatalog

UPSCALER = "realesrgan-x4plus"


def make_app(hub_catalog: HubCatalog):
    core = hub_catalog.context()
    manager = hub_catalog.manager(core)
    return core, DistillApp(core, downloads_factory=lambda app: manager, display_settings=STILL)


def screen(app: DistillApp) -> ModelManagerScreen:
    assert isinstance(app.screen, ModelManagerScreen)
    return app.screen


def tab_labels(app: DistillApp) -> list[str]:
    from textual.widgets import Tab

    return [str(t.label) for t in screen(app).query(Tab)]


def shown(app: DistillApp) -> list[str]:
    return [c.model.id for c in screen(app).cards if c.display]


def section_titles(card: ModelCard) -> list[str]:
    return [str(w.render()) for w in card.query(".section-title")]


async def open_tab(pilot, label: str) -> None:
    """Move to the tab bar and walk right until ``label`` is the active tab."""
    from textual.widgets import Tabs

    tabs = screen(pilot.app).query_one("#model-tabs", Tabs)
    tabs.focus()
    await pilot.pause()
    for _ in range(6):
        if tabs.active_tab is not None and str(tabs.active_tab.label) == label:
            return
        await pilot.press("right")
    raise AssertionError(f"tab {label} never active: {tab_labels(pilot.app)}")


async def test_tabs_follow_the_model_types(hub_catalog_v3: HubCatalog) -> None:
    core, app = make_app(hub_catalog_v3)
    upscalers = [m.id for m in core.catalog.of_type("upscaler")]
    images = [m.id for m in core.catalog.of_type("image-generation")]
    assert upscalers and images
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        assert tab_labels(app) == ["All Models", "Image Generation", "Upscalers"]
        assert not any("soon" in label for label in tab_labels(app))
        await open_tab(pilot, "Upscalers")
        assert shown(app) == upscalers
        await open_tab(pilot, "Image Generation")
        assert shown(app) == images
        await open_tab(pilot, "All Models")
        assert shown(app) == images + upscalers


async def test_brackets_switch_tabs_from_a_card(hub_catalog_v3: HubCatalog) -> None:
    """``]`` / ``[`` change tabs wherever the focus is (a card's row), and F1 lists them: the
    tab bar was reachable only by shift+tab to it, then left/right."""
    from textual.widgets import Tabs

    core, app = make_app(hub_catalog_v3)
    upscalers = [m.id for m in core.catalog.of_type("upscaler")]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        tabs = screen(app).query_one("#model-tabs", Tabs)
        assert not tabs.has_focus
        await pilot.press("]", "]")
        await pilot.pause()
        assert str(tabs.active_tab.label) == "Upscalers" and shown(app) == upscalers
        await pilot.press("[", "[")
        await pilot.pause()
        assert str(tabs.active_tab.label) == "All Models"
        from distill_tui.screens.help import HelpModal

        _title, rows = HelpModal.rows_for(app.screen)
        keys = {r.key: r.description for r in rows}
        assert keys.get("]") == "Next tab" and keys.get("[") == "Previous tab", keys


async def test_no_upscaler_no_upscalers_tab(hub_catalog: HubCatalog) -> None:
    core, app = make_app(hub_catalog)
    assert not core.catalog.of_type("upscaler")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        assert tab_labels(app) == ["All Models", "Image Generation"]


async def test_cards_draw_components_and_say_what_is_shared(hub_catalog_v3: HubCatalog) -> None:
    core, app = make_app(hub_catalog_v3)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        scr.show_model("flux2-klein-4b")
        await pilot.pause()
        klein = next(c for c in scr.cards if c.model.id == "flux2-klein-4b")
        titles = section_titles(klein)
        assert titles[0] == "Diffusion Model"  # the component's name is the model's: not said
        assert titles[1].startswith("Text Encoder (Qwen3-4B) · shared with Z-Image-Turbo")
        assert titles[2].startswith("VAE · shared with FLUX.2 Klein 9B")
        assert "Z-Image-Turbo" not in titles[2]  # Z-Image has the FLUX.1 VAE, not this one
        scr.show_model(UPSCALER)
        await pilot.pause()
        card = next(c for c in scr.cards if c.model.id == UPSCALER)
        assert card.built and not card.sets
        assert section_titles(card) == ["Upscaler"]
        (row,) = card.rows
        assert isinstance(row, FileRow) and row.label == "RealESRGAN_x4plus.pth"
        assert row.state == "missing"


async def test_upscaler_download_activate_and_remove(hub_catalog_v3: HubCatalog) -> None:
    core, app = make_app(hub_catalog_v3)
    model = core.catalog.require(UPSCALER)
    rel = model.component("upscaler").file.file
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await open_tab(pilot, "Upscalers")
        scr = screen(app)
        card = next(c for c in scr.cards if c.model.id == UPSCALER)
        card.title_widget.focus()
        await pilot.pause()
        await pilot.press("d")  # the header: the whole set (one file)
        for _ in range(200):
            if core.inventory.is_present(rel):
                break
            await pilot.pause(0.05)
        assert core.inventory.is_present(rel)
        assert core.inventory.abs_path(rel).read_bytes() == hub_catalog_v3.payload(rel)
        for _ in range(50):
            if card.ready:
                break
            await pilot.pause(0.05)
        assert card.ready
        # del on the file row asks first (n keeps it)
        if card.collapsed:
            await pilot.press("space")
        await pilot.press("down")
        row = card.rows[0]
        assert scr.focused_row() is row and row.state == "done"
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert core.inventory.abs_path(rel).exists()
        # a on the header: the active upscaler (saved, said on the card)
        await pilot.press("up")
        await pilot.press("a")
        await pilot.pause()
        saved = json.loads(core.paths.settings_file.read_text())
        assert saved["active_upscaler_id"] == UPSCALER
        assert "· active" in str(card.title_widget.label)
        # the active upscaler's file is not removed (removal.py's rule): said, no question
        row.focus()
        await pilot.pause()
        await pilot.press("delete")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert any("active upscaler" in str(n.message) for n in app._notifications)
        assert core.inventory.abs_path(rel).exists()
        # another upscaler made active: now it goes (asked first)
        other = next(c for c in scr.cards if c.model.id == "realesrgan-x4plus-anime")
        other.title_widget.focus()
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        assert core.settings.settings.active_upscaler_id == other.model.id
        assert "· active" not in str(card.title_widget.label)
        row.focus()
        await pilot.pause()
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        for _ in range(100):
            if not core.inventory.abs_path(rel).exists():
                break
            await pilot.pause(0.05)
        assert not core.inventory.abs_path(rel).exists()


async def test_a_on_an_image_model_changes_no_upscaler(hub_catalog_v3: HubCatalog) -> None:
    core, app = make_app(hub_catalog_v3)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("a")  # the first card (Klein 4B): not an upscaler, the key is off
        await pilot.pause()
        assert core.settings.settings.active_upscaler_id is None


async def test_removing_a_shared_text_encoder_asks_and_names_its_users(
    hub_catalog_v3: HubCatalog,
) -> None:
    """Klein 4B's Qwen3-4B quant that Z-Image-Turbo uses too: del asks first and names it."""
    core, app = make_app(hub_catalog_v3)
    klein = core.catalog.require("flux2-klein-4b")
    zimage = core.catalog.require("z-image-turbo")
    te_q = zimage.default_quant("textEncoder")
    te = klein.text_encoder.get(te_q)
    assert te is not None and te.file == zimage.text_encoder.get(te_q).file  # one file
    d_q = zimage.default_quant("diffusion")
    for f in (te, zimage.diffusion.get(d_q)):  # Z-Image set up with its own diffusion file
        assert f is not None
        path = core.inventory.abs_path(f.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hub_catalog_v3.payload(f.file))
        core.inventory.record(f.file, f.size, f.sha256)
    core.settings.update(active_model_id="flux2-klein-9b")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        scr.show_model("flux2-klein-4b")
        await pilot.pause()
        for _ in range(30):
            row = scr.focused_row()
            if row is not None and row.key == te.file:
                break
            await pilot.press("down")
        row = scr.focused_row()
        assert row is not None and row.key == te.file and row.state == "done"
        await pilot.press("delete")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        body = " ".join(str(w.render()) for w in modal.query("Static"))
        assert "Z-Image-Turbo" in body and "shared" in body
        await pilot.press("escape")  # not removed
        await pilot.pause()
        assert core.inventory.abs_path(te.file).exists()
