"""The Textual app: wiring, App-owned services and global keys. Screens own their layouts.

Long work lives here, not in screens: the DownloadManager and the EngineClient belong to the
App, so leaving a screen, switching tabs or collapsing a card never stops a download or a
generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from distill_tui.context import CoreContext
from distill_tui.display import LIVE, DisplaySettings
from distill_tui.resources import style_path
from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.downloads.events import DownloadEvent
    from distill_tui.downloads.finish import FinishWatch
    from distill_tui.engine.client import EngineClient
    from distill_tui.generation import ChangeKind, GenerationService
    from distill_tui.protocols import DownloadService, GenerationControl, SettingsFeed
    from distill_tui.settings import Settings

log = logging.getLogger(__name__)


def _generate_screen() -> Screen:
    from distill_tui.screens.generate import GenerateScreen

    return GenerateScreen()


def _models_screen() -> Screen:
    from distill_tui.screens.models import ModelManagerScreen

    return ModelManagerScreen()


def _gallery_screen() -> Screen:
    from distill_tui.screens.gallery import GalleryScreen

    return GalleryScreen()


def _settings_screen() -> Screen:
    from distill_tui.screens.settings import SettingsScreen

    return SettingsScreen()


class DistillApp(App[int]):
    """distill: generate (F2), manage models (F3), browse the gallery (F4).

    The App subscribes once to each service it owns and republishes what they say as Textual
    Signals: ``download_signal`` (every :class:`~distill_tui.downloads.events.DownloadEvent`),
    ``generation_signal`` (a :data:`~distill_tui.generation.ChangeKind`), ``settings_signal``
    (the new :class:`~distill_tui.settings.Settings`). Screens and widgets subscribe with
    ``signal.subscribe(self, callback)``; Textual drops a subscription when its node goes.
    Failures of the App's work (a download, a generation) are reported here, whatever screen
    is showing.
    """

    TITLE = "distill"
    CSS_PATH = [style_path("app.tcss")]
    MODES: ClassVar[dict[str, Any]] = {
        "generate": _generate_screen,
        "models": _models_screen,
        "gallery": _gallery_screen,
        "settings": _settings_screen,
    }
    DEFAULT_MODE = "generate"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f1", "help", "Help", id="app.help", tooltip="Keys of the current screen", priority=True
        ),
        Binding(
            "f2",
            "show_generate",
            "Generate",
            id="app.generate",
            tooltip="Prompt and generate images",
            priority=True,
        ),
        Binding(
            "f3",
            "show_models",
            "Models",
            id="app.models",
            tooltip="Download and choose model quants",
            priority=True,
        ),
        Binding(
            "f4",
            "show_gallery",
            "Gallery",
            id="app.gallery",
            tooltip="Past generations",
            priority=True,
        ),
        Binding(
            "f5",
            "show_settings",
            "Settings",
            id="app.settings",
            tooltip="Model Directory, output directory, renderer, theme, defaults, HF token",
            show=False,  # 80 columns: the footer has no room; F1 and the palette list it
            priority=True,
        ),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Quit distill", priority=True),
        # Tab moves the focus here, at once, as the App reads it: a Tab left to the focused
        # field was queued there with the keys behind it, which then landed in that field
        # (a burst: fast typing over a slow link, issue 22.9). A widget that takes Tab itself
        # (a TextArea that indents) still gets it (check_action).
        Binding("tab", "focus_next", "Next field", show=False, priority=True, id="app.tab"),
        Binding(
            "shift+tab",
            "focus_previous",
            "Previous field",
            show=False,
            priority=True,
            id="app.shift_tab",
        ),
    ]

    def __init__(
        self,
        core: CoreContext | None = None,
        *,
        image_renderer: str | None = None,
        engine_factory: Callable[[DistillApp], EngineClient] | None = None,
        downloads_factory: Callable[[DistillApp], DownloadService] | None = None,
        display_settings: DisplaySettings | None = None,
        machine: Any = None,
    ) -> None:
        super().__init__()
        self.core = core or CoreContext.build()
        self.image_renderer = image_renderer or self.core.settings.settings.image_renderer
        #: cursors, wall-clock values, paths: snapshot tests pass display.STILL
        self.display_settings = display_settings or LIVE
        self._engine_factory = engine_factory
        self._downloads_factory = downloads_factory
        self._downloads: DownloadService | None = None
        self._modes_seen: set[str] = set()
        self._engine: EngineClient | None = None
        self._generation: GenerationService | None = None
        self.download_signal: Signal[DownloadEvent] = Signal(self, "downloads")
        self.generation_signal: Signal[ChangeKind] = Signal(self, "generation")
        self.settings_signal: Signal[Settings] = Signal(self, "settings")
        #: the download batch's bell and terminal notification (download_notice.py)
        self.download_watch: FinishWatch | None = None
        self._download_states: dict[str, str] = {}  #: key -> the last state the bridge saw
        self._unsubscribe_settings: Callable[[], None] | None = None
        #: devices.Machine once known (detected in a thread at mount unless given); screens
        #: subscribe to ``machine_changed`` for fit marks
        self.machine: Any = machine
        self.machine_changed: Signal[Any] = Signal(self, "machine-changed")
        #: the mode shown before the current one (Esc in the Model Manager goes back to it)
        self.previous_mode: str | None = None
        #: a model whose card the Model Manager shows next (``show_models(model_id)``)
        self._models_target: str | None = None
        #: the line the one hand-off gave (a second hang-up, a lost terminal after it, or
        #: "keep downloading" twice never start a second detached downloader)
        self._handoff_message: str | None = None
        self._handed_off = False
        self._exit_started = False  #: a signal or the terminal's loss is ending the App
        self._watchdog_armed = False
        self._handoff_lock = threading.Lock()
        self._app_loop: asyncio.AbstractEventLoop | None = None  #: for the driver's threads
        #: set by the driver on close: the terminal is gone or did not take the last bytes
        self.terminal_unusable = False
        theme = self.core.settings.settings.theme
        if theme and theme in self.available_themes:
            self.theme = theme

    # ---- services --------------------------------------------------------------------
    @property
    def downloads(self) -> DownloadService:
        """The download queue, made on first use (httpx is not imported before)."""
        if self._downloads is None:
            if self._downloads_factory is not None:
                manager = self._downloads_factory(self)
            else:
                from distill_tui.downloads.service import DownloadManager

                c = self.core
                manager = DownloadManager(c.catalog, c.settings, c.inventory)
            from distill_tui.downloads.finish import FinishWatch

            self._downloads = manager
            self.download_watch = FinishWatch()
            manager.subscribe(self._on_download_event)  # the App's one subscription
        return self._downloads

    @property
    def downloads_started(self) -> DownloadService | None:
        """The download queue if something made it already (never makes it)."""
        return self._downloads

    @property
    def engine(self) -> EngineClient:
        if self._engine is None:
            if self._engine_factory is not None:
                self._engine = self._engine_factory(self)
            else:
                self._engine = self._generation_service().make_client()
        return self._engine

    @property
    def generation(self) -> GenerationControl:
        """The one running generation, its progress and the engine state (for the UI)."""
        return self._generation_service()

    def _generation_service(self) -> GenerationService:
        if self._generation is None:
            from distill_tui.generation import GenerationService

            self._generation = GenerationService(self.core, lambda: self.engine)
            self._generation.subscribe(self._on_generation_change)  # the App's one subscription
        return self._generation

    # ---- services -> signals: the one place that listens to them ---------------------
    def _on_download_event(self, event: DownloadEvent) -> None:
        """Every snapshot of the download service: a new failure is reported (whatever
        screen is showing), a long batch that ended rings, then the screens are told."""
        previous = self._download_states.get(event.key)
        self._download_states[event.key] = event.state
        try:  # a report or a notification never keeps the event from the screens
            if event.state == "failed" and previous != "failed":
                self._report_download_failure(event)
            text = self.download_watch.event(event) if self.download_watch else None
            if text is not None:
                from distill_tui.download_notice import notify_finished

                # bell + terminal notification when a long download ends off-screen
                notify_finished(self, text)
        except Exception:
            log.exception("download report or notification failed")
        self.download_signal.publish(event)

    def _report_download_failure(self, event: DownloadEvent) -> None:
        from distill_tui.catalog import COMPONENT_LABELS
        from distill_tui.widgets.file_status import error_text

        model = self.core.catalog.get(event.model_id)
        comp = model.component(event.component) if model is not None else None
        file = None
        if comp is not None:
            file = comp.get(event.quant_id or "") if comp.has_quants else comp.file
        if model is None or file is None:
            what, text = event.key, event.error or "unknown error"
        else:
            label = COMPONENT_LABELS.get(event.component, event.component)
            quant = f" {event.quant_id}" if comp is not None and comp.has_quants else ""
            what, text = f"{model.name} {label}{quant}", error_text(event, file)
        self.report_failure(f"Download failed: {what}", text)

    def _on_generation_change(self, kind: ChangeKind) -> None:
        """Every change of the generation service: a failed generation is reported, then the
        screens are told."""
        job = self._generation.job if self._generation is not None else None
        if kind == "finished" and job is not None and job.phase == "failed" and not job.images:
            try:
                self.report_failure("Generation failed", job.error or "unknown error")
            except Exception:  # never keeps the change from the screens
                log.exception("cannot report a failed generation")
        self.generation_signal.publish(kind)

    def _bridge_settings(self, store: SettingsFeed) -> None:
        self._unsubscribe_settings = store.subscribe(self.settings_signal.publish)

    # ---- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        self._app_loop = asyncio.get_running_loop()
        self._install_signal_handlers()
        self._bridge_settings(self.core.settings)
        # settings.json is shared with the CLI (`distill models use` in another window): a
        # stat a second notices a change, and the screens follow (settings listeners)
        self.set_interval(1.0, self._poll_settings)
        self.call_after_refresh(self._freeze_gc)
        for warning in self.core.warnings:
            self.notify(warning, title="Warning", severity="warning", timeout=12)
        if self.machine is None:
            # after the first paint: the probe starts a child process (the engine's device
            # registry) that would compete with the first frame for the CPU
            self.call_after_refresh(lambda: self.set_timer(0.2, self._start_machine_detection))
        else:
            self._machine_known(self.machine)

    def _start_machine_detection(self) -> None:
        self.run_worker(self._detect_machine, thread=True, name="Detect GPU", group="machine")

    def _detect_machine(self) -> None:
        from distill_tui.devices import detect_machine

        machine = detect_machine()
        self.call_from_thread(self._machine_known, machine)

    def _machine_known(self, machine: Any) -> None:
        """Publish the machine; a CPU build on an NVIDIA box says how to rebuild, once."""
        from distill_tui.devices import rebuild_notice

        self.machine = machine
        self.machine_changed.publish(machine)
        notice = rebuild_notice(machine)
        if notice:
            self.notify(
                notice, title="The engine cannot use the GPU", severity="warning", timeout=30
            )

    async def on_unmount(self) -> None:
        if self._unsubscribe_settings is not None:  # the core's store may outlive the App
            self._unsubscribe_settings()
            self._unsubscribe_settings = None
        if self._engine is not None:
            try:
                await self._engine.shutdown()
            except Exception:
                log.exception("engine shutdown failed")
        if self._downloads is not None:
            try:
                await self._downloads.aclose()
            except Exception:
                log.exception("download shutdown failed")

    def _poll_settings(self) -> None:
        try:
            if self.core.settings.reload_if_changed():
                log.info("settings changed by another process; reloaded")
        except Exception:  # never let a look at a file take the app down
            log.exception("cannot reload the settings")

    # ---- quitting, signals and the download hand-off -------------------------------------
    def running_downloads(self) -> list[str]:
        """Keys of the files this TUI is downloading or has queued."""
        if self._downloads is None:
            return []
        return [self._downloads.key_for(*item) for item in self._downloads.unfinished()]

    async def action_quit(self) -> None:
        """ctrl+q: with downloads running, ask first (keep them going in the background, stop
        them, or stay); otherwise quit at once."""
        from distill_tui.screens.quit import QuitModal

        running = self.running_downloads()
        # a generation cannot be handed off: quitting stops it, so ask as for downloads
        generating = self._generation is not None and self._generation.running
        if not running and not generating:
            self.exit()
            return
        if isinstance(self.screen, QuitModal):
            return

        def answered(answer: str | None) -> None:
            if answer == "keep":
                self.exit(message=self.hand_off_downloads())
            elif answer == "stop":
                self.exit()

        self.push_screen(QuitModal(running, generating), answered)

    def hand_off_downloads(self, wait: float = -1) -> str | None:
        """Start a detached ``distill models download`` per model for what is still running
        here; this process then pauses its own (on unmount) and the new one resumes from the
        partials. Returns a line for the terminal after exit. Once per process: a second call
        (two hang-ups, a hang-up after "keep downloading") returns the first one's line."""
        # the App's loop, or the exit watchdog's thread when the loop never got to it
        if not self._handoff_lock.acquire(timeout=wait):
            return None
        try:
            if not self._handed_off:
                self._handed_off = True
                self._handoff_message = self._hand_off()
            return self._handoff_message
        finally:
            self._handoff_lock.release()

    def _hand_off(self) -> str | None:
        if self._downloads is None:
            return None
        items = self._downloads.unfinished()
        if not items:
            return None
        from distill_tui.downloads.handoff import hand_off
        from distill_tui.selfcmd import distill_command

        try:
            started = hand_off(items, self.core.paths.log_dir, self._downloads.connections)
        except OSError as e:
            log.error("could not hand the downloads off: %s", e)
            return f"distill: could not keep downloading in the background ({e}); rerun to resume"
        for model_id, pid, logfile in started:
            log.info("downloads of %s handed to pid %d (log %s)", model_id, pid, logfile)
        pids = ", ".join(str(pid) for _m, pid, _l in started)
        return (
            f"distill: {len(items)} download(s) continue in the background (pid {pids}); "
            f"`{distill_command()} models status` shows them. Log: {started[0][2]}"
        )

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP end the TUI through the same clean path as ctrl+q: the terminal
        is restored, the engine child ended, partials kept. A hang-up (the SSH session is
        gone) cannot be asked anything: running downloads are handed off. A signal the user
        chose to ignore (nohup) stays ignored."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            try:
                loop.add_signal_handler(sig, self._on_exit_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _on_exit_signal(self, sig: int) -> None:
        if self._exit_started:  # a second hang-up (the shell passes its own on): one exit
            log.info("%s again: already quitting", signal.Signals(sig).name)
            return
        log.info("%s: quitting", signal.Signals(sig).name)
        self._end_without_terminal(128 + sig, hand_off=sig == signal.SIGHUP)

    def terminal_gone(self, error: OSError) -> None:
        """The terminal is gone (EIO/EPIPE writing or reading it; distill_tui/driver.py): as a
        hang-up, whether or not SIGHUP comes. Called on the driver's threads: the exit deadline
        starts now (the App's loop may be busy building a screen), the rest runs on the loop."""
        self._arm_exit_watchdog(128 + signal.SIGHUP, hand_off=True)
        loop = self._app_loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing already
                loop.call_soon_threadsafe(self._on_terminal_gone, error)

    def _on_terminal_gone(self, error: OSError) -> None:
        if self._exit_started:
            return
        log.info("the terminal is gone (%s): quitting", error)
        self._end_without_terminal(128 + signal.SIGHUP, hand_off=True)

    def _end_without_terminal(self, code: int, *, hand_off: bool) -> None:
        """Quit with nobody to ask: hand the downloads off (on a hang-up), then exit; a watchdog
        makes sure the process ends within a few seconds whatever blocks (``_start_exit_watchdog``)."""
        self._exit_started = True
        self._arm_exit_watchdog(code, hand_off=hand_off)
        message = self.hand_off_downloads() if hand_off else None
        self.exit(return_code=code, message=message)

    def _arm_exit_watchdog(self, code: int, *, hand_off: bool) -> None:
        with self._handoff_lock:
            if self._watchdog_armed:
                return
            self._watchdog_armed = True
        _start_exit_watchdog(self, code, hand_off=hand_off)

    def engine_pid(self) -> int | None:
        """The engine child's pid while it runs."""
        proc = getattr(self._engine, "_proc", None)
        if proc is None or getattr(proc, "returncode", 0) is not None:
            return None
        return getattr(proc, "pid", None)

    def get_driver_class(self) -> type[Any]:
        """Textual's Linux driver with an output path that never blocks the App and notices a
        terminal that is gone (distill_tui/driver.py); TEXTUAL_DRIVER and Windows as Textual."""
        import sys

        from textual import constants

        if constants.DRIVER is not None or sys.platform == "win32":
            return super().get_driver_class()
        from distill_tui.driver import DistillDriver

        return DistillDriver

    # ---- notifications -----------------------------------------------------------------
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast as plain text: messages quote catalog names, file names and what a
        server said, so control characters are shown (textsafe) and no markup is parsed
        (``markup`` is accepted for Textual's callers and ignored)."""
        super().notify(
            visible(message, multiline=True),
            title=visible(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # ---- central failure handler -----------------------------------------------------
    def report_failure(self, title: str, message: str) -> None:
        """The one place background failures become something a person sees."""
        log.error("%s: %s", title, message)
        self.notify(message, title=title, severity="error", timeout=15)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            self.report_failure(f"{event.worker.name or 'Background task'} failed", str(err))

    @staticmethod
    def _freeze_gc() -> None:
        """Move every object alive now (modules, screens, widgets, styles) out of the cyclic
        GC's reach. A full (gen 2) collection walks all tracked objects; with Textual's
        widget trees that took up to ~95 ms on a 2-core box — the worst key -> repaint
        latencies. Frozen objects are still freed by reference counting; only cycles among
        them stay (a one-off, small amount)."""
        gc.freeze()

    # ---- actions ---------------------------------------------------------------------
    def _switch_to(self, mode: str) -> None:
        first = mode not in self._modes_seen
        self.switch_mode(mode)
        if first:  # a mode's screen is built once: freeze it with the rest
            self._modes_seen.add(mode)
            self.call_after_refresh(self._freeze_gc)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("focus_next", "focus_previous"):
            return not _takes_tab(self.focused)
        return True

    def action_show_generate(self) -> None:
        self._switch_to("generate")

    def action_show_models(self) -> None:
        self._switch_to("models")

    def action_show_gallery(self) -> None:
        self._switch_to("gallery")

    def action_show_settings(self) -> None:
        self._switch_to("settings")

    def switch_mode(self, mode: str) -> Any:
        if mode != self.current_mode:
            self.previous_mode = self.current_mode
        return super().switch_mode(mode)

    def show_models(self, model_id: str | None = None) -> None:
        """The Model Manager, on ``model_id``'s card (expanded, cursor on its header)."""
        self._models_target = model_id
        self._switch_to("models")

    def take_models_target(self) -> str | None:
        target, self._models_target = self._models_target, None
        return target

    def action_go_back(self) -> None:
        """Esc: back to the screen the user came from; nothing when there is none."""
        prev = self.previous_mode
        if prev and prev != self.current_mode and prev in self.MODES:
            self._switch_to(prev)

    def action_help(self) -> None:
        from distill_tui.screens.help import HelpModal

        if isinstance(self.screen, HelpModal):
            self.screen.dismiss()
            return
        # One modal, installed once and re-filled: composing a new one per F1 cost tens of ms.
        if not self.is_screen_installed("help"):
            self.install_screen(HelpModal(), "help")
        help_screen = self.get_screen("help")
        assert isinstance(help_screen, HelpModal)
        help_screen.show_for(self.screen)
        self.push_screen(help_screen)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette's commands: ours and Textual's own (distill_tui/commands.py)."""
        from distill_tui.commands import system_commands

        return system_commands(self, screen, super().get_system_commands(screen))


def _takes_tab(widget: object) -> bool:
    """The focused widget does something with Tab itself (a TextArea that indents, a widget
    binding Tab): the App's Tab binding leaves the key to it."""
    if widget is None:
        return False
    if getattr(widget, "tab_behavior", None) == "indent":
        return True
    bindings = getattr(widget, "_bindings", None)
    keys = getattr(bindings, "key_to_bindings", {}) if bindings is not None else {}
    return "tab" in keys or "shift+tab" in keys


#: seconds from SIGTERM to the end of the process (the clean path restores the terminal)
EXIT_DEADLINE = 4.0
#: seconds from a hang-up or the terminal's loss to the end of the process (nothing to restore)
HANGUP_DEADLINE = 3.0


def _start_exit_watchdog(app: DistillApp, code: int, *, hand_off: bool) -> None:
    """A daemon thread that ends the process ``deadline`` seconds from now if the clean exit
    has not: the downloads are handed off if the App could not do it yet (``hand_off``), the
    engine child is killed, then ``os._exit``. Partials stay resumable (the kernel releases the
    download locks). Nothing on the way out may keep an orphan alive."""
    import os
    import time

    deadline = HANGUP_DEADLINE if hand_off else EXIT_DEADLINE

    def watch() -> None:
        time.sleep(deadline)
        log.error("still running %.0f s after the exit began: ending the process", deadline)
        if hand_off:
            with contextlib.suppress(Exception):
                app.hand_off_downloads(wait=1.0)
        pid = app.engine_pid()
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            logging.shutdown()
        os._exit(code)

    threading.Thread(target=watch, name="distill-exit-watchdog", daemon=True).start()


def prepare_image_support(renderer: str | None) -> None:
    """textual-image's terminal probe must be done before the app takes the terminal over
    (see image_probe: ``distill`` starts it on a thread beside its own imports)."""
    from distill_tui import image_probe

    image_probe.finish()


def run_app(debug: bool = False, image_renderer: str | None = None) -> int:
    import sys

    from distill_tui.context import setup_logging

    core = CoreContext.build()
    setup_logging(core.paths, debug)
    prepare_image_support(image_renderer)
    app = DistillApp(core, image_renderer=image_renderer)
    try:
        app.run()
    except OSError as e:  # the terminal went away: Textual's last words (an error) cannot be shown
        said = "".join(
            seg.text
            for r in getattr(app, "_exit_renderables", ())
            for seg in getattr(r, "segments", ())
        )
        log.info("the terminal is gone (%s); not shown: %s", e, said or "nothing")
        return app.return_code or 128 + signal.SIGHUP
    if app.return_code and not app.terminal_unusable:  # unread: a print would block
        with contextlib.suppress(OSError):  # after a hang-up there is no terminal to tell
            print(f"distill exited with code {app.return_code}", file=sys.stderr)
    return app.return_code or 0
