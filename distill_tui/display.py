"""How the TUI draws what changes by itself: blinking cursors, values that follow the wall
clock, where a file lives on this machine.

A person always gets :data:`LIVE` (the defaults). Snapshot tests give the App :data:`STILL`,
so a screenshot shows the same pixels on every run and every machine: no blinking cursor,
no speed, ETA or elapsed seconds, only a file's name instead of its temporary directory.
Not a setting of settings.json: nothing a person chooses, and never saved.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DisplaySettings:
    #: inputs and the prompt blink their cursor
    cursor_blink: bool = True
    #: download speeds and ETAs, elapsed seconds of a running generation or comparison
    live_times: bool = True
    #: file paths as ``~/outputs/…``; False: only the file's name
    full_paths: bool = True


LIVE = DisplaySettings()
STILL = DisplaySettings(cursor_blink=False, live_times=False, full_paths=False)


def display_settings(app: object) -> DisplaySettings:
    """The App's display settings; :data:`LIVE` under an App that has none (a widget tested
    on its own)."""
    settings = getattr(app, "display_settings", None)
    return settings if isinstance(settings, DisplaySettings) else LIVE
