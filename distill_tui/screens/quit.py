"""Quitting with downloads or a generation running: keep the downloads going in the
background, stop them, or stay.

``QuitModal(files, generating=False) -> "keep" | "stop" | None``. "keep" hands the downloads
to a detached ``distill models download`` (see downloads/handoff.py) that resumes them from
their partials. A generation cannot be handed off: quitting stops it (the engine process
ends), so ctrl+q asks first as it does for downloads.
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
from distill_tui.selfcmd import distill_command
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

    def __init__(self, files: list[str], generating: bool = False) -> None:
        super().__init__(id="quit-modal")
        self._files = files
        self._generating = generating

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "answer" and parameters == ("keep",):
            return bool(self._files)  # nothing to keep going without downloads
        return True

    def compose(self) -> ComposeResult:
        n = len(self._files)
        shown = ", ".join(visible(f.rsplit("/", 1)[-1]) for f in self._files[:3])
        more = f" and {n - 3} more" if n > 3 else ""
        cmd = distill_command()  # the name a new shell finds, else the absolute path
        lines = []
        if self._generating:
            lines.append(
                "A generation is running: quitting stops it (the engine process ends; "
                "images already written are kept)."
            )
        if n:
            lines.append(
                f"{n} download{'s' if n != 1 else ''} running: {shown}{more}.\n\n"
                "Keep downloading: a background distill process finishes them (it survives the "
                f"end of this SSH session; `{cmd} models status` shows it, `{cmd}` shows it "
                "again next time).\n"
                "Stop: the partial downloads are kept; d in the Model Manager resumes them."
            )
        stop = "Stop downloads (s)" if n else "Stop and quit (s)"
        with Vertical(id="quit-dialog"):
            yield Static(Content.from_markup("[b]Quit distill?[/b]"), id="quit-title")
            yield Static(Content("\n\n".join(lines)), id="quit-body")
            with Horizontal(id="quit-buttons"):
                yield Button("Stay (esc)", id="quit-stay", variant="default")
                yield Button(stop, id="quit-stop", variant="error")
                if n:
                    yield Button("Keep downloading (k)", id="quit-keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quit-keep" if self._files else "#quit-stay", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        answer = {"quit-keep": "keep", "quit-stop": "stop"}.get(event.button.id or "")
        self.dismiss(answer)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
