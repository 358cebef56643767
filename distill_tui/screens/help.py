"""F1: the keys of the screen underneath, grouped, with their descriptions."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

THIS_SCREEN = "This screen"
EVERYWHERE = "Everywhere"
#: Textual's own keys that would only bury ours (they still work; the footer line says so)
NOISE_ACTIONS = frozenset(
    {
        "focus_next",  # tab / shift+tab (the App's, issue 22.9): the usual keys, not listed
        "focus_previous",
        "copy_text",
        "screen.copy_text",
        "app.copy_text",
        "scroll_home",
        "scroll_end",
        "page_up",
        "page_down",
        "page_left",
        "page_right",
        "scroll_left",
        "scroll_right",
        "scroll_up",
        "scroll_down",
        "screen.minimize",
        "maximize",
    }
)


class HelpRow(NamedTuple):
    section: str
    key: str
    description: str
    tooltip: str


def _key_label(key: str) -> str:
    """The key as the user types it: ``^g``, ``esc``, ``[`` (Textual names it
    ``left_square_bracket``), ``alt+←``."""
    from textual.keys import format_key, key_to_character

    *mods, name = key.split("+") if key != "+" else ["+"]
    char = key_to_character(name) if len(name) > 1 else None
    if char is not None and char.isprintable() and not char.isspace():
        name = char
    elif mods and name in ("left", "right", "up", "down"):  # alt+←; plain arrows stay words
        name = format_key(name)
    name = {"escape": "esc", "delete": "del"}.get(name, name)
    return ("^" if "ctrl" in mods else "") + "".join(f"{m}+" for m in mods if m != "ctrl") + name


class HelpModal(ModalScreen[None]):
    """Lists the bindings that are active on the screen it was opened from."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close", tooltip="Close help"),
        Binding("q", "close", "Close", show=False, id="help.close_q", tooltip="Close help"),
    ]

    def __init__(self, title: str = "", rows: list[HelpRow] | None = None) -> None:
        super().__init__(id="help-modal")
        self._title = title
        self.rows: list[HelpRow] = rows or []

    @classmethod
    def for_screen(cls, screen: Screen) -> HelpModal:
        return cls(*cls.rows_for(screen))

    def show_for(self, screen: Screen) -> None:
        """Re-fill this (installed, reused) modal with the keys of ``screen``: opening help
        then costs an update, not a compose."""
        self._title, self.rows = self.rows_for(screen)
        if self.is_mounted:
            self.query_one("#help-title", Static).update(self._title_text())
            self.query_one("#help-keys", Static).update(self._keys_table())
            self.query_one("#help-body", VerticalScroll).scroll_home(animate=False)

    @staticmethod
    def rows_for(screen: Screen) -> tuple[str, list[HelpRow]]:
        """(title, rows): the screen's own keys first (ours carry an id), then the keys that
        work everywhere. Keys Textual's widgets bring along (scrolling, text editing, copy)
        are left out; one line at the bottom says they exist."""
        from textual.app import App

        title = getattr(screen, "HELP_TITLE", None) or screen.__class__.__name__
        rows: list[HelpRow] = []
        where: dict[tuple[str, str], int] = {}

        def add(section: str, key: str, b: Binding) -> None:
            desc = b.description or b.action
            ident = (desc, b.action)
            label = b.key_display or _key_label(key)
            if ident in where:  # several keys for one action: one row
                if b.key_display is None:
                    i = where[ident]
                    sec, k, d, t = rows[i]
                    if label not in k.split(" / "):
                        rows[i] = HelpRow(sec, f"{k} / {label}", d, t)
                return
            where[ident] = len(rows)
            rows.append(HelpRow(section, label, desc, b.tooltip or ""))

        def section_of(node: object, b: Binding) -> str | None:
            if b.action in NOISE_ACTIONS:
                return None
            if isinstance(node, App):
                return EVERYWHERE
            if b.id:  # ours: the screen's or one of its widgets'
                return THIS_SCREEN
            if node is screen and b.action in ("focus_next", "focus_previous"):
                return EVERYWHERE
            return None  # a Textual widget's own keys

        for key, active in screen.active_bindings.items():
            b = active.binding
            if b.action == "help" and key != "f1":
                continue
            section = section_of(active.node, b)
            if section is not None:
                add(section, key, b)
        # Keys the screen declares that cannot act right now (its check_action hides them
        # from the footer, e.g. "x Cancel" with no download) are still worth knowing.
        for key, bindings in screen._bindings.key_to_bindings.items():
            for b in bindings:
                if b.show and b.action not in NOISE_ACTIONS:
                    add(THIS_SCREEN, key, b)
        order = {THIS_SCREEN: 0, EVERYWHERE: 1}
        rows.sort(key=lambda r: order.get(r.section, 2))  # stable: keeps the binding order
        return title, rows

    def _title_text(self) -> str:
        return f"[b]{self._title}[/b] — keys"

    def _keys_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, style="bold")
        table.add_column(ratio=1)
        section = None
        for row in self.rows:
            if row.section != section:
                if section is not None:
                    table.add_row("", "")
                section = row.section
                table.add_row(Text(section, style="bold underline"), "")
            desc = Text(row.description)
            if row.tooltip and row.tooltip != row.description:
                desc.append(" · " + row.tooltip, style="dim")
            table.add_row(row.key, desc)
        if not self.rows:
            table.add_row("(no keys)", "")
        return table

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(self._title_text(), id="help-title")
            yield Static(self._keys_table(), id="help-keys")
            yield Static(
                "[dim]Text fields, lists and scroll areas also take their usual keys (arrows, "
                "home/end, page up/down, ctrl+z …).\nesc closes · ctrl+p opens the command "
                "palette[/dim]",
                id="help-footer",
            )

    def action_close(self) -> None:
        self.dismiss()
