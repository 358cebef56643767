"""A first run that guides (issue 13.5): the Generate screen's empty state says what F3 will
download and how big it is; ctrl+g or the selector on a model that is not ready opens the Model
Manager on THAT model's card; every screen names itself in the header; the selector fits at
80 columns; Esc in the Model Manager goes back to where the user came from.

Pilot tests on the bundled catalog; no network, no engine (a stub download registry)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.inventory import human_size
from distill_tui.paths import AppPaths
from tests.test_snapshots_models import StubDownloads

K4 = "flux2-klein-4b"
K9 = "flux2-klein-9b"


def screen_text(app: DistillApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def make_core(settings: dict[str, Any] | None = None) -> CoreContext:
    paths = AppPaths.from_env()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    data = {"schema_version": 1, "model_base_path": "~/models", **(settings or {})}
    paths.settings_file.write_text(json.dumps(data))
    return CoreContext.build(paths)


def make_app(core: CoreContext | None = None, **settings: Any) -> DistillApp:
    core = core or make_core(settings)
    stub = StubDownloads([])
    return DistillApp(core, downloads_factory=lambda app: stub, display_settings=STILL)


def put_file(core: CoreContext, entry: Any) -> None:
    path = core.inventory.abs_path(entry.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(entry.size)  # sparse: the real size, no disk used
    core.inventory.record(entry.file, entry.size, None)


def recommended_files(core: CoreContext, model_id: str) -> list[Any]:
    m = core.catalog.require(model_id)
    return [
        m.diffusion.get(m.default_quant("diffusion")),
        m.text_encoder.get(m.default_quant("textEncoder")),
        m.vae,
    ]


def size_text(files: list[Any]) -> str:
    est = any(f.size_estimated for f in files)
    return ("~" if est else "") + human_size(sum(f.size for f in files))


def placeholder(app: DistillApp) -> str:
    from distill_tui.widgets.image_view import ImageView

    return app.screen.query_one(ImageView).placeholder


def focused_card_id(app: DistillApp) -> str | None:
    from distill_tui.widgets.model_card import ModelCard

    node = app.focused
    while node is not None and not isinstance(node, ModelCard):
        node = node.parent  # type: ignore[assignment]
    return node.model.id if node is not None else None


# ---- the empty state -------------------------------------------------------------------


async def test_empty_state_says_f3_and_the_real_size() -> None:
    app = make_app()
    files = recommended_files(app.core, K4)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = placeholder(app)
        assert text.startswith(
            f"[b]No model ready[/b]\nF3 to download the recommended set, {size_text(files)}"
        )
        # an estimated size in the catalog shows as "~"
        assert any(f.size_estimated for f in files) == ("~" in text.splitlines()[1])
        shown = screen_text(app)
        assert "No model ready" in shown and "F3 to download" in shown


async def test_empty_state_counts_only_what_is_missing() -> None:
    core = make_core()
    files = recommended_files(core, K4)
    put_file(core, files[2])  # the VAE is already there
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = placeholder(app).splitlines()[1]
        assert first.endswith(f"recommended set, {size_text(files[:2])}")
        assert "VAE" not in placeholder(app)


async def test_empty_state_for_a_selected_set_and_when_ready() -> None:
    core = make_core()
    m = core.catalog.require(K4)
    te = m.text_encoder.get(m.default_quant("textEncoder"))
    q8 = m.diffusion.get("Q8_0")
    assert q8 is not None and te is not None
    core.settings.set_quant(K4, "diffusion", "Q8_0")
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = placeholder(app).splitlines()[1]
        assert first.endswith(f"selected set, {size_text([q8, te, m.vae])}"), first
        # everything arrives (the CLI in another shell): the pane says how to generate
        for f in (q8, te, m.vae):
            put_file(core, f)
        core.settings.set_quant(K4, "textEncoder", te.id)
        await pilot.pause(0.1)
        await pilot.pause()
        assert placeholder(app) == "No image yet — type a prompt and press ctrl+g"


async def test_empty_state_names_a_not_ready_active_model_when_another_is_ready() -> None:
    core = make_core({"active_model_id": K9})
    for f in recommended_files(core, K4):
        put_file(core, f)
    m = core.catalog.require(K4)
    core.settings.set_quant(K4, "diffusion", m.default_quant("diffusion"))
    core.settings.set_quant(K4, "textEncoder", m.default_quant("textEncoder"))
    app = make_app(core)
    files9 = recommended_files(core, K9)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = placeholder(app)
        assert text.startswith(
            f"[b]FLUX.2 Klein 9B is not ready[/b]\nF3 to download the recommended set, "
            f"{size_text(files9[:2])}"  # the VAE is shared with the 4B: already there
        ), text
        assert "or choose a ready model above" in text


# ---- ctrl+g and the selector open the right card ---------------------------------------


@pytest.mark.parametrize("model_id", [K4, K9])
async def test_ctrl_g_on_a_not_ready_model_opens_its_card(model_id: str) -> None:
    from distill_tui.screens.models import ModelManagerScreen
    from distill_tui.widgets.card_title import CardTitle

    app = make_app(active_model_id=model_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*"a red fox")
        await pilot.press("ctrl+g")
        for _ in range(20):
            await pilot.pause(0.02)
        assert isinstance(app.screen, ModelManagerScreen)
        assert isinstance(app.focused, CardTitle)
        assert focused_card_id(app) == model_id
        card = next(c for c in app.screen.cards if c.model.id == model_id)
        assert not card.collapsed
        assert card.title_widget.region.y < 24  # on screen


async def test_choosing_a_not_ready_9b_opens_the_9b_card() -> None:
    from distill_tui.screens.models import ModelManagerScreen
    from distill_tui.widgets.model_select import ModelSelect

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        select = app.screen.query_one(ModelSelect)
        select.focus()
        await pilot.press("enter")  # open the overlay
        await pilot.press("down", "enter")  # 4B (current) -> 9B
        for _ in range(20):
            await pilot.pause(0.02)
        assert isinstance(app.screen, ModelManagerScreen)
        assert focused_card_id(app) == K9
        card9 = next(c for c in app.screen.cards if c.model.id == K9)
        assert not card9.collapsed
        # the choice did not change the active model
        assert app.core.settings.settings.active_model_id == K4


async def test_manage_models_entry_opens_the_model_manager() -> None:
    from distill_tui.screens.models import ModelManagerScreen
    from distill_tui.widgets.model_select import MANAGE, ModelSelect

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one(ModelSelect).value = MANAGE
        for _ in range(10):
            await pilot.pause(0.02)
        assert isinstance(app.screen, ModelManagerScreen)


# ---- Esc goes back -----------------------------------------------------------------------


async def test_esc_in_the_model_manager_goes_back_where_the_user_came_from() -> None:
    from distill_tui.screens.gallery import GalleryScreen
    from distill_tui.screens.generate import GenerateScreen
    from distill_tui.screens.models import ModelManagerScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, GenerateScreen)
        await pilot.press("f4", "f3")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, GalleryScreen)
        # from Settings too, and Esc in Settings goes back as well
        await pilot.press("f5", "f3")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "settings"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)


async def test_esc_with_no_previous_screen_does_nothing() -> None:
    from distill_tui.screens.models import ModelManagerScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        app.previous_mode = None
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)
        assert app.is_running


# ---- names in the header, the selector at 80 columns ------------------------------------


async def test_every_screen_shows_its_name_in_the_header() -> None:
    from textual.widgets import Header

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for key, name in (
            ("f2", "Generate"),
            ("f3", "Models"),
            ("f4", "Gallery"),
            ("f5", "Settings"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.sub_title == name
            header = app.screen.query_one(Header)
            top = screen_text(app).splitlines()[header.region.y]
            assert name in top, (key, top)


@pytest.mark.parametrize("model_id", [K4, K9])
async def test_selector_label_fits_at_80_columns(model_id: str) -> None:
    from textual.widgets._select import SelectCurrent

    from distill_tui.widgets.model_select import SETUP_REQUIRED, ModelSelect

    app = make_app(active_model_id=model_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        select = app.screen.query_one(ModelSelect)
        label = select.query_one(SelectCurrent).query_one("#label")
        text = str(label.render())
        name = app.core.catalog.require(model_id).name
        assert text == name + SETUP_REQUIRED
        assert label.region.height == 1
        assert len(text) <= label.region.width
        row = screen_text(app).splitlines()[label.region.y]
        assert name + SETUP_REQUIRED in row
