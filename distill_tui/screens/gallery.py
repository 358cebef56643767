"""Gallery screen (placeholder)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class GalleryScreen(Screen):
    HELP_TITLE = "Gallery"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Gallery — coming soon", id="gallery-placeholder")
        yield Footer()
