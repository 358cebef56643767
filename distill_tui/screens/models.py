"""Model Manager screen (placeholder)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class ModelManagerScreen(Screen):
    HELP_TITLE = "Model Manager"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Model Manager — coming soon", id="models-placeholder")
        yield Footer()
