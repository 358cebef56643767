"""Generate screen (placeholder until the Generate issue lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class GenerateScreen(Screen):
    HELP_TITLE = "Generate"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Generate — coming soon", id="generate-placeholder")
        yield Footer()
