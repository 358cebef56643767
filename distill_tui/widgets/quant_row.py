"""One quant of a section: radio, label, size and the status column, as a RadioButton.

The row IS the radio button so that one :class:`QuantRadioSet` per section owns the choice
(mutually exclusive, arrow keys, enter/space). The radio of a quant that is not on disk is
disabled; the row stays reachable by the arrow keys so ``d`` can download it.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import RadioButton

from distill_tui.catalog import Quant
from distill_tui.textsafe import visible
from distill_tui.widgets.status_row import StatusRow


class QuantRow(StatusRow, RadioButton):
    """A quant of one component of one model. ``key`` is the file's relative path."""

    def __init__(
        self,
        model_id: str,
        component: str,
        quant: Quant,
        *,
        label_width: int = 7,
    ) -> None:
        # Content, not a str: a catalog label is never parsed as markup ("[/]" crashed)
        super().__init__(
            Content(visible(quant.label)), value=False, classes="file-row -missing", disabled=True
        )
        self.model_id = model_id
        self.component = component
        self.quant = quant
        self.label_width = label_width
        self.tooltip = Content(visible(quant.description)) if quant.description else None

    # ---- identity --------------------------------------------------------------------
    @property
    def quant_id(self) -> str:
        return self.quant.id

    @property
    def file(self) -> Quant:
        return self.quant

    # ---- StatusRow hooks -------------------------------------------------------------
    def _row_label(self) -> str:
        return self.quant.label

    def _description(self) -> str:
        return self.quant.description

    def _status_changed(self, present: bool) -> None:
        self.disabled = not present  # a quant that is not on disk cannot be chosen

    def _glyph(self) -> Content:
        if self.value:
            return Content.styled("●", "$text-success bold")
        if self.disabled:
            return Content.styled("○", "$text-disabled")
        return Content.styled("○", "$text-muted")
