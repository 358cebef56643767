"""Settings (F5): where models and images live, how images are drawn, download and generation
defaults, and where the Hugging Face token comes from (never the token itself).

Every change is saved at once, like the quant radios in the Model Manager (``SettingsStore``
saves merge field by field with what other distill processes wrote). A directory is applied
with enter: it is checked first (absolute, exists or can be created, writable) and a bad one
is refused with the reason under the field. A new Model Directory takes effect everywhere at
once: the one Inventory follows the setting (``context.follow_models_dir``), so the Model
Manager, the resolver and the download service all see the new directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Label, Select, Static

from distill_tui.bounds import text_problem
from distill_tui.dirs import (
    DirCheck,
    check_dir,
    downloaded_files,
    move_models,
    parse_dir,
    same_filesystem,
)
from distill_tui.formatting import home_path, human_size
from distill_tui.generation import SAMPLERS, check_int, check_size
from distill_tui.guide import token_status
from distill_tui.resources import style_path
from distill_tui.screens.base import DistillScreen
from distill_tui.selfcmd import distill_command
from distill_tui.settings import IMAGE_RENDERERS
from distill_tui.textsafe import visible
from distill_tui.widgets.empty_state import busy_keys

log = logging.getLogger(__name__)


def ok_line(text: str) -> Content:
    return Content.assemble(Content.styled("✓ ", "$text-success"), Content(visible(text)))


def error_line(text: str) -> Content:
    return Content.styled("✗ " + visible(text), "$text-error")


def muted(text: str) -> Content:
    return Content.styled(visible(text), "$text-muted")


class SettingsScreen(DistillScreen):
    """One form; each field saves itself (directories on enter, after a check)."""

    COMPACT_FOOTER = True

    HELP_TITLE = "Settings"
    SUB_TITLE = "Settings"
    CSS_PATH = [style_path("settings.tcss")]
    AUTO_FOCUS = "#models-dir"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "app.go_back",
            "Back",  # in the footer: the only way back besides an F-key (issue 22.9)
            id="settings.back",
            tooltip="Back to the screen you came from",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="settings-screen")
        self._token_line: Content | None = None
        self._token_hint: Content | None = None
        #: (models dir, outputs dir) the status lines describe
        self._dirs_shown: tuple[Path, Path] | None = None

    # ---- layout ----------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        store = self.core.settings
        s = store.settings
        g = s.generation
        with VerticalScroll(id="settings-form"):
            yield Static(Content.from_markup("[b]Storage[/b]"), classes="section-title")
            with Horizontal(classes="row"):
                yield Label("Model dir", classes="field-label")
                yield Input(
                    home_path(store.models_dir),
                    id="models-dir",
                    compact=True,
                    placeholder="/big/volume/models",
                )
            yield Static("", id="models-dir-status", classes="status")
            with Horizontal(classes="row"):
                yield Label("Output dir", classes="field-label")
                yield Input(
                    home_path(store.outputs_dir),
                    id="output-dir",
                    compact=True,
                    placeholder="/where/images/go",
                )
            yield Static("", id="output-dir-status", classes="status")

            yield Static(Content.from_markup("[b]Downloads[/b]"), classes="section-title")
            with Horizontal(classes="row"):
                yield Label("Connections", classes="field-label")
                yield Input(
                    str(s.connections_per_file), id="connections", compact=True, classes="num"
                )
                yield Static("per file, 1–32", classes="hint")
            yield Static("", id="connections-status", classes="status")

            yield Static(Content.from_markup("[b]Hugging Face token[/b]"), classes="section-title")
            yield Static("", id="token-status", classes="status")
            yield Static("", id="token-hint", classes="status")

            yield Static(Content.from_markup("[b]Display[/b]"), classes="section-title")
            with Horizontal(classes="row"):
                yield Label("Images", classes="field-label")
                yield Select(
                    [(r, r) for r in IMAGE_RENDERERS],
                    value=self.distill.image_renderer
                    if self.distill.image_renderer in IMAGE_RENDERERS
                    else "auto",
                    allow_blank=False,
                    id="renderer",
                    compact=True,
                )
            yield Static(self._display_facts(), id="display-facts", classes="status")
            with Horizontal(classes="row"):
                yield Label("Theme", classes="field-label")
                themes = sorted(self.app.available_themes)
                yield Select(
                    [(t, t) for t in themes],
                    value=self.app.theme if self.app.theme in themes else themes[0],
                    allow_blank=False,
                    id="theme",
                    compact=True,
                )

            yield Static(
                Content.from_markup(
                    "[b]Generation defaults[/b] [$text-muted](blank: the model's own)[/]"
                ),
                classes="section-title",
            )
            with Horizontal(classes="row"):
                yield Label("Size", classes="field-label")
                yield Input(_blank(g.width), id="gen-width", compact=True, classes="num")
                yield Label("x", classes="times")
                yield Input(_blank(g.height), id="gen-height", compact=True, classes="num")
                yield Label("Steps", classes="inline-label")
                yield Input(_blank(g.steps), id="gen-steps", compact=True, classes="num")
            with Horizontal(classes="row"):
                yield Label("Sampler", classes="field-label")
                yield Select(
                    [(x, x) for x in SAMPLERS],
                    value=g.sampler if g.sampler in SAMPLERS else Select.NULL,
                    prompt="the model's own",
                    id="gen-sampler",
                    compact=True,
                )
            yield Static(
                muted(
                    "Used by new Generate forms (next start) and "
                    f"`{distill_command()} generate`; the open Generate form keeps what it shows."
                ),
                id="gen-status",
                classes="status",
            )

    # ---- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        self.distill.settings_signal.subscribe(self, self._on_settings_changed, immediate=True)
        self.set_interval(2.0, self._sync_token)
        self._sync_dirs()
        self._sync_token()

    def on_screen_resume(self) -> None:
        self._sync_dirs()
        self._sync_token()

    def _on_settings_changed(self, _settings: Any) -> None:
        # another process (or this one) saved: fields without focus show the saved values
        if self.is_attached and self.is_mounted:
            self.call_later(self._follow_settings)

    def _follow_settings(self) -> None:
        store = self.core.settings
        for wid, value in (
            ("#models-dir", home_path(store.models_dir)),
            ("#output-dir", home_path(store.outputs_dir)),
        ):
            inp = self.query_one(wid, Input)
            if not inp.has_focus and inp.value != value:
                self._show_value(wid, value)
        if self._dirs_shown != (store.models_dir, store.outputs_dir):
            self._sync_dirs()  # changed elsewhere: what this screen said no longer holds

    # ---- directories -----------------------------------------------------------------
    def _dir_status(self, check: DirCheck, *, extra: str = "") -> Content:
        if not check.ok:
            return error_line(check.error or "not usable")
        free = f"{human_size(check.free)} free" if check.free is not None else "free space ?"
        note = " (created on first use)" if check.path and not check.path.exists() else ""
        return ok_line(f"{free}{note}{extra}")

    def _sync_dirs(self) -> None:
        store = self.core.settings
        self._dirs_shown = (store.models_dir, store.outputs_dir)
        models = check_dir(str(store.models_dir), create=False)
        files = downloaded_files(self.core.inventory)
        here = (
            f" · {len(files)} downloaded file{'s' if len(files) != 1 else ''} here "
            f"({human_size(sum(sz for _f, sz in files))})"
            if files
            else " · no models here yet"
        )
        running = " · enter applies, not while downloading"
        self._set_status("#models-dir-status", self._dir_status(models, extra=here + running))
        outputs = check_dir(str(store.outputs_dir), create=False)
        self._set_status("#output-dir-status", self._dir_status(outputs, extra=" · enter applies"))

    def _set_status(self, wid: str, content: Content) -> None:
        status = self.query_one(wid, Static)
        status.update(content)
        status.display = bool(content.plain)

    @on(Input.Changed, "#models-dir, #output-dir")
    def _dir_typed(self, event: Input.Changed) -> None:
        """While typing: only the cheap checks (no directory is created before enter)."""
        wid = f"#{event.input.id}-status"
        store = self.core.settings
        current = store.models_dir if event.input.id == "models-dir" else store.outputs_dir
        path, error = parse_dir(event.value)
        if error:
            self._set_status(wid, error_line(error))
        elif path == current:
            self._sync_dirs()
        else:
            self._set_status(wid, muted("enter to check and apply · esc back"))

    @on(Input.Submitted, "#output-dir")
    async def _output_dir_submitted(self, event: Input.Submitted) -> None:
        store = self.core.settings
        path, error = parse_dir(event.value)
        if error:
            self._set_status("#output-dir-status", error_line(error))
            return
        if path == store.outputs_dir:
            self._sync_dirs()
            return
        check = await asyncio.to_thread(check_dir, event.value)
        if not check.ok:
            self._set_status("#output-dir-status", error_line(check.error or "not usable"))
            return
        if not store.update(output_dir=_stored(event.value, check)):
            self._set_status("#output-dir-status", error_line(self._not_saved()))
            return
        self._dirs_shown = (store.models_dir, store.outputs_dir)
        self._set_status(
            "#output-dir-status",
            self._dir_status(check, extra=" · saved: new images go here"),
        )

    @on(Input.Submitted, "#models-dir")
    def _models_dir_submitted(self, event: Input.Submitted) -> None:
        self.run_worker(
            self.apply_models_dir(event.value),
            group="settings-models-dir",
            exclusive=True,
            exit_on_error=False,
        )

    async def apply_models_dir(self, text: str) -> None:
        """Check ``text``; when the old directory has files ask (move / leave / cancel); then
        save, and everything that holds the inventory follows."""
        wid = "#models-dir-status"
        core = self.core
        old = core.inventory.models_dir
        path, error = parse_dir(text)
        if error:
            self._set_status(wid, error_line(error))
            return
        if path == old:
            self._sync_dirs()
            return
        if self._downloads_running(wid) or await self._downloads_elsewhere(wid, old):
            return
        check = await asyncio.to_thread(check_dir, text)
        if not check.ok or check.path is None:
            self._set_status(wid, error_line(check.error or "not usable"))
            return
        new = check.path
        files = await asyncio.to_thread(downloaded_files, core.inventory)
        choice = "leave"
        if files:
            from distill_tui.screens.models_dir_modal import ModelsDirModal

            same = same_filesystem(old, new)
            choice = await self.app.push_screen_wait(
                ModelsDirModal(home_path(old), home_path(new), files, same)  # type: ignore[arg-type]
            )
            if choice is None:
                self._show_value("#models-dir", home_path(old))
                self._set_status(wid, muted("not changed: the Model Directory stays where it was"))
                return
            # one may have started meanwhile, here or in another process
            if self._downloads_running(wid) or await self._downloads_elsewhere(wid, old):
                return
        moved = ""
        if choice == "move":
            report = await asyncio.to_thread(move_models, core.inventory, new)
            moved = f" · moved {len(report.moved)} file(s), {human_size(report.bytes_moved)}"
            if report.skipped:
                first, why = report.skipped[0]
                moved += f"; {len(report.skipped)} left in the old directory ({first}: {why})"
        if not core.settings.update(model_base_path=_stored(text, check)):
            self._set_status(wid, error_line(self._not_saved()))
            return
        # context.follow_models_dir has rebound the inventory (a settings listener)
        self._dirs_shown = (core.settings.models_dir, core.settings.outputs_dir)
        self._show_value("#models-dir", home_path(core.settings.models_dir))
        there = await asyncio.to_thread(downloaded_files, core.inventory)
        found = self._unknown_files_at(new) if not there else 0
        tail = moved
        if there:
            tail += f" · {len(there)} downloaded file(s) here"
        elif found:
            tail += f" · {found} model file(s) found here: d on their rows verifies them"
        else:
            tail += " · empty: F3 to download"
        self._set_status(wid, self._dir_status(check, extra=f" · saved{tail}"))
        self.app.notify(
            f"Model Directory: {home_path(new)}{moved}", title="Settings saved", timeout=8
        )

    def _show_value(self, wid: str, value: str) -> None:
        """Put a value in a directory field without it counting as typing."""
        inp = self.query_one(wid, Input)
        with inp.prevent(Input.Changed):
            inp.value = value

    def _unknown_files_at(self, new: Path) -> int:
        """Catalog files already at their path in the new directory, not in its inventory
        (the download service verifies and adopts them on d)."""
        names = {f.file for m in self.core.catalog.models for _c, _q, f in m.files()}
        return sum(1 for n in names if (new / n).is_file())

    def _downloads_running(self, wid: str) -> bool:
        running = busy_keys(self.distill)
        if running:
            n = len(running)
            self._set_status(
                wid,
                error_line(
                    f"{n} download{'s' if n != 1 else ''} running: the Model Directory can "
                    "change once they are finished or cancelled (F3, x)"
                ),
            )
        return bool(running)

    async def _downloads_elsewhere(self, wid: str, models_dir: Path) -> bool:
        """Another distill process (a detached download, a handed-off one, the CLI in another
        window) holds a download lock in ``models_dir``: moving or leaving the directory would
        strand its file there, so the change waits for it, naming it."""
        import os

        from distill_tui.downloads.activity import scan

        try:
            acts = await asyncio.to_thread(scan, models_dir)
        except OSError as e:  # cannot look: say so rather than move blindly
            self._set_status(wid, error_line(f"cannot check {home_path(models_dir)}: {e}"))
            return True
        others = [a for a in acts if a.running and a.pid != os.getpid()]
        if not others:
            return False
        first = others[0]
        who = f"pid {first.pid}" if first.pid and first.pid > 0 else "another process"
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        self._set_status(
            wid,
            error_line(
                f"another distill process ({who}) is downloading {first.key}{more} into the "
                "Model Directory: it can change once that download has finished or is stopped "
                f"({distill_command()} models status; kill {first.pid if first.pid and first.pid > 0 else 'it'}"
                " keeps the partial)"
            ),
        )
        return True

    def _not_saved(self) -> str:
        reason = self.core.settings.read_only_reason or "settings.json not written"
        return f"not saved: {reason}"

    # ---- display ---------------------------------------------------------------------
    @on(Select.Changed, "#renderer")
    def _renderer_chosen(self, event: Select.Changed) -> None:
        name = str(event.value)
        if event.value is Select.NULL or name == self.distill.image_renderer:
            return
        self.distill.image_renderer = name
        self.query_one("#display-facts", Static).update(self._display_facts())
        if name in ("sixel", "kitty") and os.environ.get("TMUX"):
            self.notify(
                f"Inside tmux, {name} images stay blank unless tmux passes them through "
                "(set -g allow-passthrough on); auto or halfcell always draw.",
                title="Images",
                severity="warning",
                timeout=10,
            )
        if not self.core.settings.update(image_renderer=name):
            self.notify(self._not_saved(), severity="warning")

    def _display_facts(self) -> Content:
        """Colour depth and what draws images, each with why (as ``distill doctor``)."""
        from distill_tui.image_probe import display_rows

        rows = display_rows(self.distill.image_renderer)
        text = "\n".join(f"{k}: {v}" for k, v in rows)
        return Content.styled(visible(text, multiline=True), "$text-muted")

    @on(Select.Changed, "#theme")
    def _theme_chosen(self, event: Select.Changed) -> None:
        name = str(event.value)
        if event.value is Select.NULL or name == self.app.theme:
            return
        self.app.theme = name
        if not self.core.settings.update(theme=name):
            self.notify(self._not_saved(), severity="warning")

    # ---- downloads -------------------------------------------------------------------
    @on(Input.Changed, "#connections")
    def _connections_typed(self, event: Input.Changed) -> None:
        wid = "#connections-status"
        problem = check_int(event.value, 1, 32)
        if problem:
            self._set_status(wid, error_line(f"connections per file: {problem}"))
            return
        n = int(event.value.strip())
        store = self.core.settings
        if n != store.settings.connections_per_file and not store.update(connections_per_file=n):
            self._set_status(wid, error_line(self._not_saved()))
            return
        manager = self.distill.downloads_started
        if manager is not None:  # the next file this TUI downloads uses it
            manager.connections = n
        self._set_status(wid, muted(""))

    # ---- generation defaults ---------------------------------------------------------
    @on(Input.Changed, "#gen-width, #gen-height, #gen-steps")
    def _generation_typed(self, event: Input.Changed) -> None:
        field = {"gen-width": "width", "gen-height": "height", "gen-steps": "steps"}[
            event.input.id or ""
        ]
        text = event.value.strip()
        if text:
            check = text_problem("steps", text) if field == "steps" else check_size(text)
            if check:
                self._set_status("#gen-status", error_line(f"{field.capitalize()}: {check}"))
                return
        self._save_generation(field, int(text) if text else None)

    @on(Select.Changed, "#gen-sampler")
    def _sampler_chosen(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else str(event.value)
        self._save_generation("sampler", value)

    def _save_generation(self, field: str, value: Any) -> None:
        store = self.core.settings
        g = store.settings.generation
        if getattr(g, field) == value:
            self._set_status(
                "#gen-status",
                muted(
                    "Used by new Generate forms (next start) and `distill generate`; the "
                    "open Generate form keeps what it shows."
                ),
            )
            return
        data = g.model_dump()
        data[field] = value
        if not store.update(generation=data):
            self._set_status("#gen-status", error_line(self._not_saved()))
            return
        shown = "the model's own" if value is None else str(value)
        self._set_status("#gen-status", ok_line(f"saved: {field} {shown}"))

    # ---- token -----------------------------------------------------------------------
    def _sync_token(self) -> None:
        """Present or not, and where from; re-read every 2 s (`hf auth login` elsewhere)."""
        if not self.is_attached:
            return
        st = token_status()
        file = home_path(st.file)
        named = f", the file {st.file_from_env} names" if st.file_from_env else ""
        if st.present and st.kind == "env":
            status = ok_line(
                f"present — from the {st.where} environment variable; it wins over the token file"
            )
        elif st.present:
            status = ok_line(f"present — from the token file {file}{named}")
        else:
            status = Content.assemble(
                Content.styled("✗ ", "$text-warning"),
                Content("none — needed only for gated repositories (none in the default set)"),
            )
        if status != self._token_line or not self._token_line:
            self._token_line = status
            self._set_status("#token-status", status)
        hint = Content.assemble(
            "To log in: run ",
            Content.styled("hf auth login", "bold"),
            Content(
                visible(
                    f" in another shell (it writes {file}{named}). distill re-reads that file "
                    "before each download: a failed gated download then works with r, no "
                    "restart. A new HF_TOKEN environment variable is seen only after a restart "
                    "of distill. Gated repositories also need their license accepted on "
                    "huggingface.co."
                )
            ),
        )
        if hint != self._token_hint:
            self._token_hint = hint
            self._set_status("#token-hint", hint)


def _blank(value: int | None) -> str:
    return "" if value is None else str(value)


def _stored(text: str, check: DirCheck) -> str:
    """What goes into settings.json: ``~/…`` as typed (portable), else the absolute path."""
    raw = text.strip()
    if raw.startswith("~"):
        return raw.rstrip("/") or raw
    return str(check.path)
