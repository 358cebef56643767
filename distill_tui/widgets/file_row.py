"""A single-file row without a radio (the VAE): label, size and the status column."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget

from distill_tui.catalog import CatalogFile
from distill_tui.textsafe import visible
from distill_tui.widgets.status_row import StatusRow


class FileRow(StatusRow, Widget, can_focus=True):
    """One downloadable file of a model that has no quant choice. ``key`` is its path."""

    ALLOW_SELECT = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "down",
            "screen.focus_next_row",
            "Next row",
            show=False,
            id="models.file_next",
            tooltip="Move to the next row",
        ),
        Binding(
            "up",
            "screen.focus_previous_row",
            "Previous row",
            show=False,
            id="models.file_prev",
            tooltip="Move to the previous row",
        ),
    ]

    def __init__(
        self,
        model_id: str,
        component: str,
        file: CatalogFile,
        *,
        label: str,
        label_width: int = 7,
    ) -> None:
        super().__init__(classes="file-row -missing")
        self.model_id = model_id
        self.component = component
        self.file = file
        self.label = label
        self.label_width = label_width
        self.quant_id: str | None = None
        self.tooltip = Content(visible(file.file))

    def _row_label(self) -> str:
        return self.label
