"""One model of the catalog as a collapsible card.

Header: name, readiness badge (Ready / Setup Required), size of the selected set, description.
Body: a storage line, then one section per component of the model, in catalog order (catalog
v3): a component with quants is a QuantRadioSet (Diffusion Model, Text Encoder), a component
of one file is one file row (VAE, Upscaler). A component whose files other models use too
says so in its title ("shared with Z-Image-Turbo"). The card only draws state; the screen feeds it facts (inventory, settings,
download events) and handles the keys, so collapsing a card never touches a download.

The body is built when the card first expands, not before: a collapsed card is its header
alone (two widgets). A catalog of hundreds of models then mounts hundreds of headers, not
thousands of rows (bench/model_manager_scale.py: 300 models). What the header and the
screen's header keys need (each file's state) comes from the facts, not from rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Collapsible, Static

from distill_tui.catalog import COMPONENT_LABELS, CatalogModel, Component
from distill_tui.downloads.events import Elsewhere
from distill_tui.formatting import human_size
from distill_tui.inventory import Inventory
from distill_tui.settings import QuantSelection
from distill_tui.textsafe import escape_markup, visible
from distill_tui.widgets.card_title import CardTitle
from distill_tui.widgets.file_row import FileRow
from distill_tui.widgets.file_status import ACTIVE_STATES, row_state, state_name
from distill_tui.widgets.quant_radio_set import QuantRadioSet
from distill_tui.widgets.quant_row import QuantRow


def same_content(a: Content | None, b: Content | None) -> bool:
    """Same text and same styles (``Content.__eq__`` looks at the text only)."""
    if a is None or b is None:
        return a is b
    return a.plain == b.plain and list(a.spans) == list(b.spans)


@lru_cache(maxsize=4096)
def _markup(text: str) -> Content:
    """``Content.from_markup`` of our own markup (no variables), parsed once per text: a sync
    redraws hundreds of card headers from a handful of different strings. (Content is
    immutable: sharing one is safe.)"""
    return Content.from_markup(text)


def css_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


class ModelCard(Collapsible, inherit_css=False):
    """A model card. ``rows`` lists every file row (quant rows and single-file rows).

    Collapsible's CSS is not inherited: its ``:focus-within`` rule restyles the whole card
    (every row) whenever the focus moves, inside the card too (tens of ms a key). The same
    tint is a ``-focus-within`` class the screen sets on the card the focus enters, and
    restyles that card alone (:meth:`set_focus_within`)."""

    DEFAULT_CSS = """
    ModelCard {
        width: 1fr;
        height: auto;
        background: $surface;
        &.-focus-within {
            background-tint: $foreground 5%;
        }
        &:ansi {
            background: $panel;
        }
    }
    """

    def __init__(self, model: CatalogModel, *, collapsed: bool = True) -> None:
        name = Content(visible(model.name))  # catalog text: never markup, controls shown
        super().__init__(
            title=name,  # type: ignore[arg-type]  # Content renders as the title, unparsed
            collapsed=collapsed,
            id=f"card-{css_id(model.id)}",
            classes="model-card",
        )
        self.model = model
        # Replace the stock title with ours (space and arrow keys).
        self._title = CardTitle(
            label=name, collapsed_symbol="▶", expanded_symbol="▼", collapsed=collapsed
        )
        self.ready = False
        labels = [q.label for c in model.components for q in c.quants or ()]
        self._label_width = max((len(x) for x in labels), default=5)
        #: the body's widgets, built on the first expansion (:meth:`_build_body`): a radio
        #: set per component with quants, a file row per single-file component (by role)
        self.sets: dict[str, QuantRadioSet] = {}
        self.file_rows: dict[str, FileRow] = {}
        self._built = False
        self.storage: Static | None = None
        #: component -> names of the other models that list one of its files (set by the
        #: screen: "shared with Z-Image-Turbo" in the section's title)
        self.shared_with: Callable[[Component], list[str]] = lambda _c: []
        #: called (by the card) once a body was built after mount, so the screen feeds the new
        #: rows their facts (fit marks, local copies) before they are first drawn
        self.on_body_built: Callable[[ModelCard], None] | None = None
        #: set by the screen when a GPU is known: the best set that fits ({component: quant
        #: id}, used where nothing is selected) and the fit of the set the header shows
        self.best_set: dict[str, str] | None = None
        self.fit_header: Any = None
        self._shown_title: Content | None = None
        self._shown_storage: Content | None = None
        #: the facts of the last :meth:`sync` (the file states of a card without a body)
        self._facts: tuple[Inventory, dict[str, Any]] | None = None
        #: the rest of the last sync's facts, for :meth:`sync_progress` (a tick redraws the
        #: header's set progress alone)
        self._title_facts: tuple[QuantSelection, bool] | None = None
        #: every file key of the model (which ticks concern this card)
        self.keys = frozenset(f.file for _c, _q, f in model.files())
        #: model id -> its name (set by the screen): "downloading for FLUX.2 Klein 4B" when
        #: another model downloads a file this card shares (the VAE)
        self.name_of: Callable[[str], str] = lambda mid: mid

    @property
    def built(self) -> bool:
        # (read by Collapsible's collapsed watcher while __init__ runs: not set yet)
        return getattr(self, "_built", False)

    def set_focus_within(self, on: bool) -> None:
        """Tint the card (the focus is inside it) or not: the card's own style changes, its
        rows only repaint (they draw on its background)."""
        if self.has_class("-focus-within") == on:
            return
        self.set_class(on, "-focus-within", update=False)
        if not self.is_attached:
            return
        self.app.stylesheet.update_nodes([self], animate=False)
        for widget in self.walk_children(with_self=True):
            widget.notify_style_update()  # (their cached styles hold the old background)
            widget.refresh()

    @property
    def vae_row(self) -> FileRow | None:
        """The VAE's file row (a body built, the model has a VAE)."""
        return self.file_rows.get("vae")

    def stops(self) -> list[Any]:
        """The body's focus stops in order (a radio set or a file row per component); none
        while the body is not built or the card is collapsed."""
        if not self.built or self.collapsed:
            return []
        return [
            self.sets.get(c.role) or self.file_rows[c.role]
            for c in self.model.components
            if c.role in self.sets or c.role in self.file_rows
        ]

    def _section_title(self, component: Component) -> Static:
        """The component's label; the name of a component with quants where it says more
        than the model's name ("Text Encoder (Qwen3-4B)"; a single file's row names the file);
        "shared with ..." where other models list its files."""
        title = Content.from_markup("[b]$name[/b]", name=component.label)
        name = component.name
        if component.has_quants and name and name != self.model.name:
            title = Content.assemble(title, Content.styled(f" ({visible(name)})", "bold"))
        others = self.shared_with(component)
        if others:
            shown = ", ".join(visible(n) for n in others[:3])
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            title = Content.assemble(
                title, Content.styled(f" · shared with {shown}{more}", "$text-muted")
            )
        return Static(title, classes="section-title")

    def _build_body(self) -> Collapsible.Contents:
        model = self.model
        widgets: list[Any] = []
        for comp in model.components:
            role = comp.role
            widgets.append(self._section_title(comp))
            if comp.has_quants:
                rows = [
                    QuantRow(model.id, role, q, label_width=self._label_width)
                    for q in comp.quants or ()
                ]
                for quant_row in rows:  # (RadioSet says so on mount, after the rows are
                    quant_row.can_focus = False  # styled: a stale :can-focus dimmed them)
                qset = QuantRadioSet(model.id, role, *rows, id=f"set-{css_id(model.id)}-{role}")
                self.sets[role] = qset
                widgets.append(qset)
            elif comp.file is not None:
                file_row = FileRow(
                    model.id,
                    role,
                    comp.file,
                    label=comp.file.file.rsplit("/", 1)[-1],
                    label_width=self._label_width + 2,
                )
                self.file_rows[role] = file_row
                widgets.append(file_row)
        self.storage = Static("", classes="card-storage")
        self._built = True
        return self.Contents(self.storage, *widgets)

    def compose(self) -> ComposeResult:
        yield self._title
        if not self.collapsed:
            body = self._build_body()
            if self.on_body_built is not None:
                self.on_body_built(self)  # the rows take their facts before their first frame
            yield body

    def _update_collapsed(self, collapsed: bool) -> None:
        """Show/hide the body by its display style instead of a ``-collapsed`` class on the
        card: a class change restyles every widget of the card (tens of ms for ~20 rows),
        a display change only relayouts. The first expansion after mount builds the body."""
        self._title.collapsed = collapsed
        if not collapsed and not self.built and self.is_mounted:
            body = self._build_body()
            if self.on_body_built is not None:
                self.on_body_built(self)  # the rows take their facts before their first frame
            self.mount(body)
            return
        for contents in self.query_children(Collapsible.Contents):
            contents.display = not collapsed

    # ---- rows ------------------------------------------------------------------------
    @property
    def rows(self) -> list[QuantRow | FileRow]:
        out: list[QuantRow | FileRow] = []
        for comp in self.model.components:
            if comp.role in self.sets:
                out.extend(self.sets[comp.role].rows)
            elif comp.role in self.file_rows:
                out.append(self.file_rows[comp.role])
        return out

    def file_states(self) -> list[tuple[str, str | None, Any, str]]:
        """(component, quant id, file, row state) of every file of the model, from the facts
        of the last sync: the same states the rows show, whether or not the body is built."""
        if self._facts is None:
            return []
        inventory, events = self._facts
        return [
            (component, qid, f, row_state(inventory.is_present(f.file), events.get(f.file)))
            for component, qid, f in self.model.files()
        ]

    @property
    def title_widget(self) -> CardTitle:
        return self._title  # type: ignore[return-value]

    # ---- state -----------------------------------------------------------------------
    def _license_mark(self) -> Content:
        """Weights that may not be used commercially say so before anything else."""
        lic = self.model.license
        if lic is None or lic.commercial is not False:
            return Content("")
        return Content.styled(f"Non-commercial use only ({lic.name}) · ", "bold $text-warning")

    def selected_set(self, sel: QuantSelection) -> tuple[list[tuple[str, str | None, Any]], bool]:
        """Files of the selected set (or the recommended set where nothing is selected).

        Returns ([(component, quant id, file)], True when nothing is selected at all)."""
        files: list[tuple[str, str | None, Any]] = []
        recommended = False
        for comp in self.model.components:
            if comp.file is not None:
                files.append((comp.role, None, comp.file))
                continue
            qid = sel.get(comp.role)
            quant = comp.get(qid) if qid else None
            if quant is None and self.best_set:
                quant = comp.get(self.best_set.get(comp.role, ""))
            if quant is None:
                quant = comp.get(self.model.default_quant(comp.role))
            assert quant is not None
            files.append((comp.role, quant.id, quant))
        recommended = all(sel.get(role) is None for role in self.model.quant_roles)
        return files, recommended

    def sync(
        self,
        *,
        inventory: Inventory,
        selection: QuantSelection,
        events: dict[str, Any],
        ready: bool,
        active: bool,
    ) -> None:
        """Redraw header, storage line and rows from the facts (the header alone while the
        body is not built)."""
        self._facts = (inventory, events)
        for row in self.rows:
            row.set_status(
                inventory.is_present(row.key),
                events.get(row.key),
                unverified=inventory.is_unverified(row.key),
            )
        for component, qset in self.sets.items():
            qset.show_pressed(selection.get(component))
        self.ready = ready
        self._title_facts = (selection, active)
        # before mount (the screen syncs each header as it composes it): styled when mounted
        self.set_class(ready, "-ready", update=self.is_mounted)
        self.set_class(not ready, "-setup-required", update=self.is_mounted)
        files, recommended = self.selected_set(selection)
        which = self._sync_title(inventory, selection, events, active)
        if self.storage is None:
            return
        to_get = sum(f.size for _c, _q, f in files if not inventory.is_present(f.file))
        on_disk = inventory.model_usage(self.model)
        if to_get:
            need = f"[$text-warning]{human_size(to_get)} to download[/] ({which}: d on the header)"
        else:
            need = f"[$text-success]{which} on disk[/]"
        storage = _markup(f"On disk {human_size(on_disk)} · {need}")
        if not same_content(storage, self._shown_storage):
            self._shown_storage = storage
            self.storage.update(storage)

    def sync_progress(self, events: dict[str, Any]) -> None:
        """A progress tick of one of this card's files: the header's set progress (relabelled
        only when its words change: a whole percent, a second of ETA)."""
        if self._facts is None or self._title_facts is None:
            return
        inventory = self._facts[0]
        self._facts = (inventory, events)
        selection, active = self._title_facts
        self._sync_title(inventory, selection, events, active)

    def set_progress(self, inventory: Inventory, selection: QuantSelection, events: dict[str, Any]):
        """The progress of the set this card downloads (issue 22.11), or None while none of
        this model's files is queued or moving: the selected set, and any other file of the
        model in flight (a quant downloaded from its row)."""
        from distill_tui.downloads.setprogress import set_progress

        files, _recommended = self.selected_set(selection)
        mine = [
            f
            for _c, _q, f in self.model.files()
            if state_name(ev := events.get(f.file)) in ACTIVE_STATES
            and getattr(ev, "model_id", self.model.id) == self.model.id
        ]
        if not mine:
            return None
        keys = {f.file for _c, _q, f in files}
        files_all = [f for _c, _q, f in files] + [f for f in mine if f.file not in keys]
        if len(files_all) < 2:
            return None
        return set_progress(
            (f.size, inventory.is_present(f.file), events.get(f.file)) for f in files_all
        )

    def _sync_title(
        self,
        inventory: Inventory,
        selection: QuantSelection,
        events: dict[str, Any],
        active: bool,
    ) -> str:
        ready = self.ready
        files, recommended = self.selected_set(selection)
        set_size = sum(f.size for _c, _q, f in files)
        badge = (
            "[b $background on $success] Ready [/]"
            if ready
            else "[b $background on $warning] Setup Required [/]"
        )
        which = "selected set"
        if recommended:
            which = "set that fits" if self.best_set else "recommended set"
        fit_text = ""
        if self.fit_header is not None:  # a GPU is known (file_status.fit_mark's words)
            f = self.fit_header
            word = {"fits": "$text-success", "knobs": "$text-warning"}.get(f.level, "$text-error")
            fit_text = f" [{word}]· {escape_markup(f.short())}[/]"
        active_mark = " [$text-accent]· active[/]" if active else ""
        # Downloads in flight stay visible on a collapsed card. A count, not a percentage:
        # it changes with states only, so progress ticks never relabel (relayout) the card.
        # A file this model shares (the VAE) that another model's set downloads is said as
        # such, not as this card's "1 queued" (issue 22.13)
        states: list[str] = []
        for_other: dict[str, tuple[list[str], bool]] = {}
        for component, _q, f, state in self.file_states():
            owner = getattr(events.get(f.file), "model_id", None)
            if state in ACTIVE_STATES and owner and owner != self.model.id:
                labels, moving_for = for_other.get(owner, ([], False))
                labels.append(COMPONENT_LABELS.get(component, component))
                for_other[owner] = (labels, moving_for or state != "queued")
            else:
                states.append(state)
        queued = states.count("queued")
        moving = sum(1 for st in states if st in ACTIVE_STATES) - queued
        parts = [f"{moving} downloading"] if moving else []
        parts += [f"{queued} queued"] if queued else []
        sp = self.set_progress(inventory, selection, events)
        busy = ", ".join(parts) + (f" · {escape_markup(sp.short())}" if sp is not None else "")
        busy_mark = f" [b $text-accent]· ⇣ {busy}[/]" if parts else ""
        for owner, (labels, moving_for) in for_other.items():
            busy_mark += (
                f" [$text-accent]· ⇣ {escape_markup(', '.join(labels))} "
                f"{'downloading' if moving_for else 'queued'} for "
                f"{escape_markup(visible(self.name_of(owner)))}[/]"
            )
        # partials nobody works on (a stopped download, any quant): said on a collapsed card
        # too, so they are found; d on the row resumes exactly that file
        idle = sum(
            1
            for _c, _q, f, state in self.file_states()
            if state == "paused"
            and isinstance(ev := events.get(f.file), Elsewhere)
            and ev.partial_only
        )
        if idle:
            busy_mark += f" [$text-warning]· {idle} partial (d on its row resumes)[/]"
        title = Content.assemble(
            Content.styled(visible(self.model.name), "bold"),
            " ",
            _markup(badge),
            _markup(
                f"{active_mark}{busy_mark} [$text-muted]· {which} {human_size(set_size)}[/]"
                f"{fit_text}"
            ),
            "\n",
            self._license_mark(),
            Content.styled(visible(self.model.description), "$text-muted"),
        )
        # A relabel relayouts the card: only on a change. (Content's == compares the text
        # alone, so the spans are compared too.)
        if not same_content(title, self._shown_title):
            self._shown_title = title
            self._title.label = title
        return which
