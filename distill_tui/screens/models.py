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
from distill_tui.textsafe import visible
from distill_tui.widgets.file_row import FileRow
from distill_tui.widgets.file_status import ACTIVE_STATES, fit_mark, state_name
from distill_tui.widgets.model_card import ModelCard, css_id, same_content
from distill_tui.widgets.quant_radio_set import QuantRadioSet
from distill_tui.widgets.quant_row import QuantRow

if TYPE_CHECKING:
    from distill_tui.settings import Settings

log = logging.getLogger(__name__)

Row = QuantRow | FileRow

#: the tab of each catalog model type (an unknown type gets a tab named after it)
TYPE_TABS: dict[str, str] = {
    "image-generation": "Image Generation",
    "upscaler": "Upscalers",
    "video": "Video",
}
ALL_TAB = "tab-all"


def categories(models: list[CatalogModel]) -> list[tuple[str, str, str | None]]:
    """(tab id, label, model type or None for all): "All Models", then one tab per model type
    the catalog has, known types first in TYPE_TABS' order. No tab without a model behind it."""
    present = list(dict.fromkeys(m.type for m in models))
    ordered = [t for t in TYPE_TABS if t in present] + [t for t in present if t not in TYPE_TABS]
    return [(ALL_TAB, "All Models", None)] + [
        (f"tab-{css_id(t)}", TYPE_TABS.get(t) or visible(t).replace("-", " ").title(), t)
        for t in ordered
    ]


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
    #: A large catalog mounts only the cards near the viewport (a window over the tab's
    #: cards): FIRST_CARDS for the first paint (more than a tall terminal shows), then what
    #: is visible and WINDOW_MARGIN more on each side; spacers above and below stand for the others (their heights
    #: as last laid out, else CARD_HEIGHT), so the scroll bar and page keys cover the whole
    #: list. Cards leave the DOM and come back as the same widgets (state, rows kept).
    FIRST_CARDS = 12
    WINDOW_MARGIN = 8
    CARD_HEIGHT = 3

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
            "a",
            "activate",
            "Use",
            id="models.activate",
            tooltip="Make the focused upscaler the active one (what distill upscale uses)",
        ),
        Binding(
            "]",
            "next_tab",
            "Next tab",
            show=False,
            id="models.next_tab",
            tooltip="The next tab: All Models, Image Generation, Upscalers",
        ),
        Binding(
            "[",
            "previous_tab",
            "Previous tab",
            show=False,
            id="models.previous_tab",
            tooltip="The previous tab",
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
        #: catalog file -> the original a link of ours pointed at, removed since
        self._gone: dict[str, str] = {}
        self._folder_dirs: tuple[str, ...] | None = None
        #: the first look was started (on mount): a body built after it looks for its files
        self._scan_ready = False
        #: the catalog's models; their cards, made when first needed (the window's), by
        #: catalog index (a query walks the whole DOM; hundreds of cards take a while to make)
        self._models: list[CatalogModel] = []
        self._index: dict[str, int] = {}
        self._cards: list[ModelCard | None] = []
        self._expanded: str | None = None
        #: the current tab's models (catalog indices) and the window of them mounted
        self._shown: list[int] = []
        self._shown_ids: set[int] = set()
        self._lo = 0
        self._hi = 0
        #: catalog index -> the card's height (margin included) when last laid out
        self._height: dict[int, int] = {}
        self._card_height = self.CARD_HEIGHT
        self._windowing = False
        self._window_dirty = False
        self._synced_on_compose = False
        #: the settings the cards were last drawn from (sync_all)
        self._synced_settings: Any = None
        #: the card the focus is in (tinted: ModelCard.set_focus_within)
        self._tinted: ModelCard | None = None
        #: the tabs: (tab id, label, model type or None for all)
        self._categories: list[tuple[str, str, str | None]] = []
        #: file key -> ids of the models that list it (a shared text encoder, the VAE)
        self._users: dict[str, list[str]] | None = None

    # ---- layout ----------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        models = self.core.catalog.models
        self._categories = categories(models)
        yield Tabs(
            *(Tab(Content(label), id=tab_id) for tab_id, label, _t in self._categories),
            id="model-tabs",
        )
        active = self.core.settings.settings.active_model_id
        expanded = (
            active if any(m.id == active for m in models) else models[0].id if models else None
        )
        self.core.inventory.refresh()  # another process (the CLI) may have changed it
        self._read_events()
        events = self._merged_events()
        self._models = list(models)
        self._index = {m.id: i for i, m in enumerate(models)}
        self._cards = [None] * len(models)
        self._expanded = expanded
        self._shown = list(range(len(models)))
        self._shown_ids = set(self._shown)
        self._lo, self._hi = 0, min(len(self._shown), self.FIRST_CARDS)
        with ModelList(id="model-list"):
            yield self._spacer("models-above", 0)
            for card in self._window_cards(self._lo, self._hi):
                # each header is drawn from the facts before it mounts: styled and laid out
                # once, not once as composed and again on the first sync
                self._sync_card(card, events, active)
                yield card
            yield self._spacer("models-below", self._spare(self._hi, len(self._shown)))
            yield Static("No models in this category yet.", id="models-empty")
        yield Static("", id="models-dir-line")

    @property
    def cards(self) -> list[ModelCard]:
        """The cards made so far (the window's, and any shown before), in catalog order."""
        return [c for c in self._cards if c is not None]

    def _card(self, i: int) -> ModelCard:
        """The card of catalog model ``i``, made on first need."""
        card = self._cards[i]
        if card is None:
            model = self._models[i]
            card = ModelCard(model, collapsed=model.id != self._expanded)
            card.on_body_built = self._body_built
            card.name_of = self._model_name
            card.shared_with = partial(self._shared_with, model.id)
            card.display = i in self._shown_ids
            self._cards[i] = card
        return card

    def card_of(self, model_id: str) -> ModelCard | None:
        i = self._index.get(model_id)
        return None if i is None else self._card(i)

    def _window_cards(self, lo: int, hi: int) -> list[ModelCard]:
        return [self._card(i) for i in self._shown[lo:hi]]

    # ---- a large catalog: only the cards near the viewport are mounted ------------------
    @staticmethod
    def _spacer(css_id: str, height: int) -> Static:
        spacer = Static("", id=css_id, classes="models-spacer")
        spacer.styles.height = height
        return spacer

    def _heights(self) -> list[int]:
        """Each shown card's height: as laid out (mounted), as last laid out, else a
        collapsed card's."""
        out = []
        for i in self._shown:
            card = self._cards[i]
            h = card.virtual_region_with_margin.height if card and self._mounted(card) else 0
            if h:
                self._height[i] = h
                if card is not None and card.collapsed:
                    self._card_height = h
            else:
                h = self._height.get(i, self._card_height)
            out.append(h)
        return out

    def _spare(self, lo: int, hi: int, heights: list[int] | None = None) -> int:
        """Rows the unmounted cards ``lo:hi`` of the tab take."""
        if heights is not None:
            return sum(heights[lo:hi])
        return sum(self._height.get(i, self._card_height) for i in self._shown[lo:hi])

    @staticmethod
    def _mounted(card: ModelCard) -> bool:
        return card.parent is not None and card.is_attached

    def _wanted_window(self) -> tuple[int, int] | None:
        """The window the viewport needs now, or None while the mounted one still covers it
        with half a margin to spare (no work on most scrolls)."""
        n = len(self._shown)
        model_list = self.query_one("#model-list", ModelList)
        top = model_list.scroll_y
        bottom = top + max(model_list.size.height, 1)
        heights = self._heights()
        first, last, y = n, 0, 0
        for i, h in enumerate(heights):
            if y + h > top and first == n:
                first = i
            if y < bottom:
                last = i
            y += h
        first = min(first, last)
        m = self.WINDOW_MARGIN
        lo, hi = max(0, first - m), min(n, last + 1 + m)
        if (
            self._lo <= max(0, first - m // 2)
            and self._hi >= min(n, last + 1 + m // 2)
            and self._hi - self._lo <= (last - first + 1) + 4 * m
        ):
            return None
        return lo, hi

    def _check_window(self, *_args: object) -> None:
        """After a scroll or a resize: keep the cards near the viewport mounted."""
        if self.is_attached and self._shown and not self._windowing:
            if self._wanted_window() is not None:
                self.call_next(self._apply_window)
        elif self._windowing:
            self._window_dirty = True

    async def _apply_window(self, want: tuple[int, int] | None = None) -> None:
        """Move the window (one change at a time: a card leaves the DOM before it may come
        back)."""
        if self._windowing:
            self._window_dirty = True
            return
        self._windowing = True
        try:
            while self.is_attached:
                self._window_dirty = False
                target = want or self._wanted_window()
                want = None
                if target is not None:
                    await self._set_window(*target)
                if not self._window_dirty:
                    break
        finally:
            self._windowing = False

    async def _set_window(self, lo: int, hi: int) -> None:
        """Mount the tab's cards ``lo:hi`` (and only those), spacers standing for the rest;
        the scroll offset is corrected by what the cards that came in above the viewport
        took beyond their estimated heights, so what is on screen does not move."""
        model_list = self.query_one("#model-list", ModelList)
        heights = self._heights()
        old = [c for i in self._shown[self._lo : self._hi] if (c := self._cards[i]) is not None]
        new = self._window_cards(lo, hi)
        keep = {id(c) for c in new}
        leaving = [c for c in old if id(c) not in keep or not self._mounted(c)]
        mounted = [c for c in new if self._mounted(c) and c not in leaving]
        entering = [c for c in new if not self._mounted(c) or c in leaving]
        first_kept = mounted[0] if mounted else None
        above = [
            c for c in entering if first_kept is not None and new.index(c) < new.index(first_kept)
        ]
        below = [c for c in entering if c not in above]
        focused = self.focused_card()
        if focused is not None and focused in leaving and mounted:
            self.set_focus(mounted[0].title_widget, scroll_visible=False)
        events = self._merged_events()
        active = self.core.settings.settings.active_model_id
        for card in entering:
            self._sync_card(card, events, active)
        self._lo, self._hi = lo, hi
        at = {i: j for j, i in enumerate(self._shown)}
        estimated_above = sum(heights[at[self._index[c.model.id]]] for c in above)
        with self.app.batch_update():
            if leaving:
                await model_list.remove_children(leaving)
            self.query_one("#models-above").styles.height = self._spare(0, lo, heights)
            self.query_one("#models-below").styles.height = self._spare(
                hi, len(self._shown), heights
            )
            if above:
                await model_list.mount_all(above, after="#models-above")
            if below:
                await model_list.mount_all(below, before="#models-below")
        if above:
            self.call_after_refresh(self._correct_scroll, above, estimated_above)

    def _correct_scroll(self, above: list[ModelCard], estimated: int) -> None:
        actual = sum(c.virtual_region_with_margin.height for c in above if self._mounted(c))
        if actual and actual != estimated:
            model_list = self.query_one("#model-list", ModelList)
            model_list.scroll_to(
                y=model_list.scroll_y + actual - estimated, animate=False, immediate=True
            )

    async def _wait_window(self) -> None:
        """Until no window change is in flight (bounded: one is a remove and a mount)."""
        for _ in range(250):
            if not self._windowing:
                return
            await asyncio.sleep(0.02)

    def _reveal(self, card: ModelCard, then: Any) -> None:
        """Mount the window around ``card`` (a card of the tab not mounted), then ``then()``
        after the refresh (not if the card did not come: another tab was chosen meanwhile)."""

        async def go() -> None:
            await self._wait_window()
            index = self._index[card.model.id]
            if index not in self._shown_ids:
                return
            k = self._shown.index(index)
            m = self.WINDOW_MARGIN
            await self._apply_window((max(0, k - m), min(len(self._shown), k + m + 1)))
            if self._mounted(card):
                self.call_after_refresh(then)

        self.call_next(go)

    def rows_for(self, key: str) -> list[Row]:
        return [row for card in self.cards for row in card.rows if row.key == key]

    # ---- lifecycle -------------------------------------------------------------------
    def _shared_with(self, model_id: str, component: Any) -> list[str]:
        """Names of the other models that list one of ``component``'s files (one copy on
        disk serves them all). The index is built on the first call (a card body built)."""
        from distill_tui.safepaths import file_key

        if self._users is None:
            users: dict[str, list[str]] = {}
            for m in self.core.catalog.models:
                for _r, _q, f in m.files():
                    ids = users.setdefault(file_key(f.file), [])
                    if m.id not in ids:
                        ids.append(m.id)
            self._users = users
        others: list[str] = []
        for _q, f in component.files():
            for mid in self._users.get(file_key(f.file), []):
                if mid != model_id and mid not in others:
                    others.append(mid)
        return [self._model_name(mid) for mid in others]

    def on_mount(self) -> None:
        self.query_one("#models-empty").display = False
        app = self.distill
        app.download_signal.subscribe(self, self._on_download_event, immediate=True)
        self._scan_import_dirs()
        self.set_interval(1.0, self._poll_elsewhere)
        self.call_after_refresh(self._poll_elsewhere)
        app.settings_signal.subscribe(self, self._on_settings_changed, immediate=True)
        app.machine_changed.subscribe(self, lambda _m: self.sync_all())  # fit marks: the GPU
        model_list = self.query_one("#model-list", ModelList)
        self.watch(model_list, "scroll_y", self._check_window, init=False)
        self.call_after_refresh(self._check_window)  # the margin, after the first paint
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

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._check_window)

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
        card = self.card_of(model_id)
        if card is None:
            return
        if self._index[model_id] not in self._shown_ids:  # another tab: "All Models" shows it
            self.query_one("#model-tabs", Tabs).active = ALL_TAB
            self._show_tab(None)
        if not self._mounted(card):  # outside the window: mount the cards around it first
            self._reveal(card, partial(self.show_model, model_id))
            return
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
        settings = self.core.settings.settings
        self._synced_settings = settings
        active = settings.active_model_id
        events = self._merged_events()
        for card in self._cards:
            if card is not None and self._mounted(card):  # (the others: as they mount)
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
            active=mid == active or mid == core.settings.settings.active_upscaler_id,
        )
        if card.built:
            self._apply_found(card)
        if became_ready:
            tail = " · F2 to generate" if mid == active else ""
            self.app.notify(f"{card.model.name} is ready{tail}.", title="Ready")

    def _body_built(self, card: ModelCard) -> None:
        """A card expanded for the first time: its new rows take the facts before they are
        first drawn; local copies of its files are looked for (the rows' hints)."""
        self._sync_card(card, self._merged_events(), self.core.settings.settings.active_model_id)
        if self._scan_ready:
            self._scan_import_dirs(card)

    def _apply_fit(self, card: ModelCard) -> None:
        """Fit marks on the card's quant rows and header, and its best set, for the GPU the
        app knows (memory_model); a machine without a GPU shows none (RAM is the limit)."""
        from distill_tui import memory_model as mm

        budget = mm.gpu_budget(self.distill.machine)
        settings = self.core.settings.settings
        fits = None
        if budget is not None and card.model.quant_roles:
            w, h = mm.generation_size(settings, card.model)
            try:
                fits = mm.card_fits(
                    card.model,
                    self.core.settings.selection(card.model.id),
                    budget=budget,
                    width=w,
                    height=h,
                    knobs=mm.knobs_from_settings(settings),
                )
            except (KeyError, ValueError):  # a family the memory model has no formula for
                log.debug("no fit for %s", card.model.id, exc_info=True)
        card.best_set = fits.best if fits else None
        card.fit_header = fits.header if fits else None
        for qset in card.sets.values():
            for row in qset.rows:
                fit = fits.rows.get(row.key) if fits else None
                row.set_fit(fit_mark(fit) if fit is not None else None)

    def _apply_found(self, card: ModelCard) -> None:
        """The "found in the HF cache — enter to link" hint on a not-downloaded row whose file has a
        same-size copy on this machine: read from what the last look found (no disk here)."""
        gone = self._gone
        for row in card.rows:
            row.set_found(self._found.get(row.key) if row.state == "missing" else None)
            row.set_gone(gone.get(row.key) if row.state == "missing" else None)

    def _scan_import_dirs(self, card: ModelCard | None = None) -> None:
        """Look for local copies of the files of the cards with rows (the HF cache, the
        import_dirs folders) on a thread, bounded (localreuse: a few stats per file, a bounded
        folder walk); the rows' hints follow when it is done. ``card``: that card's files
        only (its body was just built). Only rows show the hints: a catalog of hundreds of
        models is not looked up file by file (thousands of stats on every visit)."""
        self._scan_ready = True
        dirs = tuple(self.core.settings.settings.import_dirs)
        cards = [card] if card is not None else [c for c in self.cards if c.built]
        self.run_worker(
            self._look_for_local_copies(dirs, cards, merge=card is not None),
            group="import-dirs-card" if card is not None else "import-dirs",
            exclusive=card is None,
            exit_on_error=False,
        )

    async def _look_for_local_copies(
        self, dirs: tuple[str, ...], cards: list[ModelCard], *, merge: bool = False
    ) -> None:
        from distill_tui.downloads import localreuse as lr

        skip = self.core.inventory.models_dir
        files = {f.file: f for c in cards for _c, _q, f in c.model.files()}
        inv = self.core.inventory
        gone: dict[str, str] = {}
        known = self._folder_index if merge and self._folder_dirs == dirs else None

        def look() -> tuple[Any, dict[str, str]]:
            index = known or (lr.FolderIndex(dirs, skip=skip) if dirs else None)
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

        index, found = await asyncio.to_thread(look)
        self._folder_index, self._folder_dirs = index, dirs
        if merge:
            self._found.update(found)
            self._gone.update(gone)
        else:
            self._found, self._gone = found, gone
        if self.is_attached:
            for card in cards if merge else self.cards:
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
            cards = [c for c in self.cards if event.key in c.keys and self._mounted(c)]
            if cards:
                events = self._merged_events()
                for card in cards:
                    card.sync_progress(events)

    def _model_name(self, model_id: str) -> str:
        model = self.core.catalog.get(model_id)
        return model.name if model is not None else model_id

    @on(SettingsChanged)
    def _settings_changed(self) -> None:
        # (a choice made here was drawn already: the settings are the ones last synced)
        if self.core.settings.settings is not self._synced_settings:
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
        label = COMPONENT_LABELS.get(row.component, row.component)
        if isinstance(row, QuantRow):
            return f"{name} {label} {row.quant_id}"
        return f"{name} {label}"

    def on_descendant_focus(self, _event: events.DescendantFocus) -> None:
        card = self.focused_card()
        if card is not self._tinted:
            if self._tinted is not None:
                self._tinted.set_focus_within(False)
            if card is not None:
                card.set_focus_within(True)
            self._tinted = card
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show d / x / r / del in the footer only where they can act (at 80 columns the
        footer has no room for keys that would do nothing here)."""
        if action == "activate":
            card = self.focused_card()
            return card is not None and card.model.type == "upscaler"
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
    def action_next_tab(self) -> None:
        """``]`` / ``[``: the tabs from anywhere on the screen (lazygit's keys), not only from
        the tab bar once it is focused."""
        self.query_one("#model-tabs", Tabs).action_next_tab()

    def action_previous_tab(self) -> None:
        self.query_one("#model-tabs", Tabs).action_previous_tab()

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
        index = self._index.get(card.model.id)
        if index not in self._shown_ids:
            return None
        shown = self._shown

        def stops(c: ModelCard) -> list[Widget]:
            return [c.title_widget, *c.stops()]

        mine = stops(card)
        if focused not in mine:
            return None
        i = mine.index(focused) + step
        if 0 <= i < len(mine):
            target = mine[i]
        else:
            k = shown.index(index) + step
            if not 0 <= k < len(shown):
                return None
            nxt = self._card(shown[k])
            if not self._mounted(nxt):  # past the window (keys faster than scrolling)
                self._reveal(nxt, lambda: self.set_focus(stops(nxt)[0 if step > 0 else -1]))
                return focused
            near = stops(nxt)
            target = near[0] if step > 0 else near[-1]
        if not target.focusable:
            return None
        self.set_focus(target)
        return target

    @on(Tabs.TabActivated, "#model-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        wanted = next((t for tid, _l, t in self._categories if tid == event.tab.id), None)
        self._show_tab(wanted)

    def _show_tab(self, wanted: str | None) -> None:
        """The cards of one model type (None: all), from the top: the window over them is
        mounted anew (the cards both tabs show stay mounted)."""
        shown = [i for i, m in enumerate(self._models) if wanted is None or m.type == wanted]
        if shown == self._shown:
            return
        self._shown, self._shown_ids = shown, set(shown)
        for i, card in enumerate(self._cards):
            if card is not None:
                card.display = i in self._shown_ids
        self.query_one("#models-empty").display = not shown
        self._lo, self._hi = 0, min(len(shown), self.FIRST_CARDS)
        # after the next frame: the tab bar answers the key first, the cards follow
        self.call_after_refresh(self._remount, self._window_cards(self._lo, self._hi))

    async def _remount(self, new: list[ModelCard]) -> None:
        """Exactly ``new`` mounted (in order), the view at the top."""
        await self._wait_window()
        if not self.is_attached:
            return
        self._windowing = True
        try:
            model_list = self.query_one("#model-list", ModelList)
            wanted = {id(c) for c in new}
            mounted = [c for c in self.cards if self._mounted(c)]
            stay = {id(c) for c in mounted if id(c) in wanted}
            events = self._merged_events()
            active = self.core.settings.settings.active_model_id
            with self.app.batch_update():
                leaving = [c for c in mounted if id(c) not in wanted]
                if leaving:
                    await model_list.remove_children(leaving)
                run: list[ModelCard] = []
                for card in new:
                    if id(card) in stay:
                        if run:
                            await model_list.mount_all(run, before=card)
                            run = []
                    else:
                        self._sync_card(card, events, active)
                        run.append(card)
                if run:
                    await model_list.mount_all(run, before="#models-below")
                self.query_one("#models-above").styles.height = 0
                self.query_one("#models-below").styles.height = self._spare(
                    self._hi, len(self._shown)
                )
                model_list.scroll_to(y=0, animate=False, immediate=True)
        finally:
            self._windowing = False
        self.call_after_refresh(self._check_window)  # the margin (and a scroll meanwhile)

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
        card = self.card_of(model.id)
        if card is not None and not self._mounted(card):  # (the set that fits: its best set)
            self._apply_fit(card)
        selection = self.core.settings.selection(model.id)
        files: list[tuple[str, str | None, Any]]
        if recommended:
            files = [
                (c.role, None, c.file)
                if c.file is not None
                else (c.role, model.default_quant(c.role), c.get(model.default_quant(c.role)))
                for c in model.components
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

    # ---- the active upscaler ---------------------------------------------------------
    def action_activate(self) -> None:
        """a on an upscaler's card: the one `distill upscale` and the Gallery's u use."""
        card = self.focused_card()
        if card is None or card.model.type != "upscaler":
            self.notify("Move to an upscaler's card to make it the active one.", title="Use")
            return
        settings = self.core.settings
        if not settings.update(active_upscaler_id=card.model.id):
            self.distill.report_failure(
                "Active upscaler not saved",
                settings.read_only_reason or "settings.json not written",
            )
        else:
            tail = "" if card.ready else " (download it: d on the header)"
            self.notify(f"{card.model.name} is the active upscaler{tail}.", title="Upscaler")
        self.sync_all()

    # ---- removal ---------------------------------------------------------------------
    def action_remove_file(self) -> None:
        """del: the same rules as `distill models remove` (distill_tui/removal.py)."""
        from distill_tui.removal import plan_removal, shared_users

        row = self.focused_row()
        if row is None or row.state != "done":
            what = "Move to a downloaded file" if row is None else "Only a downloaded file"
            self.notify(f"{what} to remove it (del).", title="Remove")
            return
        core = self.core
        model = core.catalog.get(row.model_id)
        assert model is not None
        item = (row.component, getattr(row, "quant_id", None))
        # a file other models use too (the VAE, a shared text encoder quant): removing it is
        # asked, naming them (the active quant stays refused)
        users = shared_users(core, model, row.key)
        plan = plan_removal(core, model.id, [item], force_shared=bool(users))
        if not plan.targets:
            mine = model.id == core.settings.settings.active_model_id
            if plan.kept and isinstance(row, QuantRow) and mine:  # the active model's quant
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
        size = plan.size or row.file.size
        body = f"Delete {row.key} ({human_size(size)}) from the models folder?"
        if users:
            names = ", ".join(m.name for m in users)
            label = COMPONENT_LABELS.get(row.component, row.component)
            body += f"\nThe {label} is shared: {names} will not be Ready without it."
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
