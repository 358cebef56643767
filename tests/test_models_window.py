"""The Model Manager (F3) with a large user catalog (issue 21.4): only the cards near the
viewport are mounted (a window, spacers for the rest), and everything a person does still
works across the window's edges: the arrow keys walk every card in order, page keys scroll
the whole list, a model far down the catalog is shown on demand, tabs start from the top.
The speed itself is measured by bench/model_manager_scale.py, not here."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.screens.models import ModelManagerScreen
from distill_tui.widgets.model_card import ModelCard

ROOT = Path(__file__).resolve().parent.parent
N = 120


def big_catalog(n: int) -> dict:
    """The bundled catalog plus copies of its first model (files of their own) up to ``n``."""
    bundled = json.loads((ROOT / "catalog" / "model-catalog.json").read_text())
    models = list(bundled["models"])
    template = models[0]
    i = 0
    while len(models) < n:
        i += 1
        m = copy.deepcopy(template)
        m["id"], m["name"] = f"scale-{i:05d}", f"Scale model {i:05d}"
        for c in m["components"]:
            for f in c.get("quants") or [c["file"]]:
                f["file"] = f"scale/{i:05d}/{f['file']}"
                f["downloadUrl"] += f"?copy={i}"
                f.pop("sha256", None)
                f.pop("mirrors", None)
        models.append(m)
    return {"catalogVersion": bundled["catalogVersion"], "models": models}


def make_app() -> tuple[CoreContext, DistillApp]:
    from distill_tui.paths import AppPaths

    path = AppPaths.from_env().user_catalog_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(big_catalog(N)))
    core = CoreContext.build()
    assert len(core.catalog.models) == N
    return core, DistillApp(core, display_settings=STILL)


def screen(app: DistillApp) -> ModelManagerScreen:
    assert isinstance(app.screen, ModelManagerScreen)
    return app.screen


def mounted(app: DistillApp) -> list[str]:
    return [c.model.id for c in screen(app).query(ModelCard)]


def assert_window(app: DistillApp, ids: list[str]) -> None:
    """The mounted cards are a run of the tab's cards, in order, a few dozen at most."""
    got = mounted(app)
    assert got, "no card mounted"
    start = ids.index(got[0])
    assert got == ids[start : start + len(got)]
    scr = screen(app)
    assert len(got) <= scr.FIRST_CARDS + 4 * scr.WINDOW_MARGIN + 10


async def test_a_large_catalog_mounts_a_window_and_keys_walk_every_card(isolated_dirs) -> None:
    core, app = make_app()
    ids = [m.id for m in core.catalog.models]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        assert_window(app, ids)
        assert mounted(app)[0] == ids[0] and len(mounted(app)) < N
        below = scr.query_one("#models-below")
        assert below.styles.height is not None and below.styles.height.value > 0  # type: ignore[union-attr]
        # the first card is open: collapse it, then walk down header by header past the window
        await pilot.press("space")
        await pilot.pause()
        walk = 45
        for i in range(1, walk):
            await pilot.press("down")
            for _ in range(20):
                card = scr.focused_card()
                if card is not None and card.model.id == ids[i]:
                    break
                await pilot.pause(0.02)
            card = scr.focused_card()
            assert card is not None and card.model.id == ids[i], (i, card)
        await pilot.pause(0.2)
        assert_window(app, ids)
        assert ids[walk - 1] in mounted(app) and ids[0] not in mounted(app)
        # and back up to the first
        for _ in range(walk - 1):
            await pilot.press("up")
        for _ in range(50):
            card = scr.focused_card()
            if card is not None and card.model.id == ids[0]:
                break
            await pilot.pause(0.02)
        assert scr.focused_card() is not None and scr.focused_card().model.id == ids[0]  # type: ignore[union-attr]
        assert_window(app, ids)


async def test_page_keys_scroll_the_whole_list_and_a_far_model_is_shown(isolated_dirs) -> None:
    core, app = make_app()
    ids = [m.id for m in core.catalog.models]
    last = core.catalog.models[-1]
    vae = core.inventory.abs_path(last.vae.file)  # its VAE on disk: the row reads done
    vae.parent.mkdir(parents=True, exist_ok=True)
    with open(vae, "wb") as fh:
        fh.truncate(last.vae.size)
    core.inventory.record(last.vae.file, last.vae.size, None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        model_list = scr.query_one("#model-list")
        for _ in range(15):
            model_list.scroll_page_down(animate=False)
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        assert_window(app, ids)
        assert ids[0] not in mounted(app)
        # what the viewport shows is mounted: some card lies inside it
        top, bottom = model_list.scroll_y, model_list.scroll_y + model_list.size.height
        assert any(top <= c.virtual_region.y < bottom for c in scr.query(ModelCard)), (
            "the viewport shows a spacer"
        )
        scr.show_model(last.id)
        for _ in range(100):
            card = scr.focused_card()
            if card is not None and card.model.id == last.id:
                break
            await pilot.pause(0.05)
        card = scr.focused_card()
        assert card is not None and card.model.id == last.id and not card.collapsed
        assert card.built and card.vae_row is not None and card.vae_row.state == "done"
        assert_window(app, ids)
        # back to the top: the first card comes back as it was (open, rows built)
        scr.show_model(ids[0])
        for _ in range(100):
            card = scr.focused_card()
            if card is not None and card.model.id == ids[0]:
                break
            await pilot.pause(0.05)
        first = scr.focused_card()
        assert first is not None and first.model.id == ids[0] and first.built
        assert len(first.rows) == 11
        assert_window(app, ids)


async def test_tabs_with_a_large_catalog_start_from_the_top(isolated_dirs) -> None:
    from textual.widgets import Tabs

    core, app = make_app()
    upscalers = [m.id for m in core.catalog.of_type("upscaler")]
    images = [m.id for m in core.catalog.of_type("image-generation")]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        tabs = screen(app).query_one("#model-tabs", Tabs)
        tabs.active = "tab-upscaler"
        await pilot.pause(0.2)
        assert mounted(app) == upscalers
        tabs.active = "tab-image-generation"
        await pilot.pause(0.2)
        assert_window(app, images)
        assert mounted(app)[0] == images[0]


async def test_the_tint_follows_the_focus_as_a_full_restyle_draws_it(isolated_dirs) -> None:
    """The focused card's tint is a class on the card alone (not Collapsible's :focus-within,
    which restyled every row of the card on each key): after the focus moved across cards,
    the screen reads exactly as after restyling and repainting everything."""
    import re

    from tests.test_snapshots_models import build_app

    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("down", "down", "up", "up", "space", "down", "down", "up")
        await pilot.pause(0.2)
        scr = screen(app)
        card = scr.focused_card()
        assert card is not None and card.model.id == "flux2-klein-9b"
        assert [c.model.id for c in scr.cards if c.has_class("-focus-within")] == [card.model.id]
        shown = app.export_screenshot()
        app.update_styles(scr)
        for widget in scr.walk_children(with_self=True):
            widget.refresh()
        await pilot.pause(0.2)
        again = app.export_screenshot()

        def norm(svg: str) -> str:
            return re.sub(r"terminal-\d+", "terminal", svg)

        assert norm(shown) == norm(again)
