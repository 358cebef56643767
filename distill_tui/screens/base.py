"""DistillScreen: the glue the full screens (Generate, Model Manager, Gallery, Settings) share.

- ``distill`` and ``core``: the App and its services, typed (a screen imports the App only
  for typing: import-linter's layers).
- The frame: the header, the screen's :meth:`DistillScreen.compose_body`, the footer. The
  footer is compact below 100 columns (80x24 keeps F2/F3/F4 on screen), or always where
  ``COMPACT_FOOTER`` says so.
- What the App's display settings ask of every screen: no blinking cursor in its inputs
  (snapshots), file paths written as they say (:meth:`DistillScreen.shown_path`).

Its handlers are decorated (``@on``), never ``on_mount`` / ``on_resize``: Textual calls the
handlers of every class in the MRO, so a screen's own ``on_mount`` runs beside these.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Input, TextArea

from distill_tui.formatting import shown_path
from distill_tui.widgets.footer import DistillFooter

if TYPE_CHECKING:
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext
    from distill_tui.display import DisplaySettings

#: below this many columns the footer is compact
NARROW = 100


class DistillScreen(Screen):
    """A full screen of distill: header, body, footer; the App and core typed."""

    #: True: the footer is always compact; None: compact below ``NARROW`` columns
    COMPACT_FOOTER: ClassVar[bool | None] = None
    _resumed_before = False

    @property
    def distill(self) -> DistillApp:
        return self.app  # type: ignore[return-value]

    @property
    def core(self) -> CoreContext:
        return self.distill.core

    # ---- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        self._preset_breakpoints()
        yield Header()
        yield from self.compose_body()
        compact = self.COMPACT_FOOTER
        yield DistillFooter(
            compact=compact if compact is not None else self.app.size.width < NARROW
        )

    def _preset_breakpoints(self) -> None:
        """The breakpoint classes for the terminal's size, before any child is styled.

        Textual sets them on the screen's first Resize, after its children were mounted and
        styled: the change re-styled the whole screen once more (~50 ms of the first paint
        of the Generate screen on a 2-core box). Set now, that first Resize changes nothing."""
        width, height = self.app.size
        classes: dict[str, bool] = {}
        app = self.app
        horizontal = self.HORIZONTAL_BREAKPOINTS
        vertical = self.VERTICAL_BREAKPOINTS
        for dimension, points in (
            (width, (app.HORIZONTAL_BREAKPOINTS if horizontal is None else horizontal) or []),
            (height, (app.VERTICAL_BREAKPOINTS if vertical is None else vertical) or []),
        ):
            chosen = self._get_breakpoint_classes(dimension, points)
            classes.update({name: name in chosen for _, name in points})
        if classes:
            self.update_classes(classes, animate=False)

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets, between the header and the footer."""
        yield from ()

    @on(events.ScreenResume)
    def _first_resume_keeps_styles(self, event: events.ScreenResume) -> None:
        """A screen's first resume comes right after its mount styled every widget; Textual
        re-styles the whole screen there all the same (~60 ms of the Generate screen's first
        paint on a 2-core box), changing nothing. Later resumes re-style as Textual does (the
        theme may have changed meanwhile). This handler runs before Screen's own (the most
        derived class first)."""
        if not self._resumed_before:
            self._resumed_before = True
            event.refresh_styles = False
        elif self._styled_for == self._style_key():
            # nothing a restyle would change (issue 22.13: F5 took ~330 ms on every visit,
            # most of it this restyle): a widget whose classes changed while the screen was
            # hidden was restyled then (App.update_styles queues it, hidden or not)
            event.refresh_styles = False
        self._styled_for = self._style_key()

    #: what the screen was last styled for (:meth:`_style_key`)
    _styled_for: tuple | None = None

    def _style_key(self) -> tuple:
        """What a whole-screen restyle depends on besides the widgets' own classes: the theme,
        the parsed stylesheet (a new rules list after a CSS reload), the App's focus and ANSI
        pseudo-classes."""
        app = self.app
        sheet = app.stylesheet
        return (app.theme, id(sheet), id(sheet.rules), app.app_focus, app.ansi_color)

    @on(events.Mount)
    def _note_styles(self) -> None:
        self._styled_for = self._style_key()

    @on(events.Resize)
    def _fit_footer(self) -> None:
        if self.COMPACT_FOOTER is None:
            self.query_one(DistillFooter).compact = self.size.width < NARROW

    # ---- display settings ------------------------------------------------------------
    @property
    def display_settings(self) -> DisplaySettings:
        return self.distill.display_settings

    @on(events.Mount)
    def _still_cursors(self) -> None:
        if not self.display_settings.cursor_blink:  # snapshots
            for widget in self.query("Input, TextArea"):
                if isinstance(widget, Input | TextArea):
                    widget.cursor_blink = False

    def shown_path(self, path: Path | str) -> str:
        """A file's path as the display settings write it: ``~/...``, or only its name."""
        return shown_path(path, name_only=not self.display_settings.full_paths)
