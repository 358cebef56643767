"""Gallery (F4): past generations newest first (the history records), the selected image
inline; ``enter`` views it large, ``r`` reuses its parameters in the Generate form,
``delete`` removes the record and its images after a confirmation — only images that are still
the generated ones (``outputs.deletable``); any other is kept and named. Files deleted outside
the app are listed as missing (a red ✗ in the list, "missing" in the pane), never as errors.

``u`` upscales the image shown with the active upscaler (``screens.upscaling``, through the
App's engine child): the result is a new entry (its Size is the result's, its caption says
"upscaled 4x from <source>"), the source's entry stays; ``ctrl+x`` stops it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from distill_tui.formatting import image_caption, one_line, recipe_label, record_time
from distill_tui.generation import GenParams
from distill_tui.outputs import History, HistoryRecord
from distill_tui.resources import style_path
from distill_tui.screens.base import DistillScreen
from distill_tui.screens.upscaling import UpscaleState, upscales
from distill_tui.textsafe import escape_markup, visible
from distill_tui.widgets.image_view import Frame, ImageView


class GalleryScreen(DistillScreen):
    """The history as a table plus the selected record's image."""

    HELP_TITLE = "Gallery"
    SUB_TITLE = "Gallery"
    CSS_PATH = [style_path("gallery.tcss")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - Textual's own
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "view_large", "View", id="gallery.view", tooltip="View the image large"),
        Binding(
            "r",
            "reuse",
            "Reuse",
            id="gallery.reuse",
            tooltip="Load its parameters into the Generate form",
        ),
        Binding(
            "delete",
            "delete_record",
            "Delete",
            id="gallery.delete",
            tooltip="Delete the image files and the record (asks first)",
        ),
        Binding(
            "u",
            "upscale",
            "Upscale",
            id="gallery.upscale",
            tooltip="Upscale the image shown with the active upscaler (4x with Real-ESRGAN "
            "x4plus; the Model Manager's Upscalers tab has them): a new entry, linked to it",
        ),
        Binding(
            "ctrl+x",
            "stop_upscale",
            "Stop upscale",
            id="gallery.stop_upscale",
            tooltip="Stop the running upscale (ends the engine process)",
        ),
        Binding(
            "[",
            "previous_image",
            "Prev",
            id="gallery.previous_image",
            show=False,
            tooltip="Previous image of the batch",
        ),
        Binding(
            "]",
            "next_image",
            "Next",
            id="gallery.next_image",
            show=False,
            tooltip="Next image of the batch",
        ),
        Binding(
            "ctrl+r",
            "reload",
            "Reload",
            id="gallery.reload",
            show=False,
            tooltip="Read the history file again",
        ),
        Binding(
            "c",
            "copy_image_path",
            "Copy path",
            id="gallery.copy_path",
            show=False,
            tooltip="Copy the image's path to the clipboard (over SSH: an scp line that fetches "
            "it, to paste on your laptop)",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[HistoryRecord] = []
        self._narrow: bool | None = None  # the column set the table has now
        self._note = ""  # what the last delete kept (shown in the status line)
        self._upscale_line = ""  # the running upscale (shown in the status line)
        self._select_next: str | None = None  # a record to select at the next reload

    @property
    def history(self) -> History:
        return History(self.core.paths.history_file)

    def compose_body(self) -> ComposeResult:
        with Vertical(id="gallery-body"):
            yield DataTable(id="gallery-table", cursor_type="row", zebra_stripes=True)
            yield ImageView("No generations yet — F2 to make one", id="gallery-image")
        yield Static("", id="gallery-status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self.distill.generation_signal.subscribe(self, self._on_generation, immediate=True)
        self._unsubscribe_upscales = upscales(self.distill).subscribe(self._on_upscale)
        self.reload()
        table.focus()

    def on_screen_resume(self) -> None:
        self.query_one(ImageView).refresh_renderer()
        self.reload()

    def on_resize(self) -> None:
        if self._narrow is not None and (self.app.size.width < 100) != self._narrow:
            self.reload()

    def on_unmount(self) -> None:
        self._unsubscribe_upscales()

    def _on_upscale(self, state: UpscaleState) -> None:
        """The App's upscale changed: its line in the status bar; a result is a new entry,
        selected when this screen asked for it."""
        if not self.is_mounted:
            return
        self._upscale_line = state.line() if state.running else ""
        if state.results and state.results[-1].history_id and not state.running:
            if state.origin == "gallery":
                self._select_next = state.results[-1].history_id
            self.reload()
        elif state.running and state.results and state.phase == "starting":
            self.reload()  # the previous image's entry is there
        else:
            self._show_status()
        self.refresh_bindings()

    def _on_generation(self, kind: str) -> None:
        if kind == "finished" and self.is_mounted:
            self.reload()

    # ---- data ------------------------------------------------------------------------
    def reload(self) -> None:
        table = self.query_one(DataTable)
        keep = self.selected.id if self.selected else None
        keep, self._select_next = self._select_next or keep, None
        history = self.history
        self.records = history.records()
        narrow = self.app.size.width < 100
        if narrow != self._narrow:
            # 80 columns: no Size column (it is under the image), a shorter prompt; the
            # Quants stay: the cells of a compare differ by them alone (issue 22.13)
            self._narrow = narrow
            table.clear(columns=True)
            for label in ("Time", "Prompt", "Model", "Quants", "Seed", "Size"):
                if not (narrow and label == "Size"):
                    table.add_column(label, key=label.lower())
        else:
            table.clear()
        for rec in self.records:
            missing = not any(Path(p).is_file() for p in rec.images)
            prompt = one_line(str(rec.params.get("prompt", "")), 22 if narrow else 48)
            # Text cells: a str cell would be parsed as markup; all of it comes from the file
            prompt_cell = Text.assemble(("✗ ", "bold red"), prompt) if missing else Text(prompt)
            up = _upscale_of(rec)
            if up is not None:  # an upscaled image: its scale first (80 columns: no Size)
                prompt_cell = Text.assemble((visible(f"{up.get('scale')}x "), "bold"), prompt_cell)
            cells: list[Text] = [
                Text(record_time(rec.created)),
                prompt_cell,
                Text(visible(rec.model_id)),
                Text(visible(f"{rec.diffusion_quant}/{rec.text_encoder_quant}")),
                Text(str(rec.seed)),
                Text(visible(_size_of(rec))),
            ]
            if narrow:
                del cells[5]
            table.add_row(*cells, key=rec.id)
        self._warnings = list(history.warnings[:2])
        self._show_status()
        if keep:
            for i, rec in enumerate(self.records):
                if rec.id == keep:
                    table.move_cursor(row=i)
                    break
        self._show_selected()

    def _show_status(self) -> None:
        count = len(self.records)
        status = f"{count} generation{'s' if count != 1 else ''}"
        warnings = getattr(self, "_warnings", [])
        if warnings:
            status += " · " + "; ".join(warnings)
        if self._note:  # what the last delete kept
            status += " · " + self._note
        if self._upscale_line:  # the running upscale: phase and tiles
            status += " · " + self._upscale_line
        self.query_one("#gallery-status", Static).update(Content(visible(status)))

    @property
    def selected(self) -> HistoryRecord | None:
        if not self.is_mounted or not self.records:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.records[row] if 0 <= row < len(self.records) else None

    def _frames(self, rec: HistoryRecord) -> list[Frame]:
        w, h = rec.params.get("width", 0), rec.params.get("height", 0)
        up = _upscale_of(rec)
        if up is not None:  # the result's size; the params keep the source's
            w, h = up.get("width", w), up.get("height", h)
        recipe = recipe_label(rec.model_id, rec.diffusion_quant, rec.text_encoder_quant)
        frames = []
        for i, p in enumerate(rec.images):
            shown = self.shown_path(p)
            caption = image_caption(shown, rec.seed + i, w, h, rec.timings)
            caption += f"\n{escape_markup(recipe)}"
            if up is not None:
                caption += f"\n{escape_markup(self._upscale_caption(up))}"
            if not Path(p).is_file():
                caption = "[b]missing[/b] (deleted outside distill)\n" + caption
            frames.append(Frame(path=p, caption=caption, label=shown))
        return frames

    def _show_selected(self) -> None:
        view = self.query_one(ImageView)
        rec = self.selected
        if rec is None:
            view.clear("No generations yet — F2 to make one")
            return
        view.set_frames(self._frames(rec))

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    @on(DataTable.RowSelected)
    def _row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_view_large()

    # ---- actions ---------------------------------------------------------------------
    def _upscale_caption(self, up: dict) -> str:  # type: ignore[type-arg]
        """ "upscaled 4x from <source> · <upscaler>" (the source: its entry's time when it is
        in the history, else its file)."""
        source = str(up.get("source") or "")
        name = Path(source).name if source else "an image"
        linked = next((r for r in self.records if r.id == up.get("source_record")), None)
        where = f" (the entry of {record_time(linked.created)})" if linked is not None else ""
        scale = up.get("scale")
        return visible(f"upscaled {scale}x from {name}{where} · {up.get('upscaler') or 'ESRGAN'}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("view_large", "reuse", "delete_record", "upscale"):
            return True if self.selected is not None else None
        if action == "stop_upscale":
            return upscales(self.distill).running
        return True

    def action_upscale(self) -> None:
        """u: the image shown (a batch's current one) through the active upscaler."""
        rec = self.selected
        frame = self.query_one(ImageView).current
        if rec is None or frame is None or not frame.path:
            return
        if not Path(frame.path).is_file():
            self.notify(
                "That image is missing (deleted outside distill): nothing to upscale",
                title="Upscale",
                severity="warning",
            )
            return
        upscales(self.distill).start([frame.path], origin="gallery")
        self.refresh_bindings()

    def action_stop_upscale(self) -> None:
        job = upscales(self.distill)
        if job.running:
            self.app.run_worker(job.cancel(), group="upscale-stop", exit_on_error=False)

    def action_view_large(self) -> None:
        rec = self.selected
        if rec is None:
            return
        from distill_tui.screens.image_modal import ImageModal

        view = self.query_one(ImageView)
        self.app.push_screen(ImageModal(self._frames(rec), view.index))

    async def action_reuse(self) -> None:
        rec = self.selected
        if rec is None:
            return
        from distill_tui.reuse import plan_reuse

        params = GenParams.from_record_params(rec.params, seed=rec.seed)
        plan = plan_reuse(self.app.core, rec)  # type: ignore[attr-defined]
        await self.app.switch_mode("generate")
        screen = self.app.screen
        apply = getattr(screen, "apply_params", None)
        if callable(apply):
            if plan.problem:
                apply(params)
            else:
                apply(params, plan.model_id, plan.selection)
        if plan.problem:
            self.app.notify(
                f"Parameters loaded; the image's recipe cannot be restored: {plan.problem}",
                title="Gallery",
                severity="warning",
            )
        elif plan.missing:
            self._offer_download(plan)
        else:
            self.app.notify(
                f"Parameters and recipe ({plan.quants}) loaded; ctrl+g generates with them",
                title="Gallery",
            )

    def _offer_download(self, plan) -> None:  # type: ignore[no-untyped-def]
        """The recipe's quants are not all downloaded: offer to get them now."""
        from distill_tui.screens.confirm import ConfirmModal

        body = (
            f"This image was made with {plan.quants}. Not downloaded: "
            f"{plan.describe_missing()}.\n\nDownload now? (the form keeps the recipe; "
            "ctrl+g works once the files are here)"
        )

        def done(yes: bool | None) -> None:
            if not yes:
                return
            app = self.distill
            items = [(plan.model_id, m.component, m.quant_id) for m in plan.missing]

            async def queue() -> None:
                failed, _keys = await app.downloads.queue_plan(items)
                if failed:  # each failed file is reported by the App (why, in its words)
                    app.notify(
                        f"Nothing of the recipe was downloaded: {len(failed)} of {len(items)} "
                        "files cannot be fetched (F3 shows why).",
                        title="Download not started",
                        severity="warning",
                    )
                else:
                    app.notify("Downloading the recipe's files (F3 shows progress)")

            app.run_worker(queue(), group="downloads", exit_on_error=False)

        self.app.push_screen(
            ConfirmModal("Download the recipe's files?", body, yes="Download", no="Not now"),
            done,
        )

    def action_delete_record(self) -> None:
        rec = self.selected
        if rec is None:
            return
        from distill_tui.screens.confirm import ConfirmModal

        n = len(rec.images)
        body = (
            f"{one_line(str(rec.params.get('prompt', '')), 120)}\n\n"
            f"Deletes {n} image file{'s' if n != 1 else ''} and the record."
        )

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(rec)

        self.app.push_screen(ConfirmModal("Delete this generation?", body, yes="Delete"), done)

    def _delete(self, rec: HistoryRecord) -> None:
        """Delete the record and the images that are still ours (the history's rule: in the
        outputs folder or the exact ``-o`` path, holding the bytes recorded); each image
        kept is named in the status line and a notification."""
        history = self.history
        try:
            ok = history.delete(rec.id, outputs_dir=self.core.settings.outputs_dir)
        except OSError as e:
            self.distill.report_failure("Delete failed", str(e))
            return
        if not ok:
            self.notify("That record was already gone", severity="warning")
        self._note = ""
        if history.kept:
            n = len(history.kept)
            self._note = f"kept {n} file{'s' if n != 1 else ''}: " + "; ".join(
                why for _path, why in history.kept[:3]
            )
            self.notify(
                "The record is deleted; "
                + self._note
                + " (a file that is not the generated image any more is never deleted)",
                title="Gallery",
                severity="warning",
            )
        self.reload()

    def action_previous_image(self) -> None:
        self.query_one(ImageView).action_previous_image()

    def action_next_image(self) -> None:
        self.query_one(ImageView).action_next_image()

    def action_copy_image_path(self) -> None:
        from distill_tui.screens.generate import copy_image_path

        frame = self.query_one("#gallery-image", ImageView).current
        if frame is None or not frame.path:
            self.notify("No image selected", title="Copy path", severity="warning")
            return
        copy_image_path(self.app, frame.path)

    def action_reload(self) -> None:
        self.reload()


def _upscale_of(rec: HistoryRecord) -> dict | None:  # type: ignore[type-arg]
    """The record's ``upscale`` object (distill_tui.upscale) when it is an upscaled image."""
    up = rec.params.get("upscale")
    return up if isinstance(up, dict) else None


def _size_of(rec: HistoryRecord) -> str:
    """The Size column: the image's (an upscaled one: the result's and its scale)."""
    up = _upscale_of(rec)
    if up is not None:
        return f"{up.get('width')}x{up.get('height')} ({up.get('scale')}x)"
    return f"{rec.params.get('width')}x{rec.params.get('height')}"
