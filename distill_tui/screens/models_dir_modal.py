"""A new Model Directory while the old one holds downloaded files: move them, or leave them.

``ModelsDirModal(old, new, files, same_fs) -> "move" | "leave" | None`` (None: keep the old
directory). Move is a rename, so it is offered only when both directories are on one
filesystem; copying gigabytes across filesystems is left to the person (``mv``).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from distill_tui.formatting import human_size
from distill_tui.resources import style_path
from distill_tui.textsafe import visible


class ModelsDirModal(ModalScreen[str | None]):
    CSS_PATH = [style_path("settings.tcss")]
    HELP_TITLE = "Model Directory"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "answer('move')", "Move them", id="models_dir.move", tooltip="Rename"),
        Binding(
            "l",
            "answer('leave')",
            "Leave them",
            id="models_dir.leave",
            tooltip="Nothing moves; files already at the new place are verified on d",
        ),
        Binding(
            "escape",
            "answer(None)",
            "Cancel",
            id="models_dir.cancel",
            tooltip="Keep the old Model Directory",
        ),
        Binding("left,right", "app.focus_next", "Switch", show=False, id="models_dir.switch"),
    ]

    def __init__(self, old: str, new: str, files: list[tuple[str, int]], same_fs: bool) -> None:
        super().__init__(id="models-dir-modal")
        self._old, self._new = old, new
        self._files = files
        self._same_fs = same_fs

    def compose(self) -> ComposeResult:
        n = len(self._files)
        size = human_size(sum(s for _f, s in self._files))
        lines = [
            f"{self._old} holds {n} downloaded file{'s' if n != 1 else ''} ({size}).",
            "",
        ]
        if self._same_fs:
            lines.append(
                f"Move them: renamed into {self._new} (same filesystem: instant, nothing "
                "is downloaded again)."
            )
        else:
            lines.append(
                f"Move is only offered on the same filesystem, and {self._new} is on another "
                "one (copying would take long). To keep the files, leave them and `mv` them "
                "yourself, then press d on their rows: they are verified, not downloaded."
            )
        lines.append(
            "Leave them: nothing is moved; the new directory starts empty, or its own files "
            "are used (a file already at the catalog path there is verified by sha256 when "
            "you press d)."
        )
        with Vertical(id="models-dir-dialog"):
            yield Static(
                Content.from_markup("[b]Change the Model Directory?[/b]"), id="models-dir-title"
            )
            yield Static(Content(visible("\n".join(lines), multiline=True)), id="models-dir-body")
            with Horizontal(id="models-dir-buttons"):
                yield Button("Cancel (esc)", id="models-dir-cancel", variant="default")
                yield Button("Leave them (l)", id="models-dir-leave", variant="default")
                if self._same_fs:
                    yield Button("Move them (m)", id="models-dir-move", variant="primary")

    def on_mount(self) -> None:
        default = "#models-dir-move" if self._same_fs else "#models-dir-leave"
        self.query_one(default, Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "answer" and parameters == ("move",):
            return self._same_fs
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        answer = {"models-dir-move": "move", "models-dir-leave": "leave"}.get(event.button.id or "")
        self.dismiss(answer)

    def action_answer(self, answer: str | None) -> None:
        if answer == "move" and not self._same_fs:
            return
        self.dismiss(answer)
