"""The private parts of our dependencies that distill relies on still exist and still mean what
we use them for. Textual is pinned exactly (pyproject.toml); a bump must pass this first.

Each entry names where distill uses it; a failure here means that place needs a new way.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib
from pathlib import Path

from distill_tui.display import STILL

ROOT = Path(__file__).resolve().parent.parent


def test_textual_is_pinned_exactly_to_the_installed_version():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if re.match(r"textual\s*==", d))
    assert pin.replace(" ", "") == f"textual=={md.version('textual')}"


def test_app_driver_can_write_raw_sequences():
    """screens/generate.py and download_notice.py write OSC 9/777 through ``app._driver``."""
    from textual.app import App
    from textual.driver import Driver

    assert "_driver" in App.__init__.__code__.co_names or hasattr(App, "_driver")
    assert callable(Driver.write)


async def test_screen_bindings_map_keys_to_bindings():
    """screens/help.py lists every key of a screen from ``screen._bindings.key_to_bindings``."""
    from textual.app import App
    from textual.binding import Binding
    from textual.screen import Screen

    class S(Screen):
        BINDINGS = [Binding("x", "noop", "X")]

    class A(App):
        def on_mount(self) -> None:
            self.push_screen(S())

    async with A().run_test() as pilot:
        kb = pilot.app.screen._bindings.key_to_bindings
        assert "x" in kb and kb["x"][0].action == "noop"


def test_collapsible_title_is_importable():
    """widgets/card_title.py subclasses Textual's CollapsibleTitle (the card headers)."""
    from textual.widgets._collapsible import CollapsibleTitle

    assert "toggle_collapsible" in str(CollapsibleTitle.BINDINGS) or hasattr(
        CollapsibleTitle, "action_toggle_collapsible"
    )


def test_linux_driver_reads_keys_through_a_module_level_selectors():
    """term_input.py swaps ``textual.drivers.linux_driver.selectors`` to cap the input thread's
    select timeout (Esc in ~30 ms)."""
    from textual.drivers import linux_driver

    assert getattr(linux_driver, "selectors", None) is not None
    src = Path(linux_driver.__file__).read_text()
    assert "selectors.SelectSelector" in src or "selectors.DefaultSelector" in src


def test_textual_image_cell_size_probe_is_where_image_probe_expects_it():
    """image_probe.py runs textual-image's probe on a thread before the app starts."""
    from textual_image._terminal import get_cell_size

    assert callable(get_cell_size)


def test_httpcore_read_size_knob():
    """downloads/hub.py raises httpcore's per-read size (512 KiB bodies)."""
    from httpcore._async.http11 import AsyncHTTP11Connection

    assert isinstance(AsyncHTTP11Connection.READ_NUM_BYTES, int)


async def test_palette_keeps_textuals_own_commands(isolated_dirs):
    """The App's palette adds ours to Textual's (theme, screenshot, keys), not instead of."""
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext

    app = DistillApp(CoreContext.build(), display_settings=STILL)
    async with app.run_test(size=(120, 40)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert {"Generate", "Model Manager", "Gallery", "Quit"} <= set(titles)
    assert any("theme" in t.lower() for t in titles), titles
    assert any("screenshot" in t.lower() for t in titles), titles
    assert titles.count("Quit") == 1


def test_screen_breakpoint_classes_and_footer_readiness():
    """screens/base.py sets the breakpoint classes before the first Resize with
    ``Screen._get_breakpoint_classes``; widgets/footer.py composes the keys at once by setting
    ``Footer._bindings_ready``."""
    from textual.screen import Screen
    from textual.widgets import Footer

    points = [(0, "-narrow"), (100, "-wide")]
    assert Screen._get_breakpoint_classes(Screen(), 80, points) == {"-narrow"}
    assert Screen._get_breakpoint_classes(Screen(), 120, points) == {"-wide"}
    assert "_bindings_ready" in Footer._reactives


def test_screen_resume_event_can_skip_the_restyle():
    """screens/base.py turns off the re-styling of a screen's first resume with the event's
    ``refresh_styles`` (its handler runs before Screen's own ``_on_screen_resume``)."""
    import inspect

    from textual import events
    from textual.screen import Screen

    assert events.ScreenResume().refresh_styles is True
    assert "event.refresh_styles" in inspect.getsource(Screen._on_screen_resume)


def test_footer_key_takes_what_the_footer_gives_it():
    """widgets/footer.py adds F5 to a wide footer with Textual's own ``FooterKey`` (as
    ``Footer.compose`` builds them) and widens ``styles.grid_size_columns``."""
    import inspect

    from textual.widgets._footer import FooterKey

    params = list(inspect.signature(FooterKey.__init__).parameters)
    assert params[1:5] == ["key", "key_display", "description", "action"]
    assert "disabled" in params and "tooltip" in params


def test_linux_driver_builds_its_writer_where_distill_replaces_it():
    """driver.py: ``DistillDriver`` puts its ``TerminalWriter`` in place where LinuxDriver
    assigns ``self._writer_thread = WriterThread(self._file)`` (a property setter), reads the
    App's loop from ``Driver._loop``, wraps ``run_input_thread`` in ``_run_input_thread``;
    app.py's ``run_app`` reads ``App._exit_renderables`` when the terminal is gone."""
    import inspect

    from textual.app import App
    from textual.driver import Driver
    from textual.drivers.linux_driver import LinuxDriver

    start = inspect.getsource(LinuxDriver.start_application_mode)
    assert "self._writer_thread = WriterThread(self._file)" in start
    assert "self._writer_thread.start()" in start
    assert "self._writer_thread.stop()" in inspect.getsource(LinuxDriver.close)
    assert "self._loop" in inspect.getsource(Driver.__init__)
    assert "self.run_input_thread()" in inspect.getsource(LinuxDriver._run_input_thread)
    assert "_exit_renderables" in inspect.getsource(App._print_error_renderables)
