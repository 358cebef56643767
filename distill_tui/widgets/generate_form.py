"""GenerateForm: the Generate screen's form - model, prompt, parameters, the advanced section -
built from one field table, read with :meth:`GenerateForm.to_request` and filled with
:meth:`GenerateForm.load`.

Every field is one :class:`Text`, :class:`Choice` or :class:`Flag` entry in ``FIELDS``: its
label (the name its error line starts with), its check, and how it is written from a
:class:`~distill_tui.generation.GenParams`. ``ROWS`` and ``ADVANCED_ROWS`` lay the fields out,
one line each. Composing, validating, reading and loading all walk the same table, so a new
field is one entry and one place in a row.

The advanced section (engine knobs, img2img, LoRAs) is collapsed until asked for, and its
widgets are mounted only when it first opens: ~30 widgets that nobody sees at start-up no
longer cost the first paint their compose, styling and layout (~0.1 s on a 2-core box).
Until then its values live in ``_pending`` and are read, checked and loaded from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Checkbox, Collapsible, Input, Label, Select, Static, TextArea

from distill_tui.bounds import THRESHOLD_CACHE_MODES, seed_problem, text_problem
from distill_tui.generation import (
    SIZE_PRESETS,
    EngineKnobs,
    GenParams,
    check_seed,
    check_size,
    check_threads,
)
from distill_tui.loras import LoraError, format_lora_list, parse_lora_list, scan_loras, split_paths
from distill_tui.recipe import (
    AUTO_WORD,
    BY_NAME,
    FEATURE_ROWS,
    PARAMS,
    UPSCALE_ACTIVE,
    Param,
    Recipe,
    feature_refused,
)
from distill_tui.recipe import KNOBS as RECIPE_KNOBS
from distill_tui.textsafe import visible
from distill_tui.widgets.gen_progress import GenProgress
from distill_tui.widgets.model_select import ModelSelect

if TYPE_CHECKING:
    from textual.widget import AwaitMount

    from distill_tui.catalog import CatalogModel
    from distill_tui.context import CoreContext

ADVANCED_TITLE = "Advanced: engine · img2img · LoRA  ^n"


class ReasonValidator(Validator):
    """Wraps a ``check_*`` function (text -> reason or None) into a Textual validator."""

    def __init__(self, label: str, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.label = label
        self.check = check

    def validate(self, value: str) -> ValidationResult:
        reason = self.check(value)
        return self.success() if reason is None else self.failure(f"{self.label}: {reason}")


# ---- the field table -------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """An Input. ``text``: its value for a request's params and knobs."""

    label: str
    text: Callable[[GenParams, EngineKnobs], str]
    check: Callable[[str], str | None] | None = None
    classes: str = ""
    placeholder: str = ""


@dataclass(frozen=True)
class Choice:
    """A Select. ``choices``: the fixed options (None: filled at run time, e.g. LoRA files);
    ``value``: its value for a request (None: a picker with no value of its own)."""

    label: str
    choices: tuple[str, ...] | None
    value: Callable[[GenParams], str] | None = None
    prompt: str = "Select"


@dataclass(frozen=True)
class Flag:
    """A Checkbox for one engine knob. ``value``: its value for a request's params and
    knobs."""

    label: str
    value: Callable[[GenParams, EngineKnobs], bool]


Field = Text | Choice | Flag


def _pick(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else allowed[0]


#: what an empty field shows (by recipe.PARAMS name)
_PLACEHOLDERS = {
    "negative_prompt": "(optional)",
    "seed": "random",
    "n_threads": "auto",
    "ref_images": "(optional) images to edit: a.png; b.png",
    "init_image": "(optional) init image",
    "loras": "name:0.8; other",
    # the engine's own default (None), or off
    "cache_threshold": AUTO_WORD,
    "flow_shift": AUTO_WORD,
    "max_vram": "off",
}
#: the checks that read more than the bound (empty = random / auto)
_CHECKS: dict[str, Callable[[str], str | None]] = {
    "seed": check_seed,
    "n_threads": check_threads,
    "width": check_size,
    "height": check_size,
}


def _shown(p: Param, value: Any) -> str | bool:
    """A recipe value as its field shows it."""
    if p.kind == "bool":
        return bool(value)
    if p.name == "seed":  # -1: random, an empty field
        return "" if value < 0 else str(value)
    if p.name == "n_threads":  # <= 0: auto, an empty field
        return "" if value <= 0 else str(value)
    if p.kind == "float":
        if value is None or (value == p.default and p.name in _PLACEHOLDERS):
            return ""  # the placeholder says what it is (auto, off)
        return f"{value:g}"
    if p.kind == "paths":
        return "; ".join(value)
    if p.kind == "loras":
        return format_lora_list(value)
    if p.kind == "choice":
        return _pick(str(value), p.choices or ())
    return "" if value is None else str(value)


def _read(p: Param, text: str | bool) -> Any:
    """A field's (checked) text as the recipe value."""
    if p.kind == "bool":
        return bool(text)
    if p.name == "upscaler":  # a switch: the active upscaler (the form keeps a reused id)
        return UPSCALE_ACTIVE if text else ""
    t = str(text).strip()
    if p.name in ("seed", "n_threads"):
        return -1 if t in ("", "-1", "random", "auto") else int(t)
    if p.kind == "int":
        return int(t)
    if p.kind == "float":
        return float(t) if t and t.lower() != _PLACEHOLDERS.get(p.name) else p.default
    if p.kind == "paths":
        return tuple(str(Path(r).expanduser()) for r in split_paths(t))
    if p.kind == "path":
        return str(Path(t).expanduser()) if t else ""
    if p.kind == "loras":
        return tuple(parse_lora_list(t))
    if p.kind == "text":
        return str(text)
    return t


def _optional_problem(p: Param, text: str) -> str | None:
    """A field whose empty value means something (its placeholder: auto, off): empty or that
    word is fine, else the row's bound."""
    t = text.strip()
    if not t or t.lower() == _PLACEHOLDERS[p.name]:
        return None
    return text_problem(p.name, t)


def _field(p: Param) -> Field:
    """The field of one recipe.PARAMS row."""
    if p.kind == "bool" or p.name == "upscaler":  # upscaler: on (an id) or off ("")
        return Flag(p.short, partial(_flag_of, p))
    if p.kind == "choice":
        return Choice(p.short, p.choices, partial(_value_of, p))
    check = _CHECKS.get(p.name)
    if check is None and p.bound is not None:
        optional = p.kind == "float" and p.name in _PLACEHOLDERS
        check = partial(_optional_problem if optional else _bound_problem, p)
    classes = "seed" if p.name == "seed" else "num" if p.kind in ("int", "float") else ""
    return Text(
        p.short, partial(_text_of, p), check, classes, placeholder=_PLACEHOLDERS.get(p.name, "")
    )


def _text_of(p: Param, params: GenParams, knobs: EngineKnobs) -> str:
    return str(_shown(p, _recipe(params, knobs)[p.name]))


def _value_of(p: Param, params: GenParams) -> str:
    return str(_shown(p, params.recipe()[p.name]))


def _flag_of(p: Param, params: GenParams, knobs: EngineKnobs) -> bool:
    return bool(_recipe(params, knobs)[p.name])


def _bound_problem(p: Param, text: str) -> str | None:
    return text_problem(p.name, text)


def _recipe(params: GenParams, knobs: EngineKnobs) -> Recipe:
    return params.recipe(knobs) if params.knobs is None else params.recipe()


#: the form's fields: one per recipe.PARAMS row shown (``form`` main / advanced; the prompt is
#: its own TextArea), and the two pickers that fill others
_SHOWN = {p.form_id: p for p in PARAMS if p.form != "hidden" and p.form_id not in ("", "prompt")}
FIELDS: dict[str, Field] = {
    field_id: _field(p) for field_id, p in _SHOWN.items() if field_id not in ("loras",)
}
FIELDS["size-preset"] = Choice("Size", tuple(f"{w}x{h}" for w, h in SIZE_PRESETS), prompt="preset")
FIELDS["lora-pick"] = Choice("LoRA", None, prompt="add from the LoRA folder")
FIELDS["loras"] = _field(BY_NAME["loras"])

#: the fields a model may not have: field id -> the family feature it needs (families.FEATURES;
#: ``CatalogModel.has_feature``). A model without the feature hides the field's row and sends
#: the row's default (Z-Image: no edit references). The negative prompt stays for every model:
#: sd.cpp encodes it whenever CFG is not 1 (stable-diffusion.cpp: ``txt_cfg != 1`` ->
#: ``use_uncond``), distilled Klein's too, and the form lets CFG be raised.
FEATURE_FIELDS: dict[str, str] = {
    "ref-image": "edit_refs",
    "init-image": "img2img",
    "strength": "img2img",
}


#: the picture's rows a model sets (its family's defaults, its catalog entry's recommended)
MODEL_ROWS = ("width", "height", "steps", "cfg_scale", "sampler", "scheduler", "flow_shift")


def absent_fields(model: CatalogModel | None) -> frozenset[str]:
    """The field ids ``model`` has no use for (None: every field is shown)."""
    if model is None:
        return frozenset()
    return frozenset(f for f, feature in FEATURE_FIELDS.items() if not model.has_feature(feature))


#: a row: its label (None: none) and its items - a field id, ("label", text) for an inline
#: label, ("times", text) for the "x" between sizes, ("hint", text) for a hint after the fields
Row = tuple[str | None, tuple[str | tuple[str, str], ...]]
ROWS: tuple[Row, ...] = (
    ("Negative", ("negative-prompt",)),
    ("Size", ("width", ("times", "x"), "height", "size-preset")),
    ("Steps", ("steps", ("label", "CFG"), "cfg", ("label", "Batch"), "batch")),
    ("Seed", ("seed", ("hint", "^r new · ^l last"))),
    ("Sampler", ("sampler", "scheduler")),
    ("Edit refs", ("ref-image",)),
)


def _knob_rows() -> tuple[Row, ...]:
    """The engine knobs' switches (recipe.PARAMS' advanced bools), two a line; the threads
    after the last."""
    flags = [p.form_id for p in RECIPE_KNOBS if p.kind == "bool" and p.form == "advanced"]
    rows: list[Row] = [(None, tuple(flags[i : i + 2])) for i in range(0, len(flags), 2)]
    threads = BY_NAME["n_threads"]
    last: tuple[str | tuple[str, str], ...] = (("label", threads.short), threads.form_id)
    if rows and len(rows[-1][1]) == 1:
        rows[-1] = (None, rows[-1][1] + last)
    else:
        rows.append((None, last))
    return tuple(rows)


#: the advanced fields laid out by name below (img2img, LoRAs) or by :func:`_knob_rows`
_PLACED = ("n_threads", "init_image", "strength", "loras", "upscaler")


def _other_rows() -> tuple[Row, ...]:
    """The other advanced rows of recipe.PARAMS (the engine's own knobs: step cache, flow
    shift, max VRAM), in the table's order: a choice on a line of its own, numbers two a
    line (the second with an inline label)."""
    rows: list[Row] = []
    pending: Param | None = None
    for p in PARAMS:
        if p.form != "advanced" or p.kind == "bool" or p.name in _PLACED:
            continue
        if p.kind == "choice":
            rows.append((p.short, (p.form_id,)))
        elif pending is None:
            pending = p
        else:
            rows.append((pending.short, (pending.form_id, ("label", p.short), p.form_id)))
            pending = None
    if pending is not None:
        rows.append((pending.short, (pending.form_id,)))
    return tuple(rows)


ADVANCED_ROWS: tuple[Row, ...] = (
    *_knob_rows(),
    *_other_rows(),
    ("Img2img", ("init-image",)),
    ("Strength", ("strength", ("hint", "0 keep · 1 replace"))),
    ("LoRA", ("lora-pick",)),
    ("LoRAs", ("loras",)),
    ("Upscale", ("upscale",)),
)
ADVANCED = frozenset(i for _, items in ADVANCED_ROWS for i in items if isinstance(i, str))
#: the field ctrl+n focuses: the advanced section's first, in the recipe's order
ADVANCED_FIRST = next(i for _, items in ADVANCED_ROWS for i in items if isinstance(i, str))
#: the fields of the engine knobs the settings hold (``generation.EngineKnobs``: a form loaded
#: without knobs keeps them); the engine's own knobs are loaded with the picture
KNOBS = tuple(p.form_id for p in RECIPE_KNOBS if p.form != "hidden" and p.setting)


def _widget(field_id: str, field: Field, value: str | bool) -> Widget:
    widget = _bare_widget(field_id, field, value)
    p = _SHOWN.get(field_id)
    if p is not None and p.help and p.name not in _NO_TOOLTIP:
        widget.tooltip = Content(p.tooltip)  # what it does: its PARAMS row's help (one source)
    return widget


#: rows whose help speaks of the command line only (a flag's forms), not of the form's field
_NO_TOOLTIP = frozenset({"seed", "upscaler"})


def _bare_widget(field_id: str, field: Field, value: str | bool) -> Widget:
    if isinstance(field, Flag):
        return Checkbox(field.label, bool(value), id=field_id, compact=True)
    if isinstance(field, Choice):
        options = [(c, c) for c in field.choices or ()]
        if field.value is None:  # a picker: no value of its own
            return Select(options, prompt=field.prompt, id=field_id, compact=True)
        return Select(options, value=str(value), allow_blank=False, id=field_id, compact=True)
    validators = [ReasonValidator(field.label, field.check)] if field.check else []
    return Input(
        str(value),
        id=field_id,
        compact=True,
        classes=field.classes,
        placeholder=field.placeholder,
        validators=validators,
    )


def _values(params: GenParams, knobs: EngineKnobs) -> dict[str, str | bool]:
    """Every field's value for these params and knobs (pickers have none)."""
    out: dict[str, str | bool] = {}
    for field_id, field in FIELDS.items():
        if isinstance(field, Text):
            out[field_id] = field.text(params, knobs)
        elif isinstance(field, Flag):
            out[field_id] = field.value(params, knobs)
        elif field.value is not None:
            out[field_id] = field.value(params)
    return out


class GenerateForm(VerticalScroll):
    """The form of the Generate screen. ``defaults``: the params shown at first; ``knobs``:
    the engine knobs (the settings' defaults)."""

    def __init__(self, core: CoreContext, defaults: GenParams, knobs: EngineKnobs, **kw: Any):
        super().__init__(**kw)
        self.core = core
        self._initial = _values(defaults, knobs)
        #: the recipe rows no field shows (the engine's own knobs), as the last load gave them
        self._hidden: tuple[tuple[str, Any], ...] = defaults.extra
        #: the upscaler a loaded recipe names (its switch on keeps it; "": the active one)
        self._upscaler = str(defaults.recipe()["upscaler"])
        #: the advanced section's values while its widgets are not mounted
        self._pending = {k: v for k, v in self._initial.items() if k in ADVANCED}
        self._advanced_mounted = False
        #: every field's widget, from the moment it is built: an advanced field's widget holds
        #: its value while it is still being mounted (its row mounts it a frame later)
        self._fields: dict[str, Widget] = {}
        self.errors: list[str] = []
        #: the fields the active model has no use for (hidden, not sent): FEATURE_FIELDS
        self._model = core.catalog.get(core.settings.settings.active_model_id)
        self._absent = absent_fields(self._model)
        #: what the last :meth:`to_request` left out because the model does not take it (a
        #: hidden field that holds a value: a pinned recipe's references on Z-Image), one line
        #: each (``recipe.feature_refused``'s)
        self.dropped: list[str] = []

    # ---- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Model", classes="field-label")
            yield ModelSelect(self.core, id="model-select")
        # a recipe reused from the Gallery: its model and quants, used by ctrl+g
        yield Static("", id="reuse-line", classes="hint")
        yield Label("Prompt", classes="section-label")
        yield TextArea(
            id="prompt", compact=True, placeholder="Describe the image…", tab_behavior="focus"
        )
        yield from self._rows(ROWS, self._initial)
        yield Collapsible(title=ADVANCED_TITLE, id="advanced")
        yield Static("", id="form-errors")
        yield GenProgress(id="gen-progress")

    def _rows(self, rows: tuple[Row, ...], values: dict[str, str | bool]) -> Iterator[Widget]:
        for label, items in rows:
            children: list[Widget] = []
            if label is not None:
                children.append(Label(label, classes="field-label"))
            for item in items:
                if isinstance(item, tuple):
                    kind, text = item
                    if kind == "hint":
                        children.append(Static(text, classes="hint"))
                    else:
                        children.append(
                            Label(text, classes="inline-label" if kind == "label" else kind)
                        )
                else:
                    widget = _widget(item, FIELDS[item], values.get(item, ""))
                    self._fields[item] = widget
                    children.append(widget)
            row = Horizontal(*children, classes="row")
            row.display = not any(i in self._absent for i in items if isinstance(i, str))
            yield row

    def on_mount(self) -> None:
        self.query_one("#reuse-line", Static).display = False

    # ---- the advanced section ----------------------------------------------------------
    @property
    def advanced(self) -> Collapsible:
        return self.query_one("#advanced", Collapsible)

    def open_advanced(self) -> None:
        self._mount_advanced()
        self.advanced.collapsed = False

    def _mount_advanced(self) -> AwaitMount | None:
        """Mount the advanced section's widgets with the values kept meanwhile (once)."""
        if self._advanced_mounted:
            return None
        self._advanced_mounted = True
        contents = self.advanced.query_one(Collapsible.Contents)
        mounting = contents.mount_all(list(self._rows(ADVANCED_ROWS, self._pending)))
        self._pending = {}
        return mounting

    @on(Collapsible.Expanded, "#advanced")
    async def _advanced_opened(self) -> None:
        mounting = self._mount_advanced()
        if mounting is not None:
            await mounting
        self.call_after_refresh(self._reload_loras)

    @on(Collapsible.Collapsed, "#advanced")
    def _advanced_closed(self) -> None:
        """Closing the section (ctrl+n) with the focus in it: the focus goes to its title, not
        to a hidden field that would take keys nobody sees."""
        focused = self.screen.focused
        section = self.advanced
        if focused is not None and section in focused.ancestors:
            title = section.query("CollapsibleTitle")
            if title and focused is not title.first():
                title.first().focus()

    def _reload_loras(self) -> None:
        """The LoRA picker lists the folder's files (read when the section opens), walked on a
        thread (loras.scan_loras is bounded: a /usr or a tree 1,100 deep never stalls the UI)."""
        self.run_worker(
            self._scan_loras(self.core.settings.lora_dir),
            group="loras",
            exclusive=True,
            exit_on_error=False,
        )

    async def _scan_loras(self, folder: Path) -> None:
        import asyncio

        names, skipped = await asyncio.to_thread(scan_loras, folder)
        self._fill_loras(folder, names, skipped)

    def _fill_loras(self, folder: Path, names: list[str], skipped: list[str]) -> None:
        pick = self.query_one("#lora-pick", Select)
        if not (pick.is_mounted and pick.query("SelectOverlay")):
            # mounted with the section just now: setting its options needs it composed
            self.call_after_refresh(self._fill_loras, folder, names, skipped)
            return
        pick.set_options([(visible(n), n) for n in names])
        prompt = "add from the LoRA folder" if names else f"(no LoRA files in {folder.name}/)"
        pick.prompt = prompt + (" (partial list)" if skipped else "")
        pick.tooltip = visible(f"{folder}: " + "; ".join(skipped)) if skipped else None

    # ---- values ------------------------------------------------------------------------
    def value(self, field_id: str) -> str | bool:
        """A field's value: its widget's, or the kept one of an advanced field whose widgets
        were not built yet."""
        widget = self._fields.get(field_id)
        if widget is None:
            return self._pending.get(field_id, "")
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            # built but not mounted yet (the advanced section's first frame): its reactive
            # value is not set until mount; the value it was built with is kept in _value
            value = widget.value if widget.is_mounted else widget._value
            return "" if value is Select.NULL else str(value)
        assert isinstance(widget, Input)
        return widget.value

    def set_value(self, field_id: str, value: str | bool) -> None:
        widget = self._fields.get(field_id)
        if widget is None:
            self._pending[field_id] = value
        elif isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select) and not widget.is_mounted:
            widget._value = str(value)  # its mount selects it (its watcher needs the overlay)
        elif isinstance(widget, Select | Input):
            widget.value = str(value)

    def text(self, field_id: str) -> str:
        return str(self.value(field_id)).strip()

    @property
    def prompt(self) -> str:
        return self.query_one("#prompt", TextArea).text

    # ---- the model's features ------------------------------------------------------------
    def show_model(self, model: CatalogModel | None) -> None:
        """Show the fields ``model`` has (its family's features); hide the rest. A hidden field
        keeps what was typed (a model that has it shows it again) but is not sent."""
        self._model = model
        absent = absent_fields(model)
        if absent == self._absent:
            return
        self._absent = absent
        for field_id in FEATURE_FIELDS:
            row = self._fields[field_id].parent if field_id in self._fields else None
            if isinstance(row, Horizontal):
                row.display = field_id not in absent
        focused = self.screen.focused if self.is_attached else None
        if focused is not None and focused.id in absent:  # a hidden field takes no keys
            self.query_one("#prompt", TextArea).focus()

    def follow_model(self, old: GenParams, new: GenParams) -> None:
        """Another model was chosen (``old`` / ``new``: each model's first values): a picture
        field still at the old model's value takes the new one's (Z-Image-Turbo's 8 steps,
        Klein base's CFG 4); a value that was typed stays."""
        was, now = old.recipe(), new.recipe()
        for name in MODEL_ROWS:
            p = BY_NAME[name]
            if p.form_id in FIELDS and str(self.value(p.form_id)) == str(_shown(p, was[name])):
                self.set_value(p.form_id, _shown(p, now[name]))

    # ---- form -> request ---------------------------------------------------------------
    def _field_errors(self) -> tuple[list[str], str | None]:
        """Every checked field's failure (in table order) and the first bad field's id."""
        errors: list[str] = []
        first_bad: str | None = None
        for field_id, field in FIELDS.items():
            if not isinstance(field, Text) or field.check is None or field_id in self._absent:
                continue
            reason = field.check(str(self.value(field_id)))
            if reason is not None:
                errors.append(f"{field.label}: {reason}")
                first_bad = first_bad or field_id
        return errors, first_bad

    def knobs(self) -> EngineKnobs:
        """The advanced section's engine knobs (threads already validated)."""
        return EngineKnobs.from_recipe(Recipe(self._values(RECIPE_KNOBS)))

    def _values(self, rows: tuple[Param, ...]) -> dict[str, Any]:
        """The recipe values of these rows' fields (checked already)."""
        return {p.name: _read(p, self.value(p.form_id)) for p in rows if p.form_id in FIELDS}

    def to_request(self) -> tuple[GenParams | None, list[str]]:
        """Validated params, or None and the reasons (one line per bad field); the first bad
        field gets the focus (the advanced section opens if it is there)."""
        errors, first_bad = self._field_errors()
        prompt = self.prompt.strip()
        too_long = text_problem("prompt", prompt)
        if not prompt or too_long:
            errors.insert(0, f"Prompt: {too_long or 'required'}")
            first_bad = "prompt"  # the first line's field gets the focus
        refs = [] if "ref-image" in self._absent else split_paths(self.text("ref-image"))
        for ref in refs:
            if not Path(ref).expanduser().is_file():
                errors.append(f"Edit refs: no such file: {ref}")
        init = "" if "init-image" in self._absent else self.text("init-image")
        if init and not Path(init).expanduser().is_file():
            errors.append(f"Img2img: no such file: {init}")
        loras: list[tuple[str, float]] = []
        try:
            loras = parse_lora_list(str(self.value("loras")))
        except LoraError as e:
            errors.append(f"LoRAs: {e}")
        if loras:
            from distill_tui.loras import lora_specs

            try:
                lora_specs(self.core.settings.lora_dir, loras)
            except LoraError as e:
                errors.append(f"LoRAs: {e}")
        model_id = self.core.settings.settings.active_model_id
        if self.core.catalog.get(model_id) is None:
            errors.append(f"Model: {model_id!r} is not in the catalog (F3 opens the Model Manager)")
        elif not self.core.resolver.is_model_ready(model_id):
            missing = "; ".join(self.core.resolver.missing(model_id))
            errors.append(f"Model: not ready ({missing}) — F3 opens the Model Manager")
        if errors:
            if first_bad is not None:
                self.focus_field(first_bad)
            return None, errors
        values = self._values(PARAMS)
        self.dropped = self._dropped(values)
        for field_id in self._absent:  # what the model has no use for: the row's default
            values[_SHOWN[field_id].name] = _SHOWN[field_id].default
        if values.get("upscaler") == UPSCALE_ACTIVE and self._upscaler:
            values["upscaler"] = self._upscaler  # a reused recipe's upscaler
        recipe = Recipe({**dict(self._hidden), **values, "prompt": prompt})
        problem = seed_problem(recipe["seed"], recipe["batch_count"])  # image i uses seed + i
        if problem:
            self.focus_field("seed")
            return None, [f"Seed: {problem}"]
        mode, threshold = BY_NAME["cache_mode"], BY_NAME["cache_threshold"]
        if recipe[threshold.name] is not None and recipe[mode.name] not in THRESHOLD_CACHE_MODES:
            self.focus_field(mode.form_id)  # a threshold no mode reads (the CLI refuses it too)
            modes = " or ".join(THRESHOLD_CACHE_MODES)
            return None, [
                f"{threshold.short}: needs {mode.short} {modes} (not {recipe[mode.name]})"
            ]
        return GenParams.from_recipe(recipe), []

    def not_sent(self) -> list[str]:
        """What the hidden fields hold now that ctrl+g would not send (a loaded recipe's
        references on a model without edit references), one line each."""
        return self._dropped(self._values(tuple(BY_NAME[n] for n in FEATURE_ROWS)))

    def _dropped(self, values: dict[str, Any]) -> list[str]:
        """The lines of what a hidden field holds that the model does not take (the one rule:
        ``recipe.feature_refused``); it is not sent."""
        if self._model is None:
            return []
        lines = []
        for name in FEATURE_ROWS:
            p = BY_NAME[name]
            if p.form_id not in self._absent:
                continue
            alone = Recipe({name: values.get(name, p.default)}, {name: p.short})
            line = feature_refused(alone, self._model)
            if line is not None:
                lines.append(f"{line}: not sent")
        return lines

    def focus_field(self, field_id: str) -> None:
        """Focus a field, scrolled into view; one in the advanced section opens it first (a
        bad field must be seen to be fixed)."""
        if field_id == "prompt":
            prompt = self.query_one("#prompt", TextArea)
            prompt.focus()
            self.call_after_refresh(self.scroll_to_widget, prompt, animate=False)
            return
        if field_id in ADVANCED:
            self.open_advanced()
        self._focus_when_there(field_id, tries=20)

    def _focus_when_there(self, field_id: str, tries: int) -> None:
        """Focus a field once it is in the DOM: the advanced section's fields arrive a frame
        after it is first opened (its rows mount their children). Not when the section was
        closed again meanwhile: a hidden field with the focus takes keys nobody sees."""
        if field_id in ADVANCED and self.advanced.collapsed:
            return
        found = self.query(f"#{field_id}")
        if found:
            found.first().focus()
            self.call_after_refresh(self.scroll_to_widget, found.first(), animate=False)
        elif tries > 0:
            self.call_after_refresh(self._focus_when_there, field_id, tries - 1)

    # ---- request -> form ---------------------------------------------------------------
    def load(self, params: GenParams, knobs: EngineKnobs | None = None) -> None:
        """Fill every field from ``params`` (the engine knobs from ``knobs``, else the params'
        own, else left as they are). A recipe with an init image or LoRAs opens the advanced
        section: what it uses is shown."""
        self.query_one("#prompt", TextArea).text = params.prompt
        self._hidden = params.extra
        self._upscaler = str(params.recipe()["upscaler"])
        knobs = knobs or params.knobs
        for field_id, value in _values(params, knobs or EngineKnobs()).items():
            if knobs is not None or field_id not in KNOBS:
                self.set_value(field_id, value)
        if params.init_image or params.loras:
            self.open_advanced()
        self.show_errors([])

    def load_knobs(self, knobs: EngineKnobs) -> None:
        """Only the engine knobs (the rest of the form stays as it is)."""
        values = _values(GenParams(prompt=""), knobs)
        for field_id in KNOBS:
            self.set_value(field_id, values[field_id])

    # ---- errors ------------------------------------------------------------------------
    @staticmethod
    def fix_summary(errors: list[str]) -> str:
        """One line naming the fields a refusal's lines are about ("2 fields need a fix:
        Prompt, Flow shift"): the error lines are under the form, off screen when the
        advanced section is open."""
        names = list(dict.fromkeys(e.split(":", 1)[0] for e in errors))
        many = len(names) != 1
        return f"{len(names)} field{'s' if many else ''} need{'' if many else 's'} a fix: " + (
            ", ".join(names)
        )

    def show_errors(self, errors: list[str]) -> None:
        self.errors = list(errors)
        box = self.query_one("#form-errors", Static)
        box.update(Content(visible("\n".join(errors), multiline=True)))
        box.set_class(bool(errors), "-errors")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        # a field that became valid drops its own line from the error list
        result = event.validation_result
        if not self.errors or result is None or not result.is_valid:
            return
        labels = [v.label for v in event.input.validators if isinstance(v, ReasonValidator)]
        kept = [e for e in self.errors if not any(e.startswith(f"{lb}:") for lb in labels)]
        if kept != self.errors:
            self.show_errors(kept)

    # ---- pickers -----------------------------------------------------------------------
    @on(Select.Changed, "#size-preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        w, h = str(event.value).split("x")
        self.set_value("width", w)
        self.set_value("height", h)

    @on(Select.Changed, "#lora-pick")
    def _lora_chosen(self, event: Select.Changed) -> None:
        """Choosing a LoRA adds ``name:1`` to the LoRAs field (the weight is edited there)."""
        if event.value is Select.NULL:
            return
        field = self.query_one("#loras", Input)
        try:
            current = parse_lora_list(field.value)
        except LoraError:
            current = None
        name = str(event.value)
        if current is None:
            field.value = f"{field.value.rstrip('; ')}; {name}:1".lstrip("; ")
        elif all(n != name for n, _w in current):
            field.value = format_lora_list([*current, (name, 1.0)])
        event.select.clear()
        field.focus()
