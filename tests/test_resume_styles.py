"""Issue 22.13: F5 (and every screen switch) re-styled the whole screen on each visit (~330 ms
reported; the restyle was most of the CPU of a visit). A screen shown again restyles only when
the theme or the stylesheet changed meanwhile. Pilot."""

from __future__ import annotations

from textual.screen import Screen

from tests.test_snapshots_generate import make_app


async def test_switching_back_restyles_only_after_a_theme_change(monkeypatch):
    app = make_app()
    restyled: list[str] = []
    original = Screen.update_node_styles

    def spy(self, animate: bool = True) -> None:
        restyled.append(type(self).__name__)
        original(self, animate)

    monkeypatch.setattr(Screen, "update_node_styles", spy)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for _ in range(2):  # first visits: built and styled once
            await pilot.press("f5")
            await pilot.pause()
            await pilot.press("f2")
            await pilot.pause()
        restyled.clear()
        for _ in range(3):
            await pilot.press("f5")
            await pilot.pause()
            await pilot.press("f2")
            await pilot.pause()
        assert restyled == [], restyled  # nothing changed: no whole-screen restyle

        # the theme changes while Settings is hidden: it is restyled when shown again
        await pilot.press("f5")
        await pilot.pause()
        old_bg = app.screen.styles.background
        await pilot.press("f2")
        await pilot.pause()
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        new_bg = app.screen.styles.background  # the Generate screen, restyled by the theme
        assert new_bg != old_bg
        restyled.clear()
        await pilot.press("f5")
        await pilot.pause()
        assert "SettingsScreen" in restyled, restyled
        assert app.screen.styles.background == new_bg
