"""One way to listen: every service's subscribe returns its unsubscribe; a failing listener
never breaks the service or the others; screens leave no listener behind."""

from __future__ import annotations

from distill_tui.display import STILL
from distill_tui.listeners import Listeners


def test_subscribe_returns_unsubscribe_and_a_failing_listener_is_contained():
    seen: list[int] = []
    hub: Listeners[int] = Listeners("test")

    def boom(_v: int) -> None:
        raise RuntimeError("listener bug")

    hub.subscribe(boom)
    off = hub.subscribe(seen.append)
    hub.publish(1)
    off()
    off()  # twice is harmless
    hub.publish(2)
    assert seen == [1] and len(hub) == 1


def test_settings_subscribe_can_be_undone(isolated_dirs):
    from distill_tui.paths import AppPaths
    from distill_tui.settings import SettingsStore

    store = SettingsStore(AppPaths.from_env())
    store.load()
    seen = []
    off = store.subscribe(lambda s: seen.append(s.download_concurrency))
    store.update(download_concurrency=2)
    off()
    store.update(download_concurrency=3)
    assert seen == [2]


async def test_screens_leave_no_settings_listener_behind(isolated_dirs):
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext

    core = CoreContext.build()
    before = len(core.settings._listeners)
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in ("f3", "f4", "f5", "f2"):
            await pilot.press(key)
            await pilot.pause()
        assert len(core.settings._listeners) > before
    assert len(core.settings._listeners) == before
