"""Issue 22.9: keys arriving in the same burst as Tab (a paste-speed typist, a slow link that
delivers several keys in one read) landed in the previous field: Tab was queued to the focused
field, and the keys behind it were queued there too before the focus moved. Pilot, the keys
posted to the App in one go as the driver delivers a burst."""

from __future__ import annotations

from textual import events
from textual.widgets import Input

from tests.test_snapshots_generate import make_app


def _burst(app, keys: list[tuple[str, str | None]]) -> None:
    for key, char in keys:
        app.post_message(events.Key(key, char))


async def test_keys_after_tab_in_one_burst_land_in_the_next_field():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = app.screen.query_one("#seed", Input)
        first.focus()
        first.value = ""
        await pilot.pause()
        following = app.screen.focus_chain[app.screen.focus_chain.index(first) + 1]
        _burst(app, [("1", "1"), ("tab", "\t"), ("7", "7")])
        for _ in range(5):
            await pilot.pause()
        assert first.value == "1", first.value
        assert app.focused is following
        if isinstance(following, Input):
            assert "7" in following.value, following.value
        # and back: shift+tab then a key, in one burst
        _burst(app, [("shift+tab", None), ("2", "2")])
        for _ in range(5):
            await pilot.pause()
        assert app.focused is first  # (a field focused by Tab selects its text: "2" replaces)
        assert first.value == "2", first.value
        if isinstance(following, Input):
            assert "2" not in following.value, following.value
