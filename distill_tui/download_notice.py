"""The TUI's bell and terminal notification when a long download batch ends off-screen.

The same signal a finished generation gives (screens/generate.py ``_maybe_notify``): the
terminal bell, then OSC 9 (or OSC 777 on VTE/urxvt: ``notification_sequence``) and a toast,
when the downloads took at least ``FinishWatch.after`` seconds (30 s) and the person is
elsewhere: on another screen than the Model Manager, or in another window (the terminal
reported blur). ``notify_on_finish`` in the settings turns both off. The App feeds its
:class:`~distill_tui.downloads.finish.FinishWatch` every download event (its one subscription
to the download service, ``DistillApp._on_download_event``) and calls
:func:`notify_finished` with the words when a batch ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distill_tui.app import DistillApp


def notify_finished(app: DistillApp, message: str) -> None:
    from distill_tui.formatting import notification_sequence
    from distill_tui.screens.models import ModelManagerScreen

    if not app.is_running or not app.core.settings.settings.notify_on_finish:
        return
    if isinstance(app.screen, ModelManagerScreen) and app.app_focus:
        return  # the person is watching the rows
    app.bell()
    driver = app._driver
    if driver is not None and not app.is_headless:
        driver.write(notification_sequence(message))
    failed = "failed" in message
    app.notify(message, title="Downloads", severity="error" if failed else "information")
