"""The command palette (distill_tui/commands.py): ours and Textual's own, on every screen."""

from __future__ import annotations

from textual.command import Command, CommandList, CommandPalette

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from tests.gen_helpers import wait_for


def hits(app: DistillApp) -> list[str]:
    """The titles the palette lists now (a "searching…" line has no hit)."""
    results = app.screen.query_one(CommandList)
    options = (results.get_option_at_index(i) for i in range(results.option_count))
    return [str(o.hit.text) for o in options if isinstance(o, Command)]


async def search(pilot, app: DistillApp, text: str, expected: str) -> None:
    """ctrl+p, type ``text``: ``expected`` is among the hits."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), 5)
    await pilot.press(*text)
    try:
        await wait_for(pilot, lambda: expected in hits(app), 5)
    except AssertionError:
        raise AssertionError(f"{expected!r} not offered for {text!r}: {hits(app)}") from None


async def test_palette_offers_ours_and_textuals_on_every_screen(isolated_dirs):
    app = DistillApp(CoreContext.build(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        for key, mode in (("f2", "generate"), ("f3", "models"), ("f4", "gallery")):
            await pilot.press(key)
            await wait_for(pilot, lambda mode=mode: app.current_mode == mode, 5)
            await search(pilot, app, "theme", "Theme")  # Textual's own
            await pilot.press("escape")
            await search(pilot, app, "gallery", "Gallery")  # ours
            await pilot.press("escape")
        # a screen's own commands are offered on that screen only
        assert "Open models folder path" not in [
            c.title for c in app.get_system_commands(app.screen)
        ]
        await pilot.press("f3")
        await search(pilot, app, "models folder", "Open models folder path")
        await pilot.press("escape")
        # and a chosen command runs: "Settings" from the palette shows F5
        await search(pilot, app, "settings", "Settings")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "settings", 5)
