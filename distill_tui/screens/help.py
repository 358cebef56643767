"""F1: the keys of the screen underneath, grouped, with their descriptions."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def _key_label(key: str) -> str:
    return key.replace("ctrl+", "^").replace("escape", "esc").replace("delete", "del")


class HelpModal(ModalScreen[None]):
    """Lists the bindings that are active on the screen it was opened from."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close", tooltip="Close help"),
        Binding("q", "close", "Close", show=False, id="help.close_q", tooltip="Close help"),
    ]

    def __init__(self, title: str = "", rows: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(id="help-modal")
        self._title = title
        self._rows = rows or []

    @classmethod
    def for_screen(cls, screen: Screen) -> HelpModal:
        return cls(*cls.rows_for(screen))

    def show_for(self, screen: Screen) -> None:
        """Re-fill this (installed, reused) modal with the keys of ``screen``: opening help
        then costs an update, not a compose."""
        self._title, self._rows = self.rows_for(screen)
        if self.is_mounted:
            self.query_one("#help-title", Static).update(self._title_text())
            self.query_one("#help-keys", Static).update(self._keys_text())
            self.query_one("#help-body", VerticalScroll).scroll_home(animate=False)

    @staticmethod
    def rows_for(screen: Screen) -> tuple[str, list[tuple[str, str, str]]]:
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if b.action in ("help",) and key != "f1":
                continue
            desc = b.description or b.action
            ident = (desc, b.action)
            if ident in seen and b.key_display is None:
                # several keys for one action: join them on the first row
                for i, (k, d, t) in enumerate(rows):
                    if d == desc:
                        rows[i] = (f"{k} / {_key_label(key)}", d, t)
                continue
            seen.add(ident)
            rows.append((b.key_display or _key_label(key), desc, b.tooltip or ""))
        # Keys the screen declares that cannot act right now (its check_action hides them
        # from the footer, e.g. "x Cancel" with no download) are still worth knowing.
        for key, bindings in screen._bindings.key_to_bindings.items():
            for b in bindings:
                desc = b.description or b.action
                if not b.show or (desc, b.action) in seen:
                    continue
                seen.add((desc, b.action))
                rows.append((b.key_display or _key_label(key), desc, b.tooltip or ""))
        title = getattr(screen, "HELP_TITLE", None) or screen.__class__.__name__
        return title, rows

    def _title_text(self) -> str:
        return f"[b]{self._title}[/b] — keys"

    def _keys_text(self) -> str:
        width = max((len(k) for k, _d, _t in self._rows), default=4)
        lines = []
        for key, desc, tip in self._rows:
            tail = f"  [dim]{tip}[/dim]" if tip and tip != desc else ""
            lines.append(f"[b]{key:<{width}}[/b]  {desc}{tail}")
        return "\n".join(lines) or "(no keys)"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(self._title_text(), id="help-title")
            yield Static(self._keys_text(), id="help-keys")
            yield Static(
                "[dim]esc closes · ctrl+p opens the command palette[/dim]", id="help-footer"
            )

    def action_close(self) -> None:
        self.dismiss()
