"""A single-file row without a radio (the VAE): label, size and the status column."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget

from distill_tui.catalog import CatalogFile
from distill_tui.widgets.file_status import ROW_STATES, row_lines, row_state


class FileRow(Widget, can_focus=True):
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
        deterministic: bool = False,
    ) -> None:
        super().__init__(classes="file-row -missing")
        self.model_id = model_id
        self.component = component
        self.file = file
        self.label = label
        self.label_width = label_width
        self.deterministic = deterministic
        self.present = False
        self.event: Any | None = None
        self.quant_id: str | None = None
        self.tooltip = file.file

    @property
    def key(self) -> str:
        return self.file.file

    @property
    def state(self) -> str:
        return row_state(self.present, self.event)

    def set_status(self, present: bool, event: Any | None) -> None:
        if present == self.present and event is self.event:
            return  # nothing visible changed (e.g. a screen resume re-syncing every row)
        before = self.state
        self.present = present
        self.event = event
        state = self.state
        for s in ROW_STATES:
            self.set_class(s == state, f"-{s}")
        # Progress within one state keeps the row's height: repaint it, no relayout.
        self.refresh(layout=state != before)

    def _lines(self, width: int) -> list[Content]:
        return row_lines(
            width,
            glyph=None,
            label=self.label,
            label_width=self.label_width,
            size=self.file.size,
            description="",
            state=self.state,
            event=self.event,
            file=self.file,
            deterministic=self.deterministic,
        )

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_size.width))

    def get_content_width(self, container: Any, viewport: Any) -> int:
        return container.width

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width))
