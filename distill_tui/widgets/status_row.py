"""What the quant rows and the VAE row share: the file facts, the state, the status column.

A mixin (QuantRow is a RadioButton, FileRow a plain Widget). The row class provides
``file`` (a CatalogFile), ``label``-ish text via :meth:`_row_label`, ``label_width``
and optionally :meth:`_glyph` / :meth:`_description` /
:meth:`_status_changed`.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content

from distill_tui.display import display_settings
from distill_tui.textsafe import visible
from distill_tui.widgets.file_status import ROW_STATES, row_lines, row_state


class StatusRow:
    present: bool = False
    event: Any | None = None
    #: on disk, but no reference sha256 existed to check it (inventory ``unverified``)
    unverified: bool = False
    #: the fit column (quant rows on a machine with a known GPU; see file_status.fit_mark)
    fit_mark: Content | None = None
    #: a same-size copy of the file on this machine ("the HF cache", a folder): enter links it
    found: str | None = None
    #: a symlink of the file whose original is gone: that original's path (issue 23.9)
    gone: str | None = None
    label_width: int

    # ---- hooks -----------------------------------------------------------------------
    def _row_label(self) -> str:
        raise NotImplementedError

    def _glyph(self) -> Content | None:
        return None

    def _description(self) -> str:
        return ""

    def _status_changed(self, present: bool) -> None:
        """After new facts were taken (QuantRow enables its radio here)."""

    # ---- state -----------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.file.file  # type: ignore[attr-defined]

    @property
    def state(self) -> str:
        return row_state(self.present, self.event)

    def set_status(
        self, present: bool, event: Any | None, *, unverified: bool | None = None
    ) -> None:
        """New inventory/download facts; re-render only when something visible changed.
        ``unverified`` None keeps what the row knew."""
        unverified = self.unverified if unverified is None else unverified
        if present == self.present and event is self.event and unverified == self.unverified:
            return  # nothing visible changed (e.g. a screen resume re-syncing every row)
        before = self.state
        said_before = getattr(self.event, "error", None)
        self.present = present
        self.event = event
        self.unverified = unverified
        state = self.state
        # a row not yet mounted (a card's body being built) is styled once, when it mounts
        mounted = self.is_mounted  # type: ignore[attr-defined]
        for s in ROW_STATES:
            self.set_class(s == state, f"-{s}", update=mounted)  # type: ignore[attr-defined]
        self._status_changed(present)
        # Progress within one state keeps the row's height: repaint it, no relayout. A new
        # reason for a failure (a failure after a failure, the states between coalesced) may
        # take more lines: a relayout, or its end is cut off (issue 22.13)
        reason_changed = state == "failed" and getattr(event, "error", None) != said_before
        self.refresh(layout=state != before or reason_changed)  # type: ignore[attr-defined]

    def set_fit(self, mark: Content | None) -> None:
        """Show a fit mark (None: no column); repaints only on a change."""
        same = (
            mark is None
            if self.fit_mark is None
            else mark is not None
            and mark.plain == self.fit_mark.plain
            and list(mark.spans) == list(self.fit_mark.spans)
        )
        if same:
            return
        self.fit_mark = mark
        self.refresh()  # type: ignore[attr-defined]

    def set_gone(self, original: str | None) -> None:
        """The original a symlink of the file pointed at, now gone (None: not that case)."""
        if original != self.gone:
            self.gone = original
            self.refresh()  # type: ignore[attr-defined]

    def set_found(self, where: str | None) -> None:
        """Where a copy of the file was found (None: nowhere); repaints only on a change."""
        if where != self.found:
            self.found = where
            self.refresh()  # type: ignore[attr-defined]

    # ---- rendering -------------------------------------------------------------------
    def _lines(self, width: int) -> list[Content]:
        file = self.file  # type: ignore[attr-defined]
        return row_lines(
            width,
            glyph=self._glyph(),
            label=visible(self._row_label()),  # catalog text: control characters shown
            label_width=self.label_width,
            size=file.size,
            description=visible(self._description()),
            state=self.state,
            event=self.event,
            file=file,
            # speeds and ETAs unless the App's display settings hold them still (snapshots)
            live_times=display_settings(self.app).live_times,  # type: ignore[attr-defined]
            fit=self.fit_mark,
            unverified=self.unverified,
            found=self.found,
            gone=self.gone,
        )

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_size.width))  # type: ignore[attr-defined]

    def get_content_width(self, container: Any, viewport: Any) -> int:
        return container.width

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width))
