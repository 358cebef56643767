"""User settings (``settings.json`` in the config dir): schema, migrations, atomic saves.

A file that cannot be used is moved aside (``settings.json.corrupt-<time>``) and reported;
defaults are used and nothing crashes. A read-only config dir keeps the settings in memory.

The file is shared, not owned: a TUI and ``distill models use`` in another SSH window write
the same settings.json. A save merges field by field — only the values this process changed
since it last read the file are written over what is on disk now (under an flock) — and
:meth:`SettingsStore.reload_if_changed` adopts what another process wrote (the TUI polls it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from distill_tui.atomic import atomic_write_json, move_aside
from distill_tui.jsonfile import JSONFileError
from distill_tui.jsonfile import loads as load_json
from distill_tui.listeners import Listeners
from distill_tui.paths import AppPaths
from distill_tui.recipe import PARAMS, check

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
LEGACY_KEYS = ("diffusion_model_path", "vae_path", "llm_path")
#: schema 1's ``generation`` knob keys -> their recipe.PARAMS rows' names (schema 2)
RENAMED_KNOBS = {
    "flash_attention": "flash_attn",
    "text_encoder_on_cpu": "keep_clip_on_cpu",
    "vae_on_cpu": "keep_vae_on_cpu",
}
ImageRenderer = Literal["auto", "sixel", "kitty", "halfcell", "unicode"]
IMAGE_RENDERERS: tuple[str, ...] = ("auto", "sixel", "kitty", "halfcell", "unicode")


class QuantSelection(BaseModel):
    """The active quant of each component of one model that has quants, keyed by the
    component's role (catalog v3: ``diffusion``, ``textEncoder`` ... whatever the family has).

    On disk each role is a ``<role>Quant`` key: ``{"diffusionQuant": "Q4_K", "textEncoderQuant":
    "Q4_K_M"}`` - the keys the two-component selection always had, so an older file reads as
    it is and an older distill reads a newer file. A role without a choice has no key (an older
    file's ``null`` reads as none). Any other key is refused by name (``extra_forbidden``: the
    loader drops it and keeps the rest)."""

    model_config = ConfigDict(extra="forbid")

    #: {role: quant id}
    quants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _role_keys(cls, data: Any) -> Any:
        if isinstance(data, QuantSelection):
            return data
        if not isinstance(data, dict):
            return data
        rest = dict(data)
        inner = rest.pop("quants", None)
        quants: dict[str, Any] = dict(inner) if isinstance(inner, dict) else {}
        if inner is not None and not isinstance(inner, dict):
            rest["quants"] = inner  # left for validation to name
        for key in list(rest):
            if isinstance(key, str) and key.endswith("Quant") and _ROLE_RE.match(key[:-5]):
                value = rest.pop(key)
                if value is not None:
                    quants[key[:-5]] = value
        if "quants" not in rest:
            rest["quants"] = {r: q for r, q in quants.items() if q is not None}
        return rest

    @model_serializer(mode="plain")
    def _as_role_keys(self) -> dict[str, str]:
        return {f"{role}Quant": q for role, q in self.quants.items()}

    def get(self, component: str) -> str | None:
        """The chosen quant of one role (None: none chosen)."""
        return self.quants.get(component)

    def with_quant(self, component: str, quant_id: str | None) -> QuantSelection:
        """A copy with ``component``'s choice set (None: cleared)."""
        quants = {r: q for r, q in self.quants.items() if r != component}
        if quant_id is not None:
            quants[component] = quant_id
        return QuantSelection(quants=quants)

    @property
    def is_empty(self) -> bool:
        """Nothing chosen: the model's recommended quants apply."""
        return not self.quants

    # the two roles of the image families, by their old names (callers not yet per-role)
    @property
    def diffusion_quant(self) -> str | None:
        return self.quants.get("diffusion")

    @property
    def text_encoder_quant(self) -> str | None:
        return self.quants.get("textEncoder")


#: a component role as the catalog spells it (catalog._ROLE)
_ROLE_RE = re.compile(r"^[a-z][A-Za-z0-9]{0,39}$")


class GenerationDefaults(BaseModel):
    """Overrides of the catalog's recommended generation parameters (None = catalog value)."""

    model_config = ConfigDict(extra="forbid")

    # width .. threads: the one bound of each (distill_tui.bounds), in its words
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    negative_prompt: str = ""
    batch_count: int = 1
    threads: int = Field(default=-1, description="CPU threads for the engine; -1 = auto")
    # the engine knobs: each key is its recipe.PARAMS row's name (help: the row's)
    flash_attn: bool = True
    offload_to_cpu: bool = False
    vae_tiling: bool = False
    keep_clip_on_cpu: bool = False
    keep_vae_on_cpu: bool = False
    lora_dir: str | None = Field(
        default=None, description="Folder of LoRA files; None = <models dir>/loras"
    )

    @field_validator("*")
    @classmethod
    def _in_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        """A recipe row's setting: the row's bound, in its words (recipe.check)."""
        name = _ROW_OF.get(info.field_name or "")
        reason = None if value is None or name is None else check(name, value)
        if reason is not None:
            raise ValueError(reason)
        return value


#: the settings key -> its recipe.PARAMS row (the bounded ones)
_ROW_OF = {p.setting: p.name for p in PARAMS if p.setting and p.bound is not None}


class Settings(BaseModel):
    """Everything distill remembers between runs. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    model_base_path: str | None = Field(
        default=None, description="Where model files live; None = <data dir>/models"
    )
    active_model_id: str = Field(default="flux2-klein-4b", description="Model used to generate")
    active_upscaler_id: str | None = Field(
        default=None, description="Upscaler model used to upscale; None = the first installed"
    )
    model_quant_selections: dict[str, QuantSelection] = Field(
        default_factory=dict,
        description="{modelId: {<role>Quant: quant id}}, e.g. {diffusionQuant, textEncoderQuant}",
    )
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    output_dir: str | None = Field(default=None, description="None = <data dir>/outputs")
    download_concurrency: int = Field(default=1, ge=1, le=8, description="Files at once")
    connections_per_file: int = Field(default=8, ge=1, le=32, description="Range segments")
    import_dirs: list[str] = Field(
        default_factory=list,
        description="Folders searched for the same bytes before a download (e.g. ComfyUI "
        "models/); a match is linked, not copied",
    )
    image_renderer: ImageRenderer = "auto"
    theme: str | None = Field(default=None, description="Textual theme; None = its default")
    notify_on_finish: bool = Field(
        default=True, description="Bell/OSC 9 when a long generation finishes off-screen"
    )
    notify_after_seconds: float = Field(default=5.0, ge=0)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def migrate(raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Bring a raw settings dict to SCHEMA_VERSION. Returns (new dict, changed)."""
    changed = False
    version = raw.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        version = 0
    if version < 1:
        # v0 -> v1: absolute per-file paths were replaced by quant selections.
        raw = {k: v for k, v in raw.items() if k not in LEGACY_KEYS}
        raw["schema_version"] = 1
        changed = True
    if version < 2:
        # v1 -> v2: the engine knobs' keys became their recipe rows' names (a new key already
        # there wins: a newer distill wrote it)
        gen = raw.get("generation")
        if isinstance(gen, dict):
            gen = dict(gen)
            for old, new in RENAMED_KNOBS.items():
                if old in gen:
                    value = gen.pop(old)
                    gen.setdefault(new, value)
            raw = {**raw, "generation": gen}
        raw = {**raw, "schema_version": 2}
        changed = True
    return raw, changed


class SettingsStore:
    """Owns the one Settings value: load, change, save, notify listeners."""

    def __init__(self, paths: AppPaths, path: Path | None = None):
        self.paths = paths
        self.path = path or paths.settings_file
        self.settings = Settings()
        self.warnings: list[str] = []
        self.read_only_reason: str | None = None
        self._lock = threading.Lock()
        self._listeners: Listeners[Settings] = Listeners("settings")
        #: the settings as this process last read or wrote them (what it believes is on disk)
        self._base: dict[str, Any] = Settings().to_json()
        self._disk_sig: tuple[int, int, int] | None = None  #: (mtime_ns, size, inode) then

    # ---- resolved values -------------------------------------------------------------
    def _dir(self, text: str) -> Path:
        """A folder named in settings.json: ``~`` expanded; a relative path is relative to the
        folder of settings.json itself (the config dir), never to whatever directory distill
        happened to be started from (the Settings screen only stores absolute paths; a
        hand-edited relative one must mean the same in every shell)."""
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.path.parent / path

    @property
    def models_dir(self) -> Path:
        base = self.settings.model_base_path
        return self._dir(base) if base else self.paths.default_models_dir

    @property
    def outputs_dir(self) -> Path:
        out = self.settings.output_dir
        return self._dir(out) if out else self.paths.default_outputs_dir

    @property
    def lora_dir(self) -> Path:
        """Where LoRA files are listed from (``generation.lora_dir``, else <models>/loras)."""
        d = self.settings.generation.lora_dir
        return self._dir(d) if d else self.models_dir / "loras"

    # ---- load ------------------------------------------------------------------------
    def load(self) -> Settings:
        settings = self._load()
        self._base = settings.to_json()
        self._disk_sig = self._signature()
        return settings

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Adopt what another process wrote since this one last read or wrote the file; True
        (and listeners notified) when a value changed. A file that cannot be read or is not
        valid now is left alone (the writer is mid-way, or a person is editing it)."""
        sig = self._signature()
        if sig is None or sig == self._disk_sig:
            return False
        disk = self._read_valid()
        self._disk_sig = sig
        if disk is None:
            return False
        merged = _apply(disk.to_json(), _changes(self.settings.to_json(), self._base))
        self._base = disk.to_json()
        new = Settings.model_validate(merged)
        if new == self.settings:
            return False
        self.settings = new
        self._notify()
        return True

    def _read_valid(self) -> Settings | None:
        """The settings on disk now, or None when the file is missing/unreadable/invalid."""
        try:
            raw = load_json(self.path.read_bytes())
            if not isinstance(raw, dict):
                return None
            raw, _ = migrate(raw)
            return Settings.model_validate(raw)
        except (OSError, ValueError, ValidationError):  # JSONFileError is a ValueError
            return None

    def _load(self) -> Settings:
        self.warnings = []
        if not self.path.exists():
            self.settings = Settings()
            return self.settings
        try:
            data = self.path.read_bytes()
        except OSError as e:
            self._warn(f"cannot read {self.path} ({e.strerror or e}); using defaults")
            self.settings = Settings()
            return self.settings
        problem: str | None = None
        raw: Any = None
        try:
            raw = load_json(data)  # deep nesting, 1e400, NaN: corrupt like bad syntax
        except JSONFileError as e:
            problem = str(e)
        if problem is None and not isinstance(raw, dict):
            problem = f"expected a JSON object, got {type(raw).__name__}"
        if problem is not None:
            self._quarantine(problem)
            self.settings = Settings()
            return self.settings

        raw, migrated = migrate(raw)
        try:
            self.settings = Settings.model_validate(raw)
        except ValidationError as e:
            unknown = [
                ".".join(map(str, x["loc"])) for x in e.errors() if x["type"] == "extra_forbidden"
            ]
            others = [x for x in e.errors() if x["type"] != "extra_forbidden"]
            if unknown and not others:
                # Keep what is valid; the original (with the unknown keys) is kept aside.
                cleaned = _drop_paths(raw, [tuple(x["loc"]) for x in e.errors()])
                self.settings = Settings.model_validate(cleaned)
                self._quarantine(
                    f"unknown key(s) {', '.join(repr(k) for k in unknown)} (typo? the valid keys "
                    f"are {', '.join(Settings.model_fields)}); the other values were kept",
                    keep_values=True,
                )
                return self.settings
            detail = "; ".join(
                f"{'.'.join(map(str, x['loc'])) or '$'}: {x['msg']}" for x in e.errors()[:3]
            )
            self._quarantine(f"invalid values ({detail})")
            self.settings = Settings()
            return self.settings
        if migrated:
            log.info("migrated %s to schema %d", self.path, SCHEMA_VERSION)
            self.save(quiet=True)
        return self.settings

    def _quarantine(self, problem: str, keep_values: bool = False) -> None:
        try:
            moved = move_aside(self.path)
            where = f"moved aside to {moved.name}"
        except OSError as e:
            where = f"could not be moved aside ({e.strerror or e})"
        tail = "" if keep_values else "; using defaults"
        self._warn(f"settings file {self.path} {problem}: {where}{tail}")
        if keep_values:
            self.save(quiet=True)

    @contextlib.contextmanager
    def _file_lock(self):  # type: ignore[no-untyped-def]
        """One writer of settings.json at a time across processes (read-merge-write): an
        flock on the config directory itself, so no lock file is left behind."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)

    # ---- save / change ---------------------------------------------------------------
    def save(
        self,
        quiet: bool = False,
        _edit: Callable[[Settings], dict[str, Any]] | None = None,
    ) -> bool:
        """Write atomically, merged with what another process wrote meanwhile (only the values
        this one changed are written). On failure keep going in memory; return False and
        remember why. ``_edit`` (see :meth:`edit`) runs on the merged value, under the lock."""
        with self._lock:
            try:
                with self._file_lock():
                    ours = _changes(self.settings.to_json(), self._base)
                    disk = self._read_valid() if self._signature() != self._disk_sig else None
                    if disk is not None:
                        merged = Settings.model_validate(_apply(disk.to_json(), ours))
                        changed_elsewhere = merged != self.settings
                        self.settings = merged
                    else:
                        changed_elsewhere = False
                    if _edit is not None:
                        data = self.settings.model_dump()
                        data.update(_edit(self.settings))
                        self.settings = Settings.model_validate(data)
                    atomic_write_json(self.path, self.settings.to_json())
                    self._base = self.settings.to_json()
                    self._disk_sig = self._signature()
                if changed_elsewhere:
                    self._notify()
            except OSError as e:
                reason = (
                    f"cannot save settings to {self.path} ({e.strerror or e}); "
                    "changes are kept in memory for this session only"
                )
                if self.read_only_reason != reason and not quiet:
                    self._warn(reason)
                elif self.read_only_reason != reason:
                    log.warning(reason)
                    self.warnings.append(reason)
                self.read_only_reason = reason
                return False
            self.read_only_reason = None
            return True

    def update(self, **changes: Any) -> bool:
        data = self.settings.model_dump()
        data.update(changes)
        self.settings = Settings.model_validate(data)
        ok = self.save()
        self._notify()
        return ok

    def edit(self, change: Callable[[Settings], dict[str, Any]]) -> bool:
        """Read-modify-write under the settings lock: ``change`` gets the settings as they are
        on disk now (merged with this process's own changes) and returns the fields to set.
        For a value computed from the current one (a folder added to ``import_dirs``):
        ``update`` with a list built from this process's stale copy would drop what another
        process added meanwhile (six ``models import --remember`` at once kept two)."""
        ok = self.save(_edit=change)
        if not ok:  # not saved: keep the change in memory, as update() does
            data = self.settings.model_dump()
            data.update(change(self.settings))
            self.settings = Settings.model_validate(data)
        self._notify()
        return ok

    def selection(self, model_id: str) -> QuantSelection:
        return self.settings.model_quant_selections.get(model_id) or QuantSelection()

    def set_quant(self, model_id: str, component: str, quant_id: str | None) -> bool:
        """Choose ``quant_id`` for one role of a model (None: clear the choice)."""
        if not _ROLE_RE.match(component):
            raise ValueError(f"component {component!r} is not a role name")
        sel = self.selection(model_id).with_quant(component, quant_id)
        selections = dict(self.settings.model_quant_selections)
        selections[model_id] = sel
        self.settings = self.settings.model_copy(update={"model_quant_selections": selections})
        ok = self.save()
        self._notify()
        return ok

    def subscribe(self, callback: Callable[[Settings], None]) -> Callable[[], None]:
        """Called after every change (this process's or, via reload_if_changed, another's);
        returns the function that unsubscribes."""
        return self._listeners.subscribe(callback)

    def _notify(self) -> None:
        self._listeners.publish(self.settings)  # a listener never breaks a save


_DELETED = object()


def _changes(new: Any, base: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """The leaf values of ``new`` that differ from ``base`` (dicts compared key by key)."""
    if isinstance(new, dict) and isinstance(base, dict):
        out: list[tuple[tuple, Any]] = []
        for k, v in new.items():
            out += _changes(v, base.get(k, _DELETED), (*path, k))
        out += [((*path, k), _DELETED) for k in base if k not in new]
        return out
    return [] if new == base else [(path, new)]


def _apply(target: dict[str, Any], changes: list[tuple[tuple, Any]]) -> dict[str, Any]:
    out = json.loads(json.dumps(target))
    for path, value in changes:
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is _DELETED:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return out


def _drop_paths(raw: dict[str, Any], locs: list[tuple]) -> dict[str, Any]:
    out = json.loads(json.dumps(raw))
    for loc in locs:
        node: Any = out
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(loc[-1], None)
    return out
