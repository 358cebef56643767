"""The RadioSet of one section (Diffusion Model or Text Encoder) of a model card.

Differences from Textual's RadioSet: the arrow keys visit every row, disabled ones too (a
quant that is not downloaded must be reachable so ``d`` can fetch it), moving past the first
or last row moves focus to the previous/next widget, and toggling a disabled row explains
itself instead of doing nothing.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import RadioButton, RadioSet

from distill_tui.widgets.quant_row import QuantRow


class QuantRadioSet(RadioSet):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "down",
            "next_button",
            "Next row",
            show=False,
            id="models.row_next",
            tooltip="Move to the next row",
        ),
        Binding(
            "up",
            "previous_button",
            "Previous row",
            show=False,
            id="models.row_prev",
            tooltip="Move to the previous row",
        ),
        Binding(
            "enter,space",
            "toggle_button",
            "Select quant",
            show=False,
            id="models.select",
            tooltip="Make the highlighted quant the active one",
        ),
    ]

    class UnavailablePicked(Message):
        """enter/space on a quant that is not downloaded."""

        def __init__(self, row: QuantRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, model_id: str, component: str, *rows: QuantRow, id: str | None = None):
        super().__init__(*rows, id=id, compact=True)
        self.model_id = model_id
        self.component = component
        #: the rows, also before they are mounted (a card's body takes its facts first)
        self._rows = list(rows)

    # ---- the highlighted row ---------------------------------------------------------
    @property
    def rows(self) -> list[QuantRow]:
        return list(self._rows)

    @property
    def highlighted(self) -> QuantRow | None:
        if self._selected is None:
            return None
        node = self._nodes[self._selected]
        return node if isinstance(node, QuantRow) else None

    def highlight_first(self) -> None:
        if self._nodes:
            self._selected = 0

    def highlight_last(self) -> None:
        if self._nodes:
            self._selected = len(self._nodes) - 1

    def highlight_key(self, key: str) -> None:
        for i, row in enumerate(self.rows):
            if row.key == key:
                self._selected = i

    def watch__selected(self) -> None:
        super().watch__selected()
        row = self.highlighted
        if row is not None and self.has_focus:
            self.call_after_refresh(row.scroll_visible, animate=False)
            self.screen.refresh_bindings()

    # ---- navigation ------------------------------------------------------------------
    def action_next_button(self) -> None:
        n = len(self._nodes)
        if not n:
            return
        if self._selected is None:
            self._selected = 0
        elif self._selected >= n - 1:
            if self.has_focus:
                getattr(self.screen, "action_focus_next_row", self.screen.focus_next)()
        else:
            self._selected += 1

    def action_previous_button(self) -> None:
        n = len(self._nodes)
        if not n:
            return
        if self._selected is None:
            self._selected = n - 1
        elif self._selected == 0:
            if self.has_focus:
                getattr(self.screen, "action_focus_previous_row", self.screen.focus_previous)()
        else:
            self._selected -= 1

    def action_toggle_button(self) -> None:
        row = self.highlighted
        if row is None:
            return
        if row.disabled:
            self.post_message(self.UnavailablePicked(row))
            return
        if not row.value:
            row.toggle()

    # ---- programmatic selection (no Changed message: it is not a user's choice) -------
    def show_pressed(self, quant_id: str | None) -> None:
        pressed: RadioButton | None = None
        changed = False
        with self.prevent(RadioButton.Changed):
            for row in self.rows:
                on = row.quant_id == quant_id
                if row.value != on:
                    row.value = on
                    changed = True
                if on:
                    pressed = row
        self._pressed_button = pressed
        if changed:  # the glyph (● / ○) is drawn by the row itself
            for row in self.rows:
                row.refresh()
