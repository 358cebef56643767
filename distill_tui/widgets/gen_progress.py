"""Progress of the running generation: phase, a bar, elapsed time (reads GenerationService)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import ProgressBar, Static

from distill_tui.generation import Job
from distill_tui.protocols import GenerationControl
from distill_tui.textsafe import visible

PHASE_TEXT = {
    "starting": "starting the engine…",
    "loading": "loading model…",
    "encoding": "encoding prompt…",
    "decoding": "decoding…",
    "saving": "saving…",
}


def describe(job: Job) -> str:
    """One line for the phase of ``job``."""
    batch = job.params.batch_count
    of = f" (image {job.image_index + 1}/{batch})" if batch > 1 and job.running else ""
    if job.phase == "sampling":
        speed = f" · {job.seconds_per_step:.2f} s/step" if job.seconds_per_step > 0 else ""
        return f"sampling step {job.step}/{job.steps or job.params.steps}{speed}{of}"
    if job.phase == "done":
        n = len(job.images)
        return f"done · {n} image{'s' if n != 1 else ''}"
    if job.phase == "cancelled":
        return "stopped"
    if job.phase == "failed":
        return f"failed: {job.error or 'unknown error'}"
    return PHASE_TEXT.get(job.phase, job.phase) + of


class GenProgress(Vertical):
    """Phase line + bar + elapsed. Call :meth:`update_from` on every service change."""

    DEFAULT_CSS = """
    GenProgress { height: auto; }
    GenProgress > Horizontal { height: 1; }
    GenProgress #gen-phase { width: 1fr; }
    GenProgress #gen-elapsed { width: auto; color: $text-muted; }
    GenProgress.-failed #gen-phase { color: $error; }
    GenProgress.-done #gen-phase { color: $success; }
    GenProgress ProgressBar Bar { width: 1fr; }
    GenProgress ProgressBar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static("idle · ctrl+g generates", id="gen-phase")
            yield Static("", id="gen-elapsed")
        yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="gen-bar")

    def update_from(self, service: GenerationControl) -> None:
        job = service.job
        phase = self.query_one("#gen-phase", Static)
        bar = self.query_one("#gen-bar", ProgressBar)
        self.set_class(job is not None and job.phase == "failed", "-failed")
        self.set_class(job is not None and job.phase == "done", "-done")
        if job is None:
            phase.update("idle · ctrl+g generates")
            bar.update(total=1.0, progress=0.0)
            self.query_one("#gen-elapsed", Static).update("")
            return
        phase.update(Content(visible(describe(job))))  # errors quote servers and paths
        bar.update(total=1.0, progress=job.fraction if job.phase != "cancelled" else 0.0)
        self.tick(service)

    def tick(self, service: GenerationControl) -> None:
        job = service.job
        if job is None:
            return
        self.query_one("#gen-elapsed", Static).update(f"{job.elapsed(service.clock()):.1f} s")
