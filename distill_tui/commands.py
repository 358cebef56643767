"""The command palette (ctrl+p): every command distill adds, in one module, beside Textual's
own (theme, keys, screenshot, maximize).

``DistillApp.get_system_commands`` hands over to :func:`system_commands`, and Textual's
system-commands provider searches what it yields, in this order: where to go (the screens,
help), what the current screen can do (Generate: generate, compare, stop; Model Manager:
download a recommended set, the models folder), what works anywhere (image renderer, unload
the model, check for upstream changes), Textual's own, and Quit last. Ours win by title
(Textual's Quit and Help are replaced, never listed twice).

A command only calls a screen's action or an App service: the rules live there. This module
sits between the App and the screens (import-linter's layers): screens never import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from distill_tui.textsafe import escape_markup, visible

if TYPE_CHECKING:
    from distill_tui.app import DistillApp
    from distill_tui.drift import DriftReport
    from distill_tui.screens.generate import GenerateScreen
    from distill_tui.screens.models import ModelManagerScreen

#: Textual's commands that ours replace
REPLACED = frozenset({"Quit", "Help"})


def system_commands(
    app: DistillApp, screen: Screen, textual_own: Iterable[SystemCommand]
) -> Iterable[SystemCommand]:
    """Every palette command for ``screen``; ``textual_own``: ``App.get_system_commands``."""
    yield from navigation_commands(app)
    yield from screen_commands(screen)
    yield from app_commands(app)
    for command in textual_own:
        if command.title not in REPLACED:
            yield command
    yield SystemCommand("Quit", "Quit distill (ctrl+q)", app.action_quit)


# ---- where to go ---------------------------------------------------------------------


def navigation_commands(app: DistillApp) -> Iterable[SystemCommand]:
    yield SystemCommand("Generate", "Go to the Generate screen (F2)", app.action_show_generate)
    yield SystemCommand("Model Manager", "Download and choose quants (F3)", app.action_show_models)
    yield SystemCommand("Gallery", "Past generations (F4)", app.action_show_gallery)
    yield SystemCommand(
        "Settings",
        "Model Directory, output directory, renderer, theme, defaults, HF token (F5)",
        app.action_show_settings,
    )
    yield SystemCommand("Help", "Keys of the current screen (F1)", app.action_help)


# ---- what the current screen can do ---------------------------------------------------


def screen_commands(screen: Screen) -> Iterable[SystemCommand]:
    # imported here: a screen's module is loaded when the screen is first shown, not before
    from distill_tui.screens.generate import GenerateScreen

    if isinstance(screen, GenerateScreen):
        yield from generate_commands(screen)
        return
    from distill_tui.screens.models import ModelManagerScreen

    if isinstance(screen, ModelManagerScreen):
        yield from models_commands(screen)


def generate_commands(screen: GenerateScreen) -> Iterable[SystemCommand]:
    yield SystemCommand(
        "Generate", "Generate with the current form (ctrl+g)", screen.action_generate
    )
    yield SystemCommand(
        "Compare quants",
        "This prompt and seed through every installed quant pair: a contact sheet (ctrl+t)",
        screen.action_compare_quants,
    )
    if screen.service.running:
        yield SystemCommand(
            "Stop generation", "End the running generation (ctrl+x)", screen.action_stop
        )


def models_commands(screen: ModelManagerScreen) -> Iterable[SystemCommand]:
    core = screen.core
    for model in core.catalog.models:
        quants = [c.label.lower() for c in model.components if c.has_quants]
        files = [c.label for c in model.components if not c.has_quants]
        what = (
            f"The {' + '.join(quants)} quants the catalog recommends"
            + (f", and the {' + '.join(files)}" if files else "")
            if quants
            else f"Its {' + '.join(files)} file"
        )
        yield SystemCommand(  # the palette parses titles as markup
            f"Download recommended set for {escape_markup(model.name)}",
            what,
            partial(screen.download_set, model, recommended=True),
        )

    def show_models_dir() -> None:
        screen.notify(str(core.inventory.models_dir), title="Models folder", timeout=15)

    yield SystemCommand(
        "Open models folder path", "Show where model files are stored", show_models_dir
    )


# ---- what works anywhere --------------------------------------------------------------


def app_commands(app: DistillApp) -> Iterable[SystemCommand]:
    yield from renderer_commands(app)
    yield from engine_commands(app)
    yield from drift_commands(app)


def renderer_commands(app: DistillApp) -> Iterable[SystemCommand]:
    from distill_tui.widgets.image_view import RENDERERS, ImageView

    def set_renderer(name: str) -> Callable[[], None]:
        def apply() -> None:
            app.image_renderer = name
            try:
                app.core.settings.update(image_renderer=name)
            except Exception as e:  # a read-only config still switches for this session
                app.report_failure("Settings not saved", str(e))
            for view in app.screen.query(ImageView):
                view.refresh_renderer()
            app.notify(f"Image renderer: {name}")

        return apply

    current = getattr(app, "image_renderer", "auto")
    for name in RENDERERS:
        mark = " (current)" if name == current else ""
        yield SystemCommand(
            f"Image renderer: {name}{mark}",
            f"Draw images with the {name} renderer",
            set_renderer(name),
        )


def engine_commands(app: DistillApp) -> Iterable[SystemCommand]:
    def unload() -> None:
        async def _unload() -> None:
            if app.generation.running:
                app.notify("A generation is running; stop it first (ctrl+x)", severity="warning")
                return
            await app.generation.unload()
            app.notify("Model unloaded; memory freed")

        app.run_worker(_unload(), group="engine", name="Unload model", exit_on_error=False)

    yield SystemCommand(
        "Unload model (free memory)",
        "Free the loaded model's memory (the engine reloads it on next generate)",
        unload,
    )


def drift_summary(report: DriftReport) -> tuple[str, str]:
    """(message, severity) for a DriftReport."""
    if not report.files:
        return "Nothing to check: no installed files", "information"
    changed = [f for f in report.files if f.status in ("changed", "gone")]
    unknown = [f for f in report.files if f.status == "unknown"]
    if report.unreachable:
        why = unknown[0].reason or "no answer"
        return f"Cannot check for upstream changes: {why}", "warning"
    lines = [f"{f.key}: {f.words}" for f in changed + unknown]
    head = (
        f"{len(changed)} of {len(report.files)} installed file(s) changed upstream or are gone"
        if changed
        else f"All {len(report.files) - len(unknown)} checked file(s) are up to date"
    )
    return visible("\n".join([head, *lines[:6]]), multiline=True), (
        "warning" if changed or unknown else "information"
    )


def drift_commands(app: DistillApp) -> Iterable[SystemCommand]:
    """The check for upstream changes (``distill models check`` in the TUI): the Hub is
    asked on a thread, the answer is one notification. Never downloads."""

    def run() -> None:
        from distill_tui.hftoken import offline, offline_message

        if offline():
            app.notify(offline_message("Cannot check for upstream changes"), severity="warning")
            return

        def work() -> None:
            from distill_tui.drift import check_installed
            from distill_tui.hftoken import token_to_send

            c = app.core
            try:
                report = check_installed(c.catalog, c.inventory, None, token_to_send())
            except Exception as e:  # one line, never a dead UI
                app.call_from_thread(app.notify, visible(f"Check failed: {e}"), severity="error")
                return
            msg, severity = drift_summary(report)
            app.call_from_thread(app.notify, msg, severity=severity, timeout=12)

        app.notify("Asking the Hub about the installed files…")
        app.run_worker(work, thread=True, group="drift", name="Check upstream", exit_on_error=False)

    yield SystemCommand(
        "Check installed models for upstream changes",
        "Ask the Hub whether the installed files changed (distill models check); never downloads",
        run,
    )
