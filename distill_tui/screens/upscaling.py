"""The TUI's upscales (issue 21.3): the Gallery's ``u`` and the Generate form's "upscale each
result" run :func:`distill_tui.upscale.upscale_image` through the App's engine child (the
generation model stays loaded beside the upscaler), one run at a time.

:func:`upscales` is the App's one :class:`Upscales`: it resolves the upscaler (the active one,
or the one a record names) off the loop, upscales each source in turn, follows the engine's
phase and tile events (``GenerationService.upscale_events``) into an :class:`UpscaleState`
that screens subscribe to, and says how it ended in one notification. Every wait is bounded:
the sources and results are bounded by ``upscale.check_source``, the tiles by the tile size,
and each image by :data:`IMAGE_TIMEOUT` (then the engine child is ended, as ctrl+x does).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_tui.listeners import Listeners
from distill_tui.recipe import UPSCALE_ACTIVE
from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.app import DistillApp
    from distill_tui.engine.protocol import EngineEvent
    from distill_tui.upscale import UpscaleOutcome

log = logging.getLogger(__name__)

#: one image's upscale at most (CPU, Real-ESRGAN x4plus, a 4096-px side: tens of minutes)
IMAGE_TIMEOUT = 3600.0
#: where the upscalers are, for a person without one
UPSCALERS_TAB = "the Model Manager's Upscalers tab (F3: d downloads one, a makes it the active one)"


@dataclass
class UpscaleState:
    """One run: its images, the one being upscaled and how far, and how it ended."""

    sources: list[str]
    origin: str  # "gallery" / "generate": who asked
    upscaler: str = ""  # its name once resolved
    scale: int = 0
    index: int = 0  # the source being upscaled (0-based)
    phase: str = "starting"  # starting, loading, upscaling, saving, done, failed, cancelled
    step: int = 0  # tiles done
    steps: int = 0  # tiles
    results: list[UpscaleOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.phase not in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        n = max(len(self.sources), 1)
        if self.phase == "done":
            return 1.0
        tiles = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.index + tiles) / n)

    def line(self) -> str:
        """One line: "upscaling 1/2 with NAME 4x · tile 3/16"."""
        n = len(self.sources)
        which = f" {self.index + 1}/{n}" if n > 1 else ""
        who = f" with {self.upscaler} {self.scale}x" if self.upscaler else ""
        if self.phase == "done":
            k = len(self.results)
            return f"upscaled {k} image{'s' if k != 1 else ''}{who}"
        if self.phase == "failed":
            return f"upscale failed: {self.error or 'unknown error'}"
        if self.phase == "cancelled":
            return "upscale stopped"
        if self.phase == "upscaling" and self.steps:
            return f"upscaling{which}{who} · tile {self.step}/{self.steps}"
        what = {"starting": "starting", "loading": "loading the upscaler", "saving": "saving"}
        return f"upscaling{which}{who} · {what.get(self.phase, self.phase)}…"


class Upscales:
    """The App's upscales: one run at a time, its state published to subscribers."""

    def __init__(self, app: DistillApp) -> None:
        self._app = weakref.ref(app)
        self.state: UpscaleState | None = None
        self._listeners: Listeners[UpscaleState] = Listeners("upscales")
        self._following = False

    @property
    def app(self) -> DistillApp:
        app = self._app()
        assert app is not None
        return app

    @property
    def running(self) -> bool:
        return self.state is not None and self.state.running

    def subscribe(self, callback: Callable[[UpscaleState], object]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    def _changed(self) -> None:
        if self.state is not None:
            self._listeners.publish(self.state)

    def busy_reason(self) -> str | None:
        """Why an upscale cannot start now (None: it can)."""
        if self.running:
            return "An upscale is running (ctrl+x stops it)"
        if self.app.generation.running:
            return "A generation is running: upscale once it has ended"
        return None

    def start(self, sources: list[str], ref: str | None = None, *, origin: str) -> bool:
        """Upscale ``sources`` with the upscaler ``ref`` names (None: the active one) in a
        worker of the App; False (and a notification) when one is running."""
        reason = self.busy_reason()
        if reason is not None:
            self.app.notify(reason, title="Upscale", severity="warning")
            return False
        self.state = UpscaleState(list(sources), origin)
        self._changed()
        self.app.run_worker(
            self._run(self.state, ref), group="upscale", name="Upscale", exit_on_error=False
        )
        return True

    async def cancel(self) -> bool:
        """End the running upscale (the engine child ends, as a stopped generation's)."""
        if not self.running:
            return False
        return await self.app.engine.cancel()

    def follow_generations(self) -> None:
        """From now on a generation whose recipe names an upscaler (the Generate form's
        "upscale each result", ``recipe`` row ``upscaler``) has each image upscaled once it
        is done (once: the App's generation service is followed by one subscription)."""
        if self._following:
            return
        self._following = True
        self.app.generation.subscribe(self._on_generation)

    def _on_generation(self, kind: str) -> None:
        if kind != "finished":
            return
        job = self.app.generation.job
        if job is None or job.phase != "done" or not job.images:
            return
        ref = str(job.params.recipe()["upscaler"])
        if ref:
            sources = [im.path for im in job.images]
            self.start(sources, None if ref == UPSCALE_ACTIVE else ref, origin="generate")

    def _on_event(self, ev: EngineEvent) -> None:
        st = self.state
        if st is None or not st.running:
            return
        phase = getattr(ev, "phase", None)  # PhaseEvent, ProgressEvent
        if phase not in ("loading", "upscaling", "saving"):
            return
        st.phase = phase
        from distill_tui.engine.protocol import ProgressEvent

        if isinstance(ev, ProgressEvent):
            st.step, st.steps = ev.step, ev.steps
        self._changed()

    async def _run(self, st: UpscaleState, ref: str | None) -> None:
        from distill_tui.engine.client import EngineError
        from distill_tui.upscale import UpscaleError, resolve_upscaler, upscale_image

        app = self.app
        core = app.core
        try:
            upscaler = await asyncio.to_thread(resolve_upscaler, core, ref)
        except UpscaleError as e:
            line = no_upscaler_line(e)  # after "upscale failed: ": lower case
            self._end(st, "failed", line[:1].lower() + line[1:])
            return
        except Exception as e:  # a bug: one line, never a traceback on the screen
            log.exception("resolving the upscaler failed")
            self._end(st, "failed", f"{type(e).__name__}: {e}")
            return
        st.upscaler, st.scale = upscaler.name, upscaler.scale
        events = getattr(app.generation, "upscale_events", None)
        unsubscribe = events.subscribe(self._on_event) if events is not None else None
        try:
            for i, source in enumerate(st.sources):
                st.index, st.phase, st.step, st.steps = i, "starting", 0, 0
                self._changed()
                try:
                    out = await asyncio.wait_for(
                        upscale_image(core, app.engine, source, upscaler), IMAGE_TIMEOUT
                    )
                except TimeoutError:
                    await app.engine.cancel()
                    minutes = IMAGE_TIMEOUT / 60
                    self._end(st, "failed", f"{Path(source).name}: over {minutes:.0f} min")
                    return
                except UpscaleError as e:
                    self._end(st, "failed", str(e))
                    return
                except EngineError as e:
                    if e.kind == "cancelled":
                        self._end(st, "cancelled", None)
                    else:
                        self._end(st, "failed", f"engine {e.kind}: {e.message}")
                    return
                st.results.append(out)
                self._changed()
        except Exception as e:  # a bug or an OS error: a finished run all the same
            log.exception("upscale failed")
            self._end(st, "failed", f"{type(e).__name__}: {e}")
            return
        except BaseException:  # the worker was cancelled (the App exits)
            st.phase = "cancelled"
            self._changed()
            raise
        finally:
            if unsubscribe is not None:
                unsubscribe()
        self._end(st, "done", None)

    def _end(self, st: UpscaleState, phase: str, error: str | None) -> None:
        st.phase, st.error = phase, error
        self._changed()
        app = self.app
        if phase == "done":
            names = ", ".join(Path(r.path).name for r in st.results[:3])
            more = f" (+{len(st.results) - 3})" if len(st.results) > 3 else ""
            where = "" if st.origin == "gallery" else " · F4 lists it"
            app.notify(
                visible(f"{st.line()[:1].upper()}{st.line()[1:]}: {names}{more}{where}"),
                title="Upscale",
            )
        elif phase == "failed":
            app.notify(visible(st.line()), title="Upscale", severity="error", timeout=12)
        elif phase == "cancelled":
            app.notify("The upscale was stopped", title="Upscale", severity="warning")


def no_upscaler_line(error: Exception) -> str:
    """An upscaler that cannot be used, said for the TUI: where to get one (the CLI's line
    names a command)."""
    first = str(error).split(";")[0].rstrip(".")
    return f"{first[:1].upper()}{first[1:]}: {UPSCALERS_TAB}."


def recipe_upscaler(core: Any, value: str) -> tuple[str, str | None]:
    """The recipe's ``upscaler`` value as the record names it (the catalog id, else the
    file), or the line why it cannot be used; read before a generation starts, so a missing
    upscaler is said before the picture is made and the record names the one used."""
    from distill_tui.upscale import UpscaleError, resolve_upscaler

    try:
        up = resolve_upscaler(core, None if value == UPSCALE_ACTIVE else value)
    except UpscaleError as e:
        return value, no_upscaler_line(e)
    return up.model_id or str(up.path), None


_BY_APP: weakref.WeakKeyDictionary[Any, Upscales] = weakref.WeakKeyDictionary()


def upscales(app: DistillApp) -> Upscales:
    """The App's one :class:`Upscales` (made on first use)."""
    found = _BY_APP.get(app)
    if found is None:
        found = _BY_APP[app] = Upscales(app)
    return found
