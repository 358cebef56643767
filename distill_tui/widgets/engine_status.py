"""The engine status line: state (with model and quants, or the failure) and the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.protocols import GenerationControl


class EngineStatus(Static):
    """``Engine: ready · flux2-klein-4b · Q4_K_S + Q4_K_M   Backend: CPU``."""

    DEFAULT_CSS = """
    EngineStatus { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    EngineStatus.-ready { color: $success; }
    EngineStatus.-busy, EngineStatus.-loading, EngineStatus.-starting { color: $warning; }
    EngineStatus.-failed { color: $error; }
    """

    def update_from(self, service: GenerationControl) -> None:
        state = service.engine_state
        for s in ("ready", "busy", "loading", "starting", "failed", "not_started"):
            self.set_class(s == state, f"-{s}")
        backend = service.backend or "—"  # known once the engine has started
        # model ids, quant ids and failure reasons come from outside: plain text, shown safely
        self.update(
            Content(f"Engine: {visible(service.engine_line())}   Backend: {visible(backend)}")
        )
