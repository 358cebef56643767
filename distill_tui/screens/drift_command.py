"""The command palette's "Check installed models for upstream changes" (``distill models check``
in the TUI): the Hub is asked on a thread, the answer is one notification. Never downloads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.app import DistillApp


def summary(report) -> tuple[str, str]:
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
            msg, severity = summary(report)
            app.call_from_thread(app.notify, msg, severity=severity, timeout=12)

        app.notify("Asking the Hub about the installed files…")
        app.run_worker(work, thread=True, group="drift", name="Check upstream", exit_on_error=False)

    yield SystemCommand(
        "Check installed models for upstream changes",
        "Ask the Hub whether the installed files changed (distill models check); never downloads",
        run,
    )
