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
        engine = f"Engine: {visible(service.engine_line())}   "
        hints = cpu_size_hint(backend, getattr(service, "job", None))
        self._lines = [engine + h for h in hints] + [engine + f"Backend: {visible(backend)}"]
        self._fit()

    def on_resize(self) -> None:
        if getattr(self, "_lines", None):
            self._fit()

    def _fit(self) -> None:
        """The first of the lines that fits the width (the CPU hint, long then short), else the
        plain backend line."""
        room = self.content_size.width or 10_000
        line = next((x for x in self._lines if len(x) <= room), self._lines[-1])
        self.update(Content(line))


#: from this many pixels on, a CPU backend gets the hint (768x768 and up)
CPU_HINT_PIXELS = 768 * 768


def cpu_size_hint(backend: str, job: object) -> list[str]:
    """On a CPU backend the image size is the cost (1024x1024 took ~50 s, issue 22.13): while
    and after a large image is made there, the backend's place says so (a long and a short
    form, for the width); [] otherwise."""
    params = getattr(job, "params", None)
    if params is None or "cpu" not in backend.lower():
        return []
    w, h = int(getattr(params, "width", 0) or 0), int(getattr(params, "height", 0) or 0)
    if w * h < CPU_HINT_PIXELS:
        return []
    return [
        f"Backend: CPU, {w}x{h} is slow there: 512x512 is ~4x faster",
        "CPU: 512x512 ~4x faster",
    ]
