"""Display settings (distill_tui/display.py): a person gets LIVE, snapshot tests STILL."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, TextArea

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import LIVE, STILL, display_settings


def test_lookup_falls_back_to_live():
    assert display_settings(object()) is LIVE

    class WithSettings:
        display_settings = STILL

    assert display_settings(WithSettings()) is STILL


async def test_still_holds_cursors_and_shortens_paths(isolated_dirs):
    image = Path.home() / "outputs" / "a.png"
    for settings, live in ((None, True), (STILL, False)):
        app = DistillApp(CoreContext.build(), display_settings=settings)
        assert app.display_settings is (LIVE if live else STILL)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert screen.query_one("#prompt", TextArea).cursor_blink is live
            assert all(i.cursor_blink is live for i in screen.query(Input))
            shown = screen.shown_path(image)  # type: ignore[attr-defined]
            assert shown == ("~/outputs/a.png" if live else "a.png")
