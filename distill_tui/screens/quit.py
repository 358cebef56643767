"""Quitting with downloads running: keep them going in the background, stop them, or stay.

``QuitModal(files) -> "keep" | "stop" | None``. "keep" hands the downloads to a detached
``distill models download`` (see downloads/handoff.py) that resumes them from their partials.
"""

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


class QuitModal(ModalScreen[str | None]):
    CSS_PATH = [style_path("quit.tcss")]
    HELP_TITLE = "Quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "answer('keep')", "Keep downloading", id="quit.keep"),
        Binding("s", "answer('stop')", "Stop downloads", id="quit.stop"),
        Binding("escape", "answer(None)", "Stay", id="quit.stay", tooltip="Back to distill"),
        Binding("left,right", "app.focus_next", "Switch", show=False, id="quit.switch"),
    ]

    def __init__(self, files: list[str]) -> None:
        super().__init__(id="quit-modal")
        self._files = files

    def compose(self) -> ComposeResult:
        n = len(self._files)
        shown = ", ".join(visible(f.rsplit("/", 1)[-1]) for f in self._files[:3])
        more = f" and {n - 3} more" if n > 3 else ""
        body = (
            f"{n} download{'s' if n != 1 else ''} running: {shown}{more}.\n\n"
            "Keep downloading: a background distill process finishes them (it survives the "
            "end of this SSH session; `distill models status` shows it, `distill` shows it "
            "again next time).\n"
            "Stop: the partial downloads are kept; d in the Model Manager resumes them."
        )
        with Vertical(id="quit-dialog"):
            yield Static(Content.from_markup("[b]Quit distill?[/b]"), id="quit-title")
            yield Static(Content(body), id="quit-body")
            with Horizontal(id="quit-buttons"):
                yield Button("Stay (esc)", id="quit-stay", variant="default")
                yield Button("Stop downloads (s)", id="quit-stop", variant="error")
                yield Button("Keep downloading (k)", id="quit-keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quit-keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        answer = {"quit-keep": "keep", "quit-stop": "stop"}.get(event.button.id or "")
        self.dismiss(answer)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
