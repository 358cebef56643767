"""Compare quants (``ctrl+t`` on the Generate screen, or the palette): the form's prompt and
seed through every chosen pair of installed quants, the contact sheet drawn inline and
redrawn as each cell finishes.

The run is a worker of the App (``group="engine"``), driven by a
:class:`~distill_tui.compare.CompareRun` on the App's engine client, so the images land in
the history (Gallery) like any generation. ``ctrl+x`` stops it (the running cell ends with
the engine child; the sheet keeps the finished cells); the modal does not close while it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from distill_tui.compare import Cell, CompareError, CompareRun, plan_compare
from distill_tui.formatting import human_size, shown_path
from distill_tui.generation import GenParams
from distill_tui.resources import style_path
from distill_tui.textsafe import visible
from distill_tui.widgets.footer import DistillFooter
from distill_tui.widgets.image_view import Frame, ImageView

if TYPE_CHECKING:
    from distill_tui.app import DistillApp

ENGINE_TEXT = {
    "starting": "starting the engine…",
    "loading": "loading the model…",
    "busy": "generating…",
}


class CompareModal(ModalScreen[Path | None]):
    """Choose quants, run the comparison, watch the sheet fill in. Dismisses with the
    sheet's path (None when nothing was written)."""

    CSS_PATH = [style_path("compare.tcss")]
    HELP_TITLE = "Compare quants"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+g",
            "start",
            "Start",
            id="compare.start",
            priority=True,
            tooltip="Run the prompt through every chosen pair of quants",
        ),
        Binding(
            "ctrl+x",
            "stop",
            "Stop",
            id="compare.stop",
            priority=True,
            tooltip="Stop: the running cell ends, the sheet keeps the finished cells",
        ),
        Binding("escape", "close", "Close", id="compare.close", tooltip="Back to Generate"),
    ]

    def __init__(self, params: GenParams, model_id: str | None = None) -> None:
        super().__init__(id="compare-modal")
        self.params = params
        self.model_id = model_id
        self.run: CompareRun | None = None
        self.error: str = ""
        self._edited = False  # the choice changed since the last run

    @property
    def distill(self) -> DistillApp:
        return self.app  # type: ignore[return-value]

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    # ---- layout ------------------------------------------------------------------------
    def _installed(self, component: str) -> list[Selection[str]]:
        core = self.distill.core
        model = core.resolver.model(self.model_id)
        out = []
        for q in model.section(component).quants or ():
            if core.inventory.is_present(q.file):
                text = Content(f"{visible(q.id):<7} ") + Content.styled(
                    human_size(q.size, 2), "dim"
                )
                out.append(Selection(text, q.id, True))
        return out

    def compose(self) -> ComposeResult:
        core = self.distill.core
        core.inventory.refresh()
        model = core.resolver.model(self.model_id)
        self.model_id = model.id
        with Vertical(id="compare-dialog"):
            yield Static(self._title(), id="compare-title")
            with Horizontal(id="compare-lists"):
                with Vertical(classes="compare-column"):
                    yield Static(
                        Content(f"Diffusion · {visible(model.diffusion.name or model.name)}"),
                        classes="compare-heading",
                    )
                    yield SelectionList[str](
                        *self._installed("diffusion"), id="compare-diffusion", compact=True
                    )
                with Vertical(classes="compare-column"):
                    yield Static(
                        Content(f"Text encoder · {visible(model.text_encoder_name)}"),
                        classes="compare-heading",
                    )
                    yield SelectionList[str](
                        *self._installed("textEncoder"), id="compare-text-encoder", compact=True
                    )
            yield Static("", id="compare-status")
            yield ImageView("The sheet appears here, cell by cell", id="compare-sheet")
        yield DistillFooter()

    def _title(self) -> Content:
        p = self.params
        prompt = visible(" ".join(p.prompt.split()))
        if len(prompt) > 60:
            prompt = prompt[:59] + "…"
        seed = "random seed" if p.seed < 0 else f"seed {p.seed}"
        return Content.assemble(
            ("Compare quants", "bold"),
            f"  “{prompt}”  ",
            (f"· {seed} · {p.width}x{p.height} · {p.steps} steps", "dim"),
        )

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)
        self.query_one("#compare-diffusion", SelectionList).focus()
        self._update_status()

    def on_resize(self) -> None:
        self.query_one(DistillFooter).compact = self.size.width < 100

    # ---- status ------------------------------------------------------------------------
    def _selected(self) -> tuple[list[str], list[str]]:
        """The chosen quant ids of each list, in the catalog's order."""

        def chosen(sl: SelectionList) -> list[str]:
            picked = set(sl.selected)
            values = [sl.get_option_at_index(i).value for i in range(sl.option_count)]
            return [str(v) for v in values if v in picked]

        return (
            chosen(self.query_one("#compare-diffusion", SelectionList)),
            chosen(self.query_one("#compare-text-encoder", SelectionList)),
        )

    def status_text(self) -> str:
        run = self.run
        if self.error:
            return self.error
        if run is None or (self._edited and not run.running):
            d, t = self._selected()
            n = len(d) * len(t)
            if not n:
                return "Choose at least one quant of each (space toggles) · ctrl+g starts"
            return f"{len(d)} × {len(t)} = {n} cell{'s' if n != 1 else ''} · ctrl+g starts"
        line = run.progress_line()
        if run.running:
            if run.current is not None:
                state = self.distill.generation.engine_state
                line += f" · {ENGINE_TEXT.get(state, '')}".rstrip(" ·")
                live = self.distill.display_settings.live_times
                if live and run.current.started is not None:
                    line += f" · {run.clock() - run.current.started:.1f} s"
            return line
        if run.sheet_written:
            line += f" · sheet: {self._shown_path(run.sheet_path)}"
        elif run.sheet_error or run.no_sheet:
            line += f" · {run.sheet_error or run.no_sheet}"
        return line + " · ctrl+g runs again · esc closes"

    def _shown_path(self, path: Path) -> str:
        return shown_path(path, name_only=not self.distill.display_settings.full_paths)

    def _update_status(self) -> None:
        try:
            status = self.query_one("#compare-status", Static)
        except NoMatches:  # the app is closing
            return
        status.update(Content(visible(self.status_text())))
        status.set_class(bool(self.error), "-error")

    def _tick(self) -> None:
        if self.running:
            self._update_status()

    @on(SelectionList.SelectedChanged)
    def _selection_changed(self) -> None:
        if not self.running:
            self.error = ""
            self._edited = True
            self._update_status()

    # ---- the run -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return not self.running
        if action == "stop":
            return self.running
        return True

    def action_start(self) -> None:
        if self.running:
            return
        app = self.distill
        self.error = ""
        if app.generation.running or getattr(app.engine, "busy", False):
            self.error = "A generation is running: stop it first (ctrl+x on Generate)"
            self._update_status()
            return
        d, t = self._selected()
        if not d or not t:
            self.error = "Choose at least one quant of each (space toggles)"
            self._update_status()
            return
        try:
            plan = plan_compare(
                app.core, self.params, model_id=self.model_id, diffusion=d, text_encoder=t
            )
        except CompareError as e:
            self.error = str(e)
            self._update_status()
            return
        self._edited = False
        self.params = plan.params  # the seed is fixed now: "run again" compares the same
        self.query_one("#compare-title", Static).update(self._title())
        self.run = CompareRun(
            plan, app.engine, output_dir=app.core.settings.outputs_dir, on_change=self._changed
        )
        self.query_one("#compare-sheet", ImageView).clear("Starting…")
        for sl in self.query(SelectionList):
            sl.disabled = True
        app.run_worker(
            self._drive(self.run), group="engine", name="Compare quants", exit_on_error=False
        )
        self._update_status()
        self.refresh_bindings()

    async def _drive(self, run: CompareRun) -> None:
        try:
            await run.run()
        except CompareError as e:
            self.error = str(e)
        finally:
            if self.is_mounted and self.is_attached:
                for sl in self.query(SelectionList):
                    sl.disabled = False
                self._update_status()
                self.refresh_bindings()
        if run.interrupted:
            return
        failed = [c for c in run.cells if c.state == "failed"]
        if failed:
            self.distill.report_failure(
                "Comparison", f"{len(failed)} cell(s) failed: {failed[0].label}: {failed[0].error}"
            )

    def _changed(self, kind: str, cell: Cell | None) -> None:
        run = self.run
        if not self.is_mounted or not self.is_attached or run is None:
            return
        if kind == "sheet" and run.sheet_written:
            done = sum(1 for c in run.cells if c.state == "done")
            caption = f"{self._shown_path(run.sheet_path)} · {done} of {len(run.cells)} cells"
            self.query_one("#compare-sheet", ImageView).set_frames(
                [Frame(path=str(run.sheet_path), caption=visible(caption))]
            )
        self._update_status()

    def action_stop(self) -> None:
        if self.run is not None and self.running:
            self.run.cancel()
            self.query_one("#compare-status", Static).update("stopping…")

    def action_close(self) -> None:
        if self.running:
            self.notify("A comparison is running: ctrl+x stops it", severity="warning")
            return
        run = self.run
        self.dismiss(run.sheet_path if run is not None and run.sheet_written else None)
