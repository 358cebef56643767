"""A large view of one image (Gallery ``enter``): the image fills the screen, esc closes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen

from distill_tui.resources import style_path
from distill_tui.widgets.image_view import Frame, ImageView


class ImageModal(ModalScreen[None]):
    """Shows ``frames`` (a record's images) as large as the terminal allows."""

    CSS_PATH = [style_path("gallery.tcss")]
    HELP_TITLE = "Image"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q,enter", "close", "Close", id="image_modal.close", tooltip="Back to the list"
        ),
    ]

    def __init__(self, frames: list[Frame], index: int = 0) -> None:
        super().__init__(id="image-modal")
        self._frames = frames
        self._index = index

    def compose(self) -> ComposeResult:
        yield ImageView("(no image)", id="large-image")

    def on_mount(self) -> None:
        view = self.query_one(ImageView)
        view.set_frames(self._frames, self._index)
        view.focus()

    def action_close(self) -> None:
        self.dismiss()
