"""Textual's Footer, recomposed only when the keys it shows actually change.

Textual's Footer rebuilds every FooterKey (mount + a stylesheet pass per key) each time the
screen's bindings are refreshed: on every focus change, every screen resume, every
``refresh_bindings()``. On the Model Manager that is every arrow key, and on a loaded 2-core
box it was the largest single cost of a key press. Most of those refreshes change nothing
the footer shows, so this one compares what it would show with what it shows and skips the
rebuild when they are equal.

Keys that do not fit 80 columns (F5 Settings) carry ``show=False``; this footer shows them
when it is not compact (a wide terminal), so F5 is not only in F1 and the palette.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: binding ids shown (despite ``show=False``) when the footer is not compact: wide terminals
WIDE_ONLY = frozenset({"app.settings"})


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

    def _wide_extras(self, screen: Screen) -> list[Any]:
        if self.compact:
            return []
        return [
            active
            for active in screen.active_bindings.values()
            if not active.binding.show and active.binding.id in WIDE_ONLY
        ]

    def _what_shows(self, screen: Screen) -> tuple[Any, ...]:
        extras = tuple(a.binding.key for a in self._wide_extras(screen))
        return (shown_keys(screen), extras)

    def compose(self) -> Any:
        # Textual's Footer shows nothing until the screen first announces its bindings (after
        # the first refresh), then recomposes: the keys reached the terminal a whole frame
        # after everything else (~0.1 s of a ~1 s start on a 2-core box). The screen's keys
        # are known now; an announcement that changes nothing shown is skipped below.
        self.set_reactive(Footer._bindings_ready, True)
        self._shown = self._what_shows(self.screen)
        extras = self._wide_extras(self.screen)
        yield from super().compose()
        if extras:
            self.styles.grid_size_columns = (self.styles.grid_size_columns or 0) + len(extras)
        for _node, binding, enabled, tooltip in extras:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip or binding.tooltip,
            ).data_bind(compact=Footer.compact)

    def _watch_compact(self, compact: bool) -> None:
        # a resize across the breakpoint: F5 comes or goes
        if (
            self._shown is not None
            and self.is_attached
            and self._what_shows(self.screen) != self._shown
        ):
            self.refresh(recompose=True)

    def bindings_changed(self, screen: Screen) -> None:
        if (
            self._shown is not None
            and self.is_attached
            and screen is self.screen
            and self._what_shows(screen) == self._shown
        ):
            return
        super().bindings_changed(screen)
