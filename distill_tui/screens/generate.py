"""Generate (F2, the default screen): model, prompt and parameters on the left, the live
preview / final image on the right, progress under the form, the engine status line.

The generation itself belongs to the App (``app.generation``, a
:class:`~distill_tui.generation.GenerationService`): this screen only starts and stops it and
draws what the service reports, so switching to F3 and back never interrupts it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, ProgressBar, Select, Static, TextArea

from distill_tui import jsonfile
from distill_tui.atomic import atomic_write_json
from distill_tui.formatting import image_caption, notification_sequence, quant_pair
from distill_tui.generation import (
    ChangeKind,
    EngineKnobs,
    GenParams,
    Job,
)
from distill_tui.guide import setup_need
from distill_tui.resources import style_path
from distill_tui.screens.base import DistillScreen
from distill_tui.screens.upscaling import UpscaleState, recipe_upscaler, upscales
from distill_tui.textsafe import escape_markup, visible
from distill_tui.widgets.empty_state import busy_keys, empty_state_text
from distill_tui.widgets.engine_status import EngineStatus
from distill_tui.widgets.gen_progress import GenProgress
from distill_tui.widgets.generate_form import ADVANCED_FIRST, GenerateForm
from distill_tui.widgets.image_view import Frame, ImageView
from distill_tui.widgets.model_select import MANAGE, ModelSelect

if TYPE_CHECKING:
    from distill_tui.app import DistillApp
    from distill_tui.downloads.events import DownloadEvent
    from distill_tui.protocols import GenerationControl
    from distill_tui.settings import Settings

log = logging.getLogger(__name__)

#: the form as last generated with, under the state dir (restored on the next start)
LAST_FORM = "last-form.json"


class GenerateScreen(DistillScreen):
    """Prompt, parameters, progress and the image inline."""

    HELP_TITLE = "Generate"
    SUB_TITLE = "Generate"
    CSS_PATH = [style_path("generate.tcss")]
    #: the prompt gets the first focus directly: auto-focusing the scrolling form first and
    #: moving on re-styled the whole form twice (~0.1 s of the first paint)
    AUTO_FOCUS = "#prompt"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - Textual's own
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+g",
            "generate",
            "Generate",
            id="generate.start",
            priority=True,
            tooltip="Generate with the current prompt and parameters",
        ),
        Binding(
            "ctrl+x",
            "stop",
            "Stop",
            id="generate.stop",
            priority=True,
            tooltip="Stop the running generation (ends the engine process)",
        ),
        Binding(
            "ctrl+r",
            "reroll_seed",
            "New seed",
            id="generate.reroll_seed",
            show=False,  # the hint beside the seed field names it; the footer stays short
            priority=True,
            tooltip="Put a new random seed in the seed field",
        ),
        Binding(
            "ctrl+l",
            "last_seed",
            "Last seed",
            id="generate.last_seed",
            show=False,
            priority=True,
            tooltip="Reuse the seed of the last generated image",
        ),
        Binding(
            "ctrl+o",
            "random_seed",
            "Random seed",
            id="generate.random_seed",
            show=False,
            priority=True,
            tooltip="Clear the seed field: a random seed each run",
        ),
        # alt+arrows, not [ and ]: a text field (prompt, seed, batch) types those, and the
        # focus is in one nearly always. [ and ] still work with the image pane focused.
        Binding(
            "alt+left",
            "previous_image",
            "Prev image",
            id="generate.previous_image",
            show=False,
            priority=True,
            tooltip="Previous image of the batch",
        ),
        Binding(
            "alt+right",
            "next_image",
            "Next image",
            id="generate.next_image",
            show=False,
            priority=True,
            tooltip="Next image of the batch",
        ),
        Binding(
            "ctrl+f",
            "copy_image_path",
            "Copy path",
            id="generate.copy_path",
            show=False,
            priority=True,
            tooltip="Copy the image's path to the clipboard (over SSH: an scp line that fetches "
            "it, to paste on your laptop)",
        ),
        Binding(
            "ctrl+n",
            "toggle_advanced",
            "Advanced",
            id="generate.toggle_advanced",
            show=False,  # its title names the key
            priority=True,
            tooltip="Open or close the advanced section (engine knobs, img2img, LoRA)",
        ),
        Binding(
            "ctrl+t",
            "compare_quants",
            "Compare quants",
            id="generate.compare",
            show=False,
            priority=True,
            tooltip="This prompt and seed through every installed quant pair: a contact sheet",
        ),
    ]

    class ReadinessChanged(Message):
        """Settings changed or a download finished: the model selector is rebuilt."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, GenerateScreen.ReadinessChanged)

    def __init__(self) -> None:
        super().__init__()
        self._shown_job: int | None = None
        self._shown_images = 0

    # ---- layout ----------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        core = self.core
        with Horizontal(id="generate-body"):
            yield GenerateForm(
                core,
                self._defaults(),
                EngineKnobs.from_settings(core.settings.settings.generation),
                id="generate-form",
            )
            yield ImageView("No image yet — type a prompt and press ctrl+g", id="image-view")
        yield EngineStatus(id="engine-status")

    @property
    def service(self) -> GenerationControl:
        return self.distill.generation

    def _defaults(self, model_id: str | None = None) -> GenParams:
        """Catalog recommendations for the model, overridden by settings.generation."""
        core = self.distill.core
        model = core.catalog.get(model_id or core.settings.settings.active_model_id)
        rec = model.recommended if model else None
        from distill_tui.recipe import Recipe  # the one precedence (distill generate's too)

        family = model.family if model else None
        recipe = Recipe.resolve(rec, core.settings.settings.generation, family=family)
        return GenParams.from_recipe(recipe, knobs=False)

    def on_mount(self) -> None:
        app = self.distill
        app.generation_signal.subscribe(self, self._on_service_change, immediate=True)
        # readiness changes elsewhere (F3 downloads and quant choices) must reach the selector
        app.download_signal.subscribe(self, self._on_download, immediate=True)
        app.settings_signal.subscribe(self, self._on_settings_changed, immediate=True)
        #: the model whose defaults the form shows (a change of the active one is followed)
        self._form_model: str | None = app.core.settings.settings.active_model_id
        self.set_interval(0.5, self._tick)
        # the form's "upscale each result": each image of a finished generation (App-wide)
        upscales(app).follow_generations()
        self._unsubscribe_upscales = upscales(app).subscribe(self._on_upscale)
        if self.service.job is None:  # a new start: what you left (the form, the last image)
            self._restore_form()
            self._restore_last_image()
        self._refresh_all()
        self.query_one("#prompt", TextArea).focus()

    def on_unmount(self) -> None:
        self._unsubscribe_upscales()

    def _on_upscale(self, state: UpscaleState) -> None:
        """The form's upscale of the results: its line and bar under the form; the results
        join the image pane."""
        if state.origin != "generate" or not self.is_mounted:
            return
        progress = self.query_one(GenProgress)
        progress.query_one("#gen-phase", Static).update(Content(visible(state.line())))
        progress.query_one("#gen-bar", ProgressBar).update(total=1.0, progress=state.fraction)
        progress.set_class(state.phase == "failed", "-failed")
        if state.phase == "done" and state.results:
            view = self.query_one(ImageView)
            frames = [
                Frame(
                    path=r.path,
                    caption=f"[b]{escape_markup(self.shown_path(r.path))}[/b]\n"
                    f"{r.width}x{r.height} · upscaled {r.scale}x from "
                    f"{escape_markup(visible(r.source.path.name))}",
                )
                for r in state.results
            ]
            view.set_frames([*view.frames, *frames], index=len(view.frames))
        self.refresh_bindings()

    # ---- what you come back to -------------------------------------------------------
    @property
    def _form_file(self) -> Path:
        return self.distill.core.paths.state_dir / LAST_FORM

    def _save_form(self, params: GenParams) -> None:
        """The form as it was generated with, for the next start (the engine knobs are saved
        in settings.generation already)."""
        doc = dataclasses.asdict(params)
        doc.pop("knobs", None)
        doc.update(doc.pop("extra", ()))  # the engine's own knobs, by their recipe names
        doc["loras"] = [{"name": n, "weight": w} for n, w in params.loras]
        try:
            atomic_write_json(self._form_file, {"version": 1, "params": doc})
        except OSError as e:  # a read-only state dir still generates
            log.warning("could not save the form: %s", e)

    def _restore_form(self) -> None:
        try:
            raw = self._form_file.read_bytes()
        except OSError:
            return  # never generated here yet
        try:
            doc = jsonfile.loads(raw)
            params = GenParams.from_record_params(doc["params"])
        except Exception as e:  # a broken file: an empty form, and one line in the log
            log.warning("ignoring %s: %s", self._form_file, e)
            return
        self.form.load(params)

    def _restore_last_image(self) -> None:
        """The newest image of the history on the image pane (read off the loop)."""
        self.run_worker(self._newest_image, thread=True, group="last-image", exit_on_error=False)

    def _newest_image(self) -> None:
        from distill_tui.outputs import History

        for rec in History(self.distill.core.paths.history_file).records()[:20]:
            for path in reversed(rec.images):
                if Path(path).is_file():
                    index = rec.images.index(path)
                    try:
                        size = int(rec.params["width"]), int(rec.params["height"])
                    except (KeyError, TypeError, ValueError):
                        size = (0, 0)
                    caption = image_caption(
                        self.shown_path(path), rec.seed + index, *size, rec.timings
                    )
                    frame = Frame(path=path, caption=caption)
                    self.app.call_from_thread(self._show_restored, frame)
                    return

    def _show_restored(self, frame: Frame) -> None:
        view = self.query_one(ImageView)
        if self.service.job is None and not view.frames:  # a new image wins
            view.set_frames([frame])

    def on_screen_resume(self) -> None:
        # F3 (or the CLI in another process) may have made a model ready meanwhile
        self.distill.core.inventory.refresh()
        self.query_one(ModelSelect).reload()
        self._show_model()
        self.query_one(ImageView).refresh_renderer()
        self._refresh_all()

    # ---- readiness -> model selector --------------------------------------------------
    def _on_settings_changed(self, _settings: Settings) -> None:
        if self.is_attached and self.is_mounted:
            self.post_message(self.ReadinessChanged())

    def _on_download(self, event: DownloadEvent) -> None:
        if not (self.is_attached and self.is_mounted):
            return
        if event.state == "done":
            self.post_message(self.ReadinessChanged())
        elif event.state != "downloading":  # queued/failed/...: not every progress tick
            self.post_message(self.DownloadsChanged())

    class DownloadsChanged(Message):
        """A download started or stopped: the empty state may say "downloading"."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, GenerateScreen.DownloadsChanged)

    @on(DownloadsChanged)
    def _downloads_changed(self) -> None:
        self._sync_empty_state()

    @on(ReadinessChanged)
    def _readiness_changed(self) -> None:
        self.query_one(ModelSelect).reload()
        # the active model changed elsewhere (distill models use, the Model Manager): the form
        # follows it as when it is chosen in the Model list
        self._follow_model(self.distill.core.settings.settings.active_model_id)
        self._show_model()
        self._sync_empty_state()

    def _show_model(self) -> None:
        """The form shows what the model ctrl+g uses has (a recipe pinned from the Gallery's,
        else the active one): its family's features (no edit references for Z-Image)."""
        core = self.distill.core
        reuse = getattr(self, "_reuse", None)
        model_id = reuse[0] if reuse is not None else core.settings.settings.active_model_id
        self.form.show_model(core.catalog.get(model_id))

    def _sync_empty_state(self) -> None:
        """The image pane before the first image: what to do (F3 and the size when no model
        is ready, ctrl+g when it is)."""
        view = self.query_one(ImageView)
        if view.frames:
            return
        text = empty_state_text(self.distill.core, busy_keys(self.distill))
        if text != view.placeholder:
            view.clear(text)

    def _open_setup(self) -> bool:
        """ctrl+g with the active model not ready: its card in the Model Manager instead."""
        core = self.distill.core
        model = core.catalog.get(core.settings.settings.active_model_id)
        if model is None or core.resolver.is_model_ready(model.id):
            return False
        need = setup_need(core.catalog, core.settings, core.inventory, model.id)
        tail = (
            f": d on its header downloads the {need.which}, {need.size_text}"
            if need is not None and need.missing
            else ": choose its quants (enter on a downloaded quant)"
        )
        self.notify(f"{model.name} is not ready{tail}.", title="Set up the model first")
        self.distill.show_models(model.id)
        return True

    # ---- service -> widgets ----------------------------------------------------------
    def _tick(self) -> None:
        if self.service.running and self.display_settings.live_times:
            self.query_one(GenProgress).tick(self.service)

    def _refresh_all(self) -> None:
        self._sync_empty_state()
        self.query_one(EngineStatus).update_from(self.service)
        self.query_one(GenProgress).update_from(self.service)
        job = self.service.job
        if job is not None and job.images:
            self._show_images(job)

    def _on_service_change(self, kind: ChangeKind) -> None:
        if not self.is_mounted:
            return
        svc = self.service
        job = svc.job
        if kind == "engine":
            self.query_one(EngineStatus).update_from(svc)
            return
        self.query_one(GenProgress).update_from(svc)
        self.query_one(EngineStatus).update_from(svc)
        if job is None:
            return
        view = self.query_one(ImageView)
        if kind == "preview" and job.preview_png:
            batch = job.params.batch_count
            which = f" · image {job.image_index + 1}/{batch}" if batch > 1 else ""
            view.show_preview(
                job.preview_png,
                f"preview · step {job.preview_step}/{job.steps or job.params.steps}{which}",
            )
        elif kind == "image":
            self._show_images(job, last=True)
        elif kind == "finished":
            if job.images:
                self._show_images(job)  # (a failure is reported by the App)
            self._maybe_notify(job)
            self.refresh_bindings()
        elif kind == "job":
            self.refresh_bindings()

    def _show_images(self, job: Job, last: bool = False) -> None:
        timings = job.timings.model_dump() if job.timings else None
        frames = [
            Frame(
                path=im.path,
                caption=image_caption(
                    self.shown_path(im.path), im.seed, im.width, im.height, timings
                ),
            )
            for im in job.images
        ]
        view = self.query_one(ImageView)
        same = (
            self._shown_job == job.number
            and self._shown_images == len(frames)
            and len(view.frames) == len(frames)
        )
        if same:
            for f, old in zip(frames, view.frames, strict=True):
                old.caption = f.caption
            view.set_caption(view.frames[view.index].caption)
            return
        self._shown_job, self._shown_images = job.number, len(frames)
        view.set_frames(frames, index=len(frames) - 1 if last else 0)

    def _maybe_notify(self, job: Job) -> None:
        """Bell + a terminal notification when a long generation ends while the user is
        elsewhere: on another screen, or in another window (the terminal reported blur)."""
        settings = self.distill.core.settings.settings
        if not settings.notify_on_finish or (self.is_current and self.app.app_focus):
            return
        if job.elapsed(self.service.clock()) < settings.notify_after_seconds:
            return
        what = {"done": "finished", "failed": "failed", "cancelled": "stopped"}[job.phase]
        message = f"distill: generation {what}"
        self.app.bell()
        driver = self.app._driver
        if driver is not None and not self.app.is_headless:
            driver.write(notification_sequence(message))
        self.app.notify(
            message, title="Generate", severity="error" if job.phase == "failed" else "information"
        )

    # ---- form <-> params -------------------------------------------------------------
    @property
    def form(self) -> GenerateForm:
        return self.query_one(GenerateForm)

    def _save_knobs(self, knobs: EngineKnobs | None) -> None:
        """The knobs a generation ran with become the defaults (settings.generation), as the
        reused recipe's quants become the saved choice only when you generate with them."""
        if knobs is None:
            return
        store = self.distill.core.settings
        gen = store.settings.generation
        update = {k: v for k, v in knobs.settings_update().items() if getattr(gen, k) != v}
        if update:
            try:
                store.update(generation=gen.model_copy(update=update))
            except Exception as e:  # a read-only config still generates
                self.distill.report_failure("Settings not saved", str(e))

    def _set_reuse(self, reuse: tuple[str, Any] | None) -> None:
        """Pin (or unpin) the model and quants ctrl+g uses; nothing is saved until then."""
        self._reuse = reuse
        try:
            line = self.query_one("#reuse-line", Static)
        except Exception:
            return
        self._show_model()
        if reuse is None:
            line.display = False
            return
        model_id, sel = reuse
        core = self.distill.core
        model = core.catalog.get(model_id)
        name = model.name if model else model_id
        missing = core.resolver.missing(model_id, sel) if model else ["not in the catalog"]
        state = "ready" if not missing else "not downloaded: " + "; ".join(missing)
        line.update(
            Content(
                visible(
                    f"Recipe from the Gallery: {name} · "
                    f"{quant_pair(sel.diffusion_quant, sel.text_encoder_quant)} ({state})"
                )
            )
        )
        line.set_class(bool(missing), "-warning")
        line.display = True

    def apply_params(
        self, params: GenParams, model_id: str | None = None, selection: Any = None
    ) -> None:
        """Fill the form (the Gallery's "reuse"). With ``selection`` the next ctrl+g uses that
        model and those quants — the image's recipe — without changing the saved choice
        until then."""
        if model_id and selection is not None:
            self._set_reuse((model_id, selection))
        else:
            self._set_reuse(None)
        self.form.load(params)
        for line in self.form.not_sent():  # its references on a model without: said now
            self.notify(
                escape_markup(visible(line)), title="Recipe", severity="warning", timeout=12
            )

    # ---- events ----------------------------------------------------------------------
    def action_toggle_advanced(self) -> None:
        form = self.form
        if form.advanced.collapsed:
            form.focus_field(ADVANCED_FIRST)  # opens it; the section scrolls into view
        else:
            form.advanced.collapsed = True

    @on(Select.Changed, "#model-select")
    def _model_chosen(self, event: Select.Changed) -> None:
        select = self.query_one(ModelSelect)
        core = self.distill.core
        value = event.value
        active = core.settings.settings.active_model_id
        if value is Select.NULL or value == active:
            return
        if value == MANAGE or not core.resolver.is_model_ready(str(value)):
            select.reload()  # snap back to the active model
            # a "not ready" model: the Model Manager on ITS card
            self.distill.show_models(None if value == MANAGE else str(value))
            return
        self._set_reuse(None)  # choosing a model here replaces a recipe from the Gallery
        self._follow_model(str(value))
        core.settings.update(active_model_id=str(value))
        self._show_model()
        self._switch_engine_model(str(value))

    def _follow_model(self, model_id: str) -> None:
        """The form's picture fields follow a new active model (``GenerateForm.follow_model``:
        a value still at the old model's default takes the new one's, a typed one stays),
        whichever way it was chosen. A recipe pinned from the Gallery keeps its values."""
        old = getattr(self, "_form_model", None)
        self._form_model = model_id
        if old is None or old == model_id or getattr(self, "_reuse", None) is not None:
            return
        self.form.follow_model(self._defaults(old), self._defaults(model_id))

    def _switch_engine_model(self, model_id: str) -> None:
        self.app.run_worker(
            self.service.switch_model(model_id),
            group="engine",
            name="Switch model",
            exit_on_error=False,
        )

    # ---- actions ---------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # one of ctrl+g / ctrl+x in the footer at a time (80 columns have no room for both)
        if action == "stop":  # a generation, or the upscale of its results
            return self.service.running or upscales(self.distill).running
        if action == "generate":
            return not self.service.running
        return True

    def action_generate(self) -> None:
        if self.service.running:
            self.notify("A generation is already running (ctrl+x stops it)", severity="warning")
            return
        if getattr(self, "_reuse", None) is None and self._open_setup():
            return
        if upscales(self.distill).running:
            self.notify("An upscale is running (ctrl+x stops it)", severity="warning")
            return
        params, errors = self.form.to_request()
        self._show_refusal(errors)
        if params is None:
            return
        for line in self.form.dropped:  # a pinned recipe's references on Z-Image: said
            self.notify(
                escape_markup(visible(line)), title="Not sent", severity="warning", timeout=12
            )
        if self._warn_fit(params):
            return
        if params.recipe()["upscaler"]:  # "upscale each result": which one, said before
            named, problem = recipe_upscaler(self.distill.core, params.recipe()["upscaler"])
            if problem:
                self.notify(problem, title="Upscale", severity="warning", timeout=12)
                return
            params = GenParams.from_recipe(params.recipe().replace(upscaler=named))
        self._save_knobs(params.knobs)
        self._save_form(params)
        reuse = getattr(self, "_reuse", None)
        if reuse is not None:
            model_id, selection = reuse
            missing = self.distill.core.resolver.missing(model_id, selection)
            if missing:
                self.notify(
                    f"The reused recipe is not ready: {'; '.join(missing)}. Download it in the "
                    "Model Manager (F3), or choose a model above to generate with that instead.",
                    title="Not downloaded",
                    severity="warning",
                )
                return
            run_generation(self.distill, params, model_id, selection)
            self._form_model = model_id  # the form holds its recipe: nothing to follow
            self._set_reuse(None)  # now the saved choice (the service persisted it)
            return
        run_generation(self.distill, params)

    def _show_refusal(self, errors: list[str]) -> None:
        """The form's error lines under it, and one notification naming the fields (the lines
        are off screen when the advanced section is open)."""
        self.form.show_errors(errors)
        if errors:
            summary = GenerateForm.fix_summary(errors)
            self.notify(escape_markup(visible(summary)), severity="error", timeout=8)

    def _warn_fit(self, params: GenParams) -> bool:
        """Warn once before a generation whose set and size will not fit the GPU (the
        memory model); ctrl+g again with the same size and set runs it anyway."""
        from distill_tui.memory_model import generation_warning, knobs_from_engine

        core = self.distill.core
        warning = generation_warning(
            getattr(self.app, "machine", None),
            core,
            params.width,
            params.height,
            knobs_from_engine(params.knobs) if params.knobs is not None else None,
        )
        key = (warning, params.width, params.height)
        if not warning or getattr(self, "_fit_warned", None) == key:
            return False
        self._fit_warned = key
        self.notify(
            warning + " ctrl+g again runs it anyway.",
            title="Will not fit the GPU",
            severity="warning",
            timeout=12,
        )
        return True

    def action_stop(self) -> None:
        job = upscales(self.distill)
        if job.running and not self.service.running:
            self.app.run_worker(job.cancel(), group="engine-stop", exit_on_error=False)
        if self.service.running:
            self.app.run_worker(
                self.service.cancel(), group="engine-stop", name="Stop", exit_on_error=False
            )

    def action_reroll_seed(self) -> None:
        self.query_one("#seed", Input).value = str(random.randrange(0, 2**32))

    def action_last_seed(self) -> None:
        seed = self.service.last_seed
        if seed is None:
            self.notify("No image generated yet in this session", severity="warning")
            return
        self.query_one("#seed", Input).value = str(seed)

    def action_random_seed(self) -> None:
        self.query_one("#seed", Input).value = ""

    def action_previous_image(self) -> None:
        self.query_one(ImageView).action_previous_image()

    def action_next_image(self) -> None:
        self.query_one(ImageView).action_next_image()

    def action_copy_image_path(self) -> None:
        frame = self.query_one(ImageView).current
        if frame is None or not frame.path:  # none yet, or a live preview (not a file)
            self.notify("No image to copy yet", title="Copy path", severity="warning")
            return
        copy_image_path(self.app, frame.path)

    def action_compare_quants(self) -> None:
        if self.service.running:
            self.notify("A generation is running (ctrl+x stops it)", severity="warning")
            return
        params, errors = self.form.to_request()
        self._show_refusal(errors)
        if params is not None:
            from distill_tui.screens.compare import CompareModal

            # the cells are not upscaled: their records must not say so
            params = GenParams.from_recipe(params.recipe().replace(upscaler=""))

            self.app.push_screen(CompareModal(params))


def copy_image_path(app: Any, path: str) -> None:
    """The image's path to the clipboard (OSC 52, through ssh and tmux with set-clipboard);
    over SSH an ``scp`` line that fetches it instead. A toast says what was copied."""
    from distill_tui.selfcmd import fetch_line

    text, over_ssh = fetch_line(path)
    app.copy_to_clipboard(text)
    tail = " (paste it in a terminal on your laptop)" if over_ssh else ""
    app.notify(
        f"Copied: {visible(text)}{tail}. A terminal without OSC 52 leaves the clipboard as it "
        "was; the path is on the caption.",
        title="Copied to the clipboard",
        timeout=8,
    )


def run_generation(
    app: DistillApp, params: GenParams, model_id: str | None = None, selection: Any = None
) -> None:
    """Start a generation as a worker of the App (never of a screen: it outlives them)."""
    app.run_worker(
        app.generation.generate(params, model_id, selection),
        group="engine",
        name="Generation",
        exit_on_error=False,
    )
