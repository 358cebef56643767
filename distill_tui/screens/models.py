"""Model Manager (F3): download quants, choose the active ones, see what is ready.

The screen draws state and turns keys into requests; it owns no long work. Downloads run in
the App's DownloadManager: this screen reads ``app.downloads.events()`` when it mounts and
follows the App's ``download_signal`` (throttled by the service, coalesced here with
``can_replace``; Textual drops the subscription with the screen), so leaving the screen,
switching tabs or collapsing a card never stops or restarts a download. A failed download
is reported by the App, not here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static, Tab, Tabs

from distill_tui.catalog import COMPONENT_LABELS, CatalogModel
from distill_tui.downloads.events import DownloadEvent, Elsewhere, PlanItem, ShownDownload
from distill_tui.formatting import home_path, human_size
from distill_tui.resources import style_path
from distill_tui.screens.base import DistillScreen
from distill_tui.screens.confirm import ConfirmModal
from distill_tui.widgets.file_row import FileRow
from distill_tui.widgets.file_status import ACTIVE_STATES, fit_mark, state_name
from distill_tui.widgets.model_card import ModelCard, same_content
from distill_tui.widgets.quant_radio_set import QuantRadioSet
from distill_tui.widgets.quant_row import QuantRow

if TYPE_CHECKING:
    from distill_tui.settings import Settings

log = logging.getLogger(__name__)

Row = QuantRow | FileRow

#: (tab id, label, catalog model type or None for all, enabled)
CATEGORIES: tuple[tuple[str, str, str | None, bool], ...] = (
    ("tab-all", "All Models", None, True),
    ("tab-image-generation", "Image Generation", "image-generation", True),
    ("tab-upscalers", "Upscalers (soon)", "upscaler", False),
    ("tab-video", "Video (soon)", "video", False),
)


class ModelList(VerticalScroll, can_focus=False, inherit_bindings=False):
    """The scrolling column of model cards. Focus goes to the rows, not to the list; the
    arrow keys move between rows, so only the page keys scroll."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "pageup",
            "page_up",
            "Page up",
            show=False,
            id="models.page_up",
            tooltip="Scroll the model list up a page",
        ),
        Binding(
            "pagedown",
            "page_down",
            "Page down",
            show=False,
            id="models.page_down",
            tooltip="Scroll the model list down a page",
        ),
    ]


class ModelManagerScreen(DistillScreen):
    """Cards per model; rows per file; keys d / x / r / del act on the focused row."""

    COMPACT_FOOTER = True
    #: cards mounted before the first paint (more than a tall terminal shows); the rest are
    #: mounted after it, CARD_CHUNK at a time, keys answered between chunks
    FIRST_CARDS = 12
    CARD_CHUNK = 12

    HELP_TITLE = "Model Manager"
    SUB_TITLE = "Models"
    CSS_PATH = [style_path("models.tcss")]
    AUTO_FOCUS = "CardTitle"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "d",
            "download",
            "Download",
            id="models.download",
            tooltip="Focused file; on a card header the whole selected set",
        ),
        Binding(
            "x",
            "cancel_download",
            "Cancel",
            id="models.cancel",
            tooltip="Stop the focused download; the partial is kept to resume",
        ),
        Binding("r", "retry", "Retry", id="models.retry", tooltip="Retry a failed download"),
        Binding(
            "delete",
            "remove_file",
            "Remove",
            key_display="del",
            id="models.remove",
            tooltip="Delete the focused downloaded file (asks first)",
        ),
        Binding(
            "down",
            "focus_next_row",
            "Next row",
            show=False,
            id="models.next_row",
            tooltip="Move to the next row",
        ),
        Binding(
            "up",
            "focus_previous_row",
            "Previous row",
            show=False,
            id="models.previous_row",
            tooltip="Move to the previous row",
        ),
        Binding(
            "escape",
            "app.go_back",
            "Back",
            show=False,
            id="models.back",
            tooltip="Back to the screen you came from",
        ),
        Binding(
            "enter",
            "link_file",
            "Link",
            show=False,
            id="models.link",
            tooltip="Link a copy found on this machine (the HF cache, import_dirs) into place",
        ),
    ]

    class DownloadProgress(Message):
        """A download event from the App's DownloadManager. Progress of one file coalesces:
        a pending update is dropped when a newer one for the same file is queued behind it;
        final states (done, failed, cancelled) are never dropped."""

        def __init__(self, event: DownloadEvent) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, ModelManagerScreen.DownloadProgress)
                and message.event.key == self.event.key
                and not self.event.finished
                and not message.event.finished
            )

    class SettingsChanged(Message):
        """settings.json changed (a selection, possibly from the download service)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ModelManagerScreen.SettingsChanged)

    def __init__(self) -> None:
        super().__init__(id="models-screen")
        self._events: dict[str, DownloadEvent] = {}
        #: downloads other processes run, and partials nobody runs (key -> Elsewhere event)
        self._elsewhere: dict[str, Elsewhere] = {}
        self._watch: Any = None
        self._ready: dict[str, bool] = {}
        self._dir_line: Content | None = None
        #: the import_dirs folders' model files by size (built on a thread; localreuse.py)
        self._folder_index: Any = None
        #: catalog file -> where a same-size local copy is ("the HF cache", a folder); looked
        #: up on a thread (_scan_import_dirs), never on the event loop (issue 19.22)
        self._found: dict[str, str] = {}
        #: every card, in catalog order (composed once; a query walks the whole DOM)
        self._cards: list[ModelCard] = []
        #: cards not mounted yet (a large catalog: mounted after the first paint)
        self._unmounted: list[ModelCard] = []
        self._synced_on_compose = False

    # ---- layout ----------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        yield Tabs(
            *(Tab(label, id=tab_id) for tab_id, label, _t, _on in CATEGORIES), id="model-tabs"
        )
        active = self.core.settings.settings.active_model_id
        models = self.core.catalog.models
        expanded = (
            active if any(m.id == active for m in models) else models[0].id if models else None
        )
        self.core.inventory.refresh()  # another process (the CLI) may have changed it
        self._read_events()
        events = self._merged_events()
        for i, model in enumerate(models):
            card = ModelCard(model, collapsed=model.id != expanded)
            card.on_body_built = self._body_built
            card.name_of = self._model_name
            self._cards.append(card)
            if i >= self.FIRST_CARDS and model.id != expanded:
                self._unmounted.append(card)
        with ModelList(id="model-list"):
            for card in self._cards:
                if card in self._unmounted:
                    continue
                # each header is drawn from the facts before it mounts: hundreds of cards are
                # styled and laid out once, not once as composed and again on the first sync
                self._sync_card(card, events, active)
                yield card
            yield Static("No models in this category yet.", id="models-empty")
        yield Static("", id="models-dir-line")

    @property
    def cards(self) -> list[ModelCard]:
        """Every card, in catalog order (mounted or still waiting to be)."""
        return list(self._cards)

    # ---- a large catalog: the cards after the first screenful mount after the first paint --
    def _mount_more(self, through: ModelCard | None = None) -> None:
        """Mount the next CARD_CHUNK waiting cards (or every one up to ``through``), each at
        its place in catalog order, drawn from the facts first; then schedule the next chunk,
        so keys are answered between chunks."""
        if not self._unmounted or not self.is_attached:
            return
        if through is not None and through in self._unmounted:
            n = self._unmounted.index(through) + 1
        else:
            n = self.CARD_CHUNK
        chunk, self._unmounted = self._unmounted[:n], self._unmounted[n:]
        waiting = set(map(id, self._unmounted)) | set(map(id, chunk))
        events = self._merged_events()
        active = self.core.settings.settings.active_model_id
        model_list = self.query_one("#model-list", ModelList)
        run: list[ModelCard] = []
        for card in self._cards:  # consecutive chunk cards go in before the next mounted one
            if card in chunk:
                self._sync_card(card, events, active)
                run.append(card)
            elif run and id(card) not in waiting:
                model_list.mount(*run, before=card)
                run = []
        if run:
            model_list.mount(*run, before=self.query_one("#models-empty"))
        if self._unmounted:
            self.set_timer(0.02, self._mount_more)

    def rows_for(self, key: str) -> list[Row]:
        return [row for card in self._cards for row in card.rows if row.key == key]

    # ---- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        tabs = self.query_one("#model-tabs", Tabs)
        for tab_id, _label, _type, enabled in CATEGORIES:
            if not enabled:
                tabs.disable(tab_id)
        self.query_one("#models-empty").display = False
        app = self.distill
        app.download_signal.subscribe(self, self._on_download_event, immediate=True)
        self._scan_import_dirs()
        self.set_interval(1.0, self._poll_elsewhere)
        self.call_after_refresh(self._poll_elsewhere)
        app.settings_signal.subscribe(self, self._on_settings_changed, immediate=True)
        app.machine_changed.subscribe(self, lambda _m: self.sync_all())  # fit marks: the GPU
        if self._unmounted:
            self.call_after_refresh(self._mount_more)
        # The cards were drawn from the facts as they were composed (compose_body); a
        # download event published before the subscription above is read here.
        seen = dict(self._events)
        self._read_events()
        self._synced_on_compose = True
        if any(seen.get(k) is not e for k, e in self._events.items()):
            self.sync_all()
        else:
            self._sync_dir_line()
            self.refresh_bindings()

    def _read_events(self) -> None:
        try:
            for event in self.distill.downloads.events():
                self._events[event.key] = event
        except Exception:  # an empty registry is fine; never fail to draw the screen
            log.exception("cannot read download events")

    def on_screen_resume(self) -> None:
        # Another process (the CLI) may have changed the inventory meanwhile. (The first
        # resume follows the mount: the cards were just drawn from the facts.)
        first, self._synced_on_compose = self._synced_on_compose, False
        if not first:
            self.core.inventory.refresh()
            self.sync_all()
            self._scan_import_dirs()
        target = self.distill.take_models_target()
        if target:  # after the screen's auto focus (the first card header)
            self.call_after_refresh(self.show_model, target)

    def show_model(self, model_id: str) -> None:
        """Expand ``model_id``'s card and put the cursor on its header (the "All Models" tab
        when the current tab hides it)."""
        card = next((c for c in self.cards if c.model.id == model_id), None)
        if card is None:
            return
        if card in self._unmounted:  # not mounted yet: it and the cards before it, now
            self._mount_more(through=card)
            self.call_after_refresh(self.show_model, model_id)
            return
        if not card.display:
            self.query_one("#model-tabs", Tabs).active = CATEGORIES[0][0]
            card.display = True
        card.collapsed = False
        card.title_widget.focus()
        self.call_after_refresh(card.title_widget.scroll_visible, top=True, animate=False)

    def _on_download_event(self, event: DownloadEvent) -> None:
        self.post_message(self.DownloadProgress(event))

    def _on_settings_changed(self, _settings: Settings) -> None:
        if self.is_attached:
            self.post_message(self.SettingsChanged())

    # ---- state -> widgets ------------------------------------------------------------
    def sync_all(self) -> None:
        active = self.core.settings.settings.active_model_id
        events = self._merged_events()
        for card in self._cards:
            if card.parent is not None:  # (a card waiting to mount is drawn as it mounts)
                self._sync_card(card, events, active)
        self._sync_dir_line()
        self.refresh_bindings()

    def _sync_card(self, card: ModelCard, events: dict[str, ShownDownload], active: str) -> None:
        """One card from the facts: its header always, its rows once it has a body."""
        core = self.core
        mid = card.model.id
        ready = core.resolver.is_model_ready(mid)
        became_ready = ready and self._ready.get(mid) is False
        self._ready[mid] = ready
        self._apply_fit(card)
        card.sync(
            inventory=core.inventory,
            selection=core.settings.selection(mid),
            events=events,
            ready=ready,
            active=mid == active,
        )
        if card.built:
            self._apply_found(card)
        if became_ready:
            tail = " · F2 to generate" if mid == active else ""
            self.app.notify(f"{card.model.name} is ready{tail}.", title="Ready")

    def _body_built(self, card: ModelCard) -> None:
        """A card expanded for the first time: its new rows take the facts before they are
        first drawn."""
        self._sync_card(card, self._merged_events(), self.core.settings.settings.active_model_id)

    def _apply_fit(self, card: ModelCard) -> None:
        """Fit marks on the card's quant rows and header, and its best set, for the GPU the
        app knows (memory_model); a machine without a GPU shows none (RAM is the limit)."""
        from distill_tui import memory_model as mm

        budget = mm.gpu_budget(self.distill.machine)
        settings = self.core.settings.settings
        fits = None
        if budget is not None:
            w, h = mm.generation_size(settings, card.model)
            fits = mm.card_fits(
                card.model,
                self.core.settings.selection(card.model.id),
                budget=budget,
                width=w,
                height=h,
                knobs=mm.knobs_from_settings(settings),
            )
        card.best_set = fits.best if fits else None
        card.fit_header = fits.header if fits else None
        for qset in card.sets.values():
            for row in qset.rows:
                fit = fits.rows.get(row.key) if fits else None
                row.set_fit(fit_mark(fit) if fit is not None else None)

    def _apply_found(self, card: ModelCard) -> None:
        """The "found in the HF cache — enter to link" hint on a not-downloaded row whose file has a
        same-size copy on this machine: read from what the last look found (no disk here)."""
        gone = getattr(self, "_gone", {})
        for row in card.rows:
            row.set_found(self._found.get(row.key) if row.state == "missing" else None)
            row.set_gone(gone.get(row.key) if row.state == "missing" else None)

    def _scan_import_dirs(self) -> None:
        """Look for local copies of the catalog's files (the HF cache, the import_dirs folders)
        on a thread, bounded (localreuse: a few stats per file, a bounded folder walk); the
        rows' hints follow when it is done."""
        dirs = tuple(self.core.settings.settings.import_dirs)
        self.run_worker(
            self._look_for_local_copies(dirs),
            group="import-dirs",
            exclusive=True,
            exit_on_error=False,
        )

    async def _look_for_local_copies(self, dirs: tuple[str, ...]) -> None:
        from distill_tui.downloads import localreuse as lr

        skip = self.core.inventory.models_dir
        files = {f.file: f for m in self.core.catalog.models for _c, _q, f in m.files()}
        inv = self.core.inventory
        gone: dict[str, str] = {}

        def look() -> tuple[Any, dict[str, str]]:
            index = lr.FolderIndex(dirs, skip=skip) if dirs else None
            found: dict[str, str] = {}
            for key, f in files.items():
                original = inv.gone_original(key)  # a symlink whose original was removed
                if original is not None:
                    gone[key] = str(original)
                try:
                    where = lr.hint(f, index)
                except Exception:  # a look at the disk never takes the screen down
                    log.exception("cannot look for a local copy of %s", key)
                    continue
                if where is not None:
                    found[key] = where
            return index, found

        self._folder_index, self._found = await asyncio.to_thread(look)
        self._gone = gone
        if self.is_attached:
            for card in self.cards:
                self._apply_found(card)

    def _sync_dir_line(self) -> None:
        inv = self.core.inventory
        try:
            free = f"{human_size(inv.free_bytes())} free"
        except OSError as e:
            free = f"free space unknown ({e.strerror or e})"
        line = Content.from_markup(
            "Models in [b]$path[/b] · $used used · $free",
            path=home_path(inv.models_dir),
            used=human_size(inv.total_usage()),
            free=free,
        )
        if not same_content(line, self._dir_line):
            self._dir_line = line
            self.query_one("#models-dir-line", Static).update(line)

    # ---- downloads run elsewhere -----------------------------------------------------
    def _merged_events(self) -> dict[str, ShownDownload]:
        """Our own events win; other processes' downloads and idle partials fill the rest."""
        if not self._elsewhere:
            return dict(self._events)
        merged: dict[str, ShownDownload] = dict(self._elsewhere)
        for key, event in self._events.items():
            other = self._elsewhere.get(key)
            # an idle partial on disk does not hide how our own download ended (the failure
            # and its reason, "cancelled at 40%"); another process working on it does
            if other is None or state_name(event) in ACTIVE_STATES or not other.pid:
                merged[key] = event
        return merged

    async def _poll_elsewhere(self) -> None:
        """Every second while shown: downloads by any distill process on this box (a detached
        one after a quit, the CLI in another SSH window) and partials left on disk."""
        if not self.is_active:
            return
        from distill_tui.downloads.activity import ActivityWatch

        if self._watch is None or self._watch.models_dir != self.core.inventory.models_dir:
            # (again when the Model Directory changed in Settings)
            self._watch = ActivityWatch(self.core.inventory.models_dir, self.core.catalog)
        watch = self._watch
        try:
            acts = await asyncio.to_thread(watch.scan)
        except Exception:  # never let a look at the disk take the screen down
            log.exception("cannot scan for downloads")
            return
        mine = {k for k, e in self._events.items() if state_name(e) in ACTIVE_STATES}
        found = {
            a.key: Elsewhere.of(a)
            for a in acts
            if a.key not in mine and a.pid != os.getpid() and a.model_id is not None
        }
        if found == self._elsewhere:
            return
        finished = set(self._elsewhere) - set(found)
        self._elsewhere = found
        if finished:
            self.core.inventory.refresh()  # another process may have published them
        self.sync_all()

    def elsewhere_pid(self, key: str) -> int | None:
        e = self._elsewhere.get(key)
        return e.pid if e is not None and e.pid and e.pid > 0 else None

    @on(DownloadProgress)
    def _download_progress(self, message: DownloadProgress) -> None:
        event = message.event
        previous = self._events.get(event.key)
        self._events[event.key] = event
        new, old = state_name(event), state_name(previous)
        if not self.is_active:
            # Under a modal (help, palette, confirm) every repaint of this screen re-composites
            # the dimmed backdrop of the modal; the rows catch up on ScreenResume (sync_all).
            return
        if new != old or event.finished:
            self.sync_all()
        else:
            for row in self.rows_for(event.key):
                row.set_status(row.present, event)
            # the header's one progress and ETA for the set (issue 22.11)
            cards = [c for c in self._cards if event.key in c.keys and c.parent is not None]
            if cards:
                events = self._merged_events()
                for card in cards:
                    card.sync_progress(events)

    def _model_name(self, model_id: str) -> str:
        model = self.core.catalog.get(model_id)
        return model.name if model is not None else model_id

    @on(SettingsChanged)
    def _settings_changed(self) -> None:
        self.sync_all()

    # ---- focus helpers ---------------------------------------------------------------
    def focused_row(self) -> Row | None:
        focused = self.focused
        if isinstance(focused, QuantRadioSet):
            return focused.highlighted
        if isinstance(focused, FileRow):
            return focused
        return None

    def focused_card(self) -> ModelCard | None:
        node = self.focused
        while node is not None and not isinstance(node, ModelCard):
            node = node.parent  # type: ignore[assignment]
        return node

    def _row_name(self, row: Row) -> str:
        model = self.core.catalog.get(row.model_id)
        name = model.name if model else row.model_id
        if isinstance(row, QuantRow):
            return f"{name} {COMPONENT_LABELS[row.component]} {row.quant_id}"
        return f"{name} {COMPONENT_LABELS.get(row.component, row.component)}"

    def on_descendant_focus(self, _event: events.DescendantFocus) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show d / x / r / del in the footer only where they can act (at 80 columns the
        footer has no room for keys that would do nothing here)."""
        if action not in ("download", "cancel_download", "retry", "remove_file"):
            return True
        row = self.focused_row()
        if row is None:
            card = self.focused_card()
            if card is None:
                return False
            states = {state for _c, _q, _f, state in card.file_states()}
            if action == "download":
                return True
            if action == "cancel_download":
                return bool(states & ACTIVE_STATES)
            if action == "retry":
                return "failed" in states
            return False
        state = row.state
        if action == "download":
            return state in ("missing", "cancelled", "paused", "failed")
        if action == "cancel_download":
            return state in ACTIVE_STATES
        if action == "retry":
            return state in ("failed", "cancelled", "paused")
        return state == "done"

    # ---- navigation ------------------------------------------------------------------
    def action_focus_next_row(self) -> None:
        widget = self._move_among_cards(1) or self.focus_next()
        if isinstance(widget, QuantRadioSet):
            widget.highlight_first()

    def action_focus_previous_row(self) -> None:
        widget = self._move_among_cards(-1) or self.focus_previous()
        if isinstance(widget, QuantRadioSet):
            widget.highlight_last()

    def _move_among_cards(self, step: int) -> Widget | None:
        """Focus the next/previous stop of the cards (a header; an open card's sections and
        VAE row) from the focused one, found from the cards themselves: the screen's focus
        chain walks every widget (hundreds of headers with a large catalog) on every key.
        None where this does not apply (outside the cards, past the first or last card): the
        caller moves through the focus chain then."""
        card = self.focused_card()
        focused = self.focused
        if card is None or focused is None:
            return None
        cards = [c for c in self._cards if c.display and c.parent is not None]
        if card not in cards:
            return None

        def stops(c: ModelCard) -> list[Widget]:
            out: list[Widget] = [c.title_widget]
            if c.built and not c.collapsed and c.vae_row is not None:
                out += [c.sets["diffusion"], c.sets["textEncoder"], c.vae_row]
            return out

        mine = stops(card)
        if focused not in mine:
            return None
        i = mine.index(focused) + step
        if 0 <= i < len(mine):
            target = mine[i]
        else:
            k = cards.index(card) + step
            if not 0 <= k < len(cards):
                return None
            near = stops(cards[k])
            target = near[0] if step > 0 else near[-1]
        if not target.focusable:
            return None
        self.set_focus(target)
        return target

    @on(Tabs.TabActivated, "#model-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        wanted = next((t for tid, _l, t, _e in CATEGORIES if tid == event.tab.id), None)
        shown = 0
        for card in self.cards:
            visible = wanted is None or card.model.type == wanted
            card.display = visible
            shown += visible
        self.query_one("#models-empty").display = shown == 0

    # ---- choosing a quant ------------------------------------------------------------
    @on(QuantRadioSet.Changed)
    def _quant_chosen(self, event: QuantRadioSet.Changed) -> None:
        qset = event.radio_set
        row = event.pressed
        if not isinstance(qset, QuantRadioSet) or not isinstance(row, QuantRow):
            return
        settings = self.core.settings
        if not settings.set_quant(qset.model_id, qset.component, row.quant_id):
            self.app.report_failure(  # type: ignore[attr-defined]
                "Selection not saved", settings.read_only_reason or "settings.json not written"
            )
        self.sync_all()

    @on(QuantRadioSet.UnavailablePicked)
    def _unavailable(self, event: QuantRadioSet.UnavailablePicked) -> None:
        row = event.row
        if self._link(row):
            return
        hint = "it is downloading" if row.state in ACTIVE_STATES else "press d to download it"
        self.notify(
            f"{row.quant.label} is not on disk yet: {hint}.",
            title="Not downloaded",
            severity="warning",
        )

    # ---- downloads -------------------------------------------------------------------
    def _enqueue(self, model_id: str, component: str, quant_id: str | None) -> None:
        try:
            self.distill.downloads.enqueue(model_id, component, quant_id)
        except Exception as e:
            self.distill.report_failure("Cannot start download", str(e))

    def download_set(self, model: CatalogModel, *, recommended: bool = False) -> int:
        """Queue the selected (or recommended) set of a model; returns how many files."""
        card = next((c for c in self.cards if c.model.id == model.id), None)
        selection = self.core.settings.selection(model.id)
        if recommended:
            files = [
                (
                    "diffusion",
                    model.default_quant("diffusion"),
                    model.diffusion.get(model.default_quant("diffusion")),
                ),
                (
                    "textEncoder",
                    model.default_quant("textEncoder"),
                    model.text_encoder.get(model.default_quant("textEncoder")),
                ),
                ("vae", None, model.vae),
            ]
        elif card is not None:
            files, _rec = card.selected_set(selection)
        else:
            return 0
        items: list[tuple[str, str, str | None]] = []
        inventory = self.core.inventory
        for component, quant_id, file in files:
            if file is None or inventory.is_present(file.file):
                continue
            if state_name(self._events.get(file.file)) in ACTIVE_STATES:
                continue
            items.append((model.id, component, quant_id))
        if not items:
            self.notify(
                f"Everything for {model.name} is already on disk or on its way.",
                title="Nothing to download",
            )
            return 0
        self.run_worker(
            self._queue_set(model, items),
            name="Download set",
            group="downloads",
            exit_on_error=False,
        )
        return len(items)

    async def _queue_set(self, model: CatalogModel, items: list[PlanItem]) -> None:
        """The Hub is asked about every file first: a gated VAE or a missing file stops the
        set before gigabytes of the others move (their rows show why)."""
        failed, _keys = await self.distill.downloads.queue_plan(items)
        if failed:
            self.notify(
                f"Nothing of {model.name} was downloaded: {len(failed)} of {len(items)} files "
                "cannot be fetched (see the rows). Fix that, then d on the header again.",
                title="Download stopped before it started",
                severity="warning",
                timeout=10,
            )

    def _link(self, row: Row) -> bool:
        """enter on a not-downloaded row with a copy found on this machine: the download
        service links it (it confirms the bytes first: localreuse.py). True when queued."""
        if row.state != "missing" or not row.found:
            return False
        self.notify(f"Linking {self._row_name(row)} from {row.found} (no download).", title="Found")
        self._enqueue(row.model_id, row.component, row.quant_id)
        return True

    def action_link_file(self) -> None:
        """enter on the VAE row (quant rows: QuantRadioSet's enter, _unavailable)."""
        row = self.focused_row()
        if isinstance(row, FileRow):
            self._link(row)

    def action_download(self) -> None:
        row = self.focused_row()
        if row is None:
            card = self.focused_card()
            if card is not None:
                self.download_set(card.model)
            return
        state = row.state
        if state == "done":
            self.notify(f"{self._row_name(row)} is already downloaded.", title="On disk")
        elif state in ACTIVE_STATES:
            self.notify(f"{self._row_name(row)} is already {state}.", title="Downloading")
        else:
            self._enqueue(row.model_id, row.component, row.quant_id)

    def action_cancel_download(self) -> None:
        row = self.focused_row()
        if row is not None:
            keys = {row.key} if row.state in ACTIVE_STATES else set()
        else:  # a card header: every file of the model, its body built or not
            card = self.focused_card()
            states = card.file_states() if card is not None else []
            keys = {f.file for _c, _q, f, state in states if state in ACTIVE_STATES}
        if not keys:
            self.notify("No download to cancel here.", title="Cancel")
            return
        pids = {p for k in keys if (p := self.elsewhere_pid(k))}
        for pid in pids:  # another distill process: stop it (it keeps its partials)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            except OSError as e:
                self.app.report_failure("Cannot stop the download", f"pid {pid}: {e}")  # type: ignore[attr-defined]
                continue
            self.notify(f"Stopped the download in pid {pid}; its partials are kept (d resumes).")
        keys = {k for k in keys if not self.elsewhere_pid(k)}
        for key in keys:
            try:
                self.distill.downloads.cancel(key)
            except Exception as e:
                self.app.report_failure("Cannot cancel download", str(e))  # type: ignore[attr-defined]

    def action_retry(self) -> None:
        row = self.focused_row()
        if row is not None:
            if row.state in ("failed", "cancelled", "paused"):
                self._enqueue(row.model_id, row.component, row.quant_id)
            else:
                self.notify("Only a failed or cancelled download can be retried.", title="Retry")
            return
        card = self.focused_card()
        states = card.file_states() if card is not None else []
        failed = [(c, q) for c, q, _f, state in states if state == "failed"]
        if not failed or card is None:
            self.notify("No failed download in this card.", title="Retry")
            return
        for component, quant_id in failed:
            self._enqueue(card.model.id, component, quant_id)

    # ---- removal ---------------------------------------------------------------------
    def action_remove_file(self) -> None:
        """del: the same rules as `distill models remove` (distill_tui/removal.py)."""
        from distill_tui.removal import plan_removal, vae_users

        row = self.focused_row()
        if row is None or row.state != "done":
            what = "Move to a downloaded file" if row is None else "Only a downloaded file"
            self.notify(f"{what} to remove it (del).", title="Remove")
            return
        core = self.core
        model = core.catalog.get(row.model_id)
        assert model is not None
        item = (row.component, getattr(row, "quant_id", None))
        plan = plan_removal(core, model.id, [item])
        users = vae_users(core, model) if row.component == "vae" else []
        if not plan.targets and not users:
            if plan.kept and isinstance(row, QuantRow):  # the active quant of the active model
                label = COMPONENT_LABELS.get(row.component, row.component)
                reason = (
                    f"{row.quant_id} is the active {label} quant of {model.name}, the model "
                    f"Generate uses. Select another downloaded {label} quant first (enter on "
                    "its row), then remove this one."
                )
            else:
                reason = plan.kept[0] if plan.kept else "Nothing to remove."
            self.notify(reason, title="Not removed", severity="warning", timeout=10)
            return
        if users:  # the shared VAE: removing it is a forced removal, and the modal says so
            plan = plan_removal(core, model.id, [item], force=True)
        size = plan.size or row.file.size
        body = f"Delete {row.key} ({human_size(size)}) from the models folder?"
        if users:
            names = ", ".join(m.name for m in users)
            body += f"\nThe VAE is shared: {names} will not be Ready without it."
        self.app.push_screen(
            ConfirmModal(f"Remove {self._row_name(row)}?", body),
            callback=partial(self._removal_confirmed, plan),
        )

    def _removal_confirmed(self, plan: Any, yes: bool | None) -> None:
        if yes:
            self.app.run_worker(
                self._remove_files(plan), name="Remove", group="removal", exit_on_error=False
            )

    async def _remove_files(self, plan: Any) -> None:
        from distill_tui.removal import remove

        result = await asyncio.to_thread(remove, self.core, plan)
        for key in result.removed:
            if state_name(self._events.get(key)) not in ACTIVE_STATES:
                self._events.pop(key, None)
        if result.removed:
            self.notify(f"Removed {', '.join(result.removed)}.", title="Removed")
        for why in result.skipped:
            self.notify(f"Not removed: {why}", title="Remove", severity="warning")
        self.sync_all()
