"""A yes/no question as a modal: ``ConfirmModal(title, body) -> bool``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from distill_tui.resources import style_path
from distill_tui.textsafe import visible


class ConfirmModal(ModalScreen[bool]):
    """Ask before something that cannot be undone. Dismisses with True only on yes."""

    CSS_PATH = [style_path("confirm.tcss")]
    HELP_TITLE = "Confirm"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Confirm"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Keep it; close"),
        Binding(
            "left,right",
            "app.focus_next",
            "Switch",
            show=False,
            id="confirm.switch",
            tooltip="Move between the buttons",
        ),
    ]

    def __init__(
        self, title: str, body: str | Content, *, yes: str = "Remove", no: str = "Keep"
    ) -> None:
        super().__init__(id="confirm-modal")
        # Titles and bodies quote catalog names, file names and prompts: plain text, with
        # control characters shown (a str body is never parsed as markup).
        self._title = visible(title)
        self._body = Content(visible(body, multiline=True)) if isinstance(body, str) else body
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Content.from_markup("[b]$t[/b]", t=self._title), id="confirm-title")
            yield Static(self._body, id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self._no} (n)", id="confirm-no", variant="default")
                yield Button(f"{self._yes} (y)", id="confirm-yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
