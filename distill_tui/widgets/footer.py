"""Textual's Footer, recomposed only when the keys it shows actually change.

Textual's Footer rebuilds every FooterKey (mount + a stylesheet pass per key) each time the
screen's bindings are refreshed: on every focus change, every screen resume, every
``refresh_bindings()``. On the Model Manager that is every arrow key, and on a loaded 2-core
box it was the largest single cost of a key press. Most of those refreshes change nothing
the footer shows, so this one compares what it would show with what it shows and skips the
rebuild when they are equal.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


def shown_keys(screen: Screen) -> tuple[Any, ...]:
    """Everything the footer's compose reads from the screen's bindings."""
    out: list[Any] = []
    for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items():
        if binding.show or key == screen.app.COMMAND_PALETTE_BINDING:
            group = binding.group
            out.append(
                (
                    key,
                    binding.action,
                    binding.description,
                    binding.key_display,
                    bool(enabled),
                    tooltip,
                    binding.show,
                    (group.description, group.compact) if group is not None else None,
                )
            )
    return tuple(out)


class DistillFooter(Footer):
    _shown: tuple[Any, ...] | None = None

    def compose(self) -> Any:
        # Textual's Footer shows nothing until the screen first announces its bindings (after
        # the first refresh), then recomposes: the keys reached the terminal a whole frame
        # after everything else (~0.1 s of a ~1 s start on a 2-core box). The screen's keys
        # are known now; an announcement that changes nothing shown is skipped below.
        self.set_reactive(Footer._bindings_ready, True)
        self._shown = shown_keys(self.screen)
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if (
            self._shown is not None
            and self.is_attached
            and screen is self.screen
            and shown_keys(screen) == self._shown
        ):
            return
        super().bindings_changed(screen)
