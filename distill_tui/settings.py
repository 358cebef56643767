"""User settings (``settings.json`` in the config dir): schema, migrations, atomic saves.

A file that cannot be used is moved aside (``settings.json.corrupt-<time>``) and reported;
defaults are used and nothing crashes. A read-only config dir keeps the settings in memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill_tui.atomic import atomic_write_json, move_aside
from distill_tui.paths import AppPaths

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
LEGACY_KEYS = ("diffusion_model_path", "vae_path", "llm_path")
ImageRenderer = Literal["auto", "sixel", "kitty", "halfcell", "unicode"]
IMAGE_RENDERERS: tuple[str, ...] = ("auto", "sixel", "kitty", "halfcell", "unicode")


class QuantSelection(BaseModel):
    """The active quant of each component of one model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    diffusion_quant: str | None = Field(default=None, alias="diffusionQuant")
    text_encoder_quant: str | None = Field(default=None, alias="textEncoderQuant")

    def get(self, component: str) -> str | None:
        return self.diffusion_quant if component == "diffusion" else self.text_encoder_quant


class GenerationDefaults(BaseModel):
    """Overrides of the catalog's recommended generation parameters (None = catalog value)."""

    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(default=None, ge=16, le=4096)
    height: int | None = Field(default=None, ge=16, le=4096)
    steps: int | None = Field(default=None, ge=1, le=200)
    cfg_scale: float | None = Field(default=None, ge=0, le=50)
    sampler: str | None = None
    scheduler: str | None = None
    negative_prompt: str = ""
    batch_count: int = Field(default=1, ge=1, le=16)
    threads: int = Field(default=-1, description="CPU threads for the engine; -1 = auto")
    flash_attention: bool = True
    offload_to_cpu: bool = False


class Settings(BaseModel):
    """Everything distill remembers between runs. Unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    model_base_path: str | None = Field(
        default=None, description="Where model files live; None = <data dir>/models"
    )
    active_model_id: str = Field(default="flux2-klein-4b", description="Model used to generate")
    model_quant_selections: dict[str, QuantSelection] = Field(
        default_factory=dict, description="{modelId: {diffusionQuant, textEncoderQuant}}"
    )
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    output_dir: str | None = Field(default=None, description="None = <data dir>/outputs")
    download_concurrency: int = Field(default=1, ge=1, le=8, description="Files at once")
    connections_per_file: int = Field(default=8, ge=1, le=32, description="Range segments")
    image_renderer: ImageRenderer = "auto"
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
        self._listeners: list[Callable[[Settings], None]] = []

    # ---- resolved values -------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        base = self.settings.model_base_path
        return Path(base).expanduser() if base else self.paths.default_models_dir

    @property
    def outputs_dir(self) -> Path:
        out = self.settings.output_dir
        return Path(out).expanduser() if out else self.paths.default_outputs_dir

    # ---- load ------------------------------------------------------------------------
    def load(self) -> Settings:
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
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problem = "not valid JSON" + (
                f" (line {e.lineno} column {e.colno})"
                if isinstance(e, json.JSONDecodeError)
                else ""
            )
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

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)

    # ---- save / change ---------------------------------------------------------------
    def save(self, quiet: bool = False) -> bool:
        """Write atomically. On failure keep going in memory; return False and remember why."""
        with self._lock:
            try:
                atomic_write_json(self.path, self.settings.to_json())
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

    def selection(self, model_id: str) -> QuantSelection:
        return self.settings.model_quant_selections.get(model_id) or QuantSelection()

    def set_quant(self, model_id: str, component: str, quant_id: str | None) -> bool:
        sel = self.selection(model_id).model_copy()
        if component == "diffusion":
            sel.diffusion_quant = quant_id
        elif component == "textEncoder":
            sel.text_encoder_quant = quant_id
        else:
            raise ValueError(f"component {component!r} has no quant")
        selections = dict(self.settings.model_quant_selections)
        selections[model_id] = sel
        self.settings = self.settings.model_copy(update={"model_quant_selections": selections})
        ok = self.save()
        self._notify()
        return ok

    def subscribe(self, callback: Callable[[Settings], None]) -> None:
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in list(self._listeners):
            try:
                cb(self.settings)
            except Exception:  # a listener must never break a save
                log.exception("settings listener failed")


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
