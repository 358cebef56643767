"""The header of a model card: a CollapsibleTitle that also answers space and the arrows."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets._collapsible import CollapsibleTitle


class CardTitle(CollapsibleTitle):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter,space",
            "toggle_collapsible",
            "Open/close",
            show=False,
            id="models.toggle_card",
            tooltip="Expand or collapse this model card",
        ),
        Binding(
            "down",
            "screen.focus_next_row",
            "Next row",
            show=False,
            id="models.card_next",
            tooltip="Move to the next row",
        ),
        Binding(
            "up",
            "screen.focus_previous_row",
            "Previous row",
            show=False,
            id="models.card_prev",
            tooltip="Move to the previous row",
        ),
    ]
