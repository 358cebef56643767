"""One quant of a section: radio, label, size and the status column, as a RadioButton.

The row IS the radio button so that one :class:`QuantRadioSet` per section owns the choice
(mutually exclusive, arrow keys, enter/space). The radio of a quant that is not on disk is
disabled; the row stays reachable by the arrow keys so ``d`` can download it.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import RadioButton

from distill_tui.catalog import Quant
from distill_tui.widgets.file_status import ROW_STATES, row_lines, row_state


class QuantRow(RadioButton):
    """A quant of one component of one model. ``key`` is the file's relative path."""

    def __init__(
        self,
        model_id: str,
        component: str,
        quant: Quant,
        *,
        label_width: int = 7,
        deterministic: bool = False,
    ) -> None:
        super().__init__(quant.label, value=False, classes="file-row -missing", disabled=True)
        self.model_id = model_id
        self.component = component
        self.quant = quant
        self.label_width = label_width
        self.deterministic = deterministic
        self.present = False
        self.event: Any | None = None
        self.tooltip = quant.description or None

    # ---- identity --------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.quant.file

    @property
    def quant_id(self) -> str:
        return self.quant.id

    @property
    def file(self) -> Quant:
        return self.quant

    @property
    def state(self) -> str:
        return row_state(self.present, self.event)

    # ---- updates ---------------------------------------------------------------------
    def set_status(self, present: bool, event: Any | None) -> None:
        """New inventory/download facts; re-render only when something visible changed."""
        if present == self.present and event is self.event:
            return  # nothing visible changed (e.g. a screen resume re-syncing every row)
        before = self.state
        self.present = present
        self.event = event
        state = self.state
        for s in ROW_STATES:
            self.set_class(s == state, f"-{s}")
        self.disabled = not present
        # Progress within one state keeps the row's height: repaint it, no relayout.
        self.refresh(layout=state != before)

    # ---- rendering -------------------------------------------------------------------
    def _glyph(self) -> Content:
        if self.value:
            return Content.styled("●", "$text-success bold")
        if self.disabled:
            return Content.styled("○", "$text-disabled")
        return Content.styled("○", "$text-muted")

    def _lines(self, width: int) -> list[Content]:
        return row_lines(
            width,
            glyph=self._glyph(),
            label=self.quant.label,
            label_width=self.label_width,
            size=self.quant.size,
            description=self.quant.description,
            state=self.state,
            event=self.event,
            file=self.quant,
            deterministic=self.deterministic,
        )

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_size.width))

    def get_content_width(self, container: Any, viewport: Any) -> int:
        return container.width

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width))
