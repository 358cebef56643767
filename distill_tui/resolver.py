"""From catalog + settings + inventory to the absolute paths the engine loads (spec §3.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from distill_tui.catalog import (
    Catalog,
    CatalogFile,
    CatalogModel,
    Component,
    UnknownQuantError,
)
from distill_tui.inventory import Inventory
from distill_tui.settings import QuantSelection, SettingsStore


def gone_text(model_id: str, what: str, rel: str, original: Path) -> str:
    """A symlinked file whose original was removed (issue 23.9): say so, and what fetches it."""
    return (
        f"{what}: the linked original ({original}) is gone; rerun distill models download "
        f"{model_id} to fetch it ({rel})"
    )


class ModelNotReadyError(Exception):
    def __init__(self, model_id: str, missing: list[str]):
        self.model_id = model_id
        self.missing = missing
        super().__init__(f"{model_id} is not ready: " + "; ".join(missing))


def component_title(model: CatalogModel, comp: Component) -> str:
    """How a message names one component: its role's label, with the component's own name
    when that says more ("Text Encoder (Qwen3-4B)"; not "VAE (FLUX.2 VAE)" nor the model's
    own name again)."""
    label = comp.label
    name = comp.name
    if name and name != model.name and label.lower() not in name.lower():
        return f"{label} ({name})"
    return label


@dataclass(frozen=True, slots=True)
class ActivePaths:
    model_id: str
    diffusion_quant: str
    text_encoder_quant: str
    #: the image families' three slots by their old names (a model without the role: Path())
    diffusion: Path
    text_encoder: Path
    vae: Path
    #: the diffusion file's sha256 as the inventory recorded it ("": not known)
    diffusion_sha256: str = ""
    #: {role: quant id} of every component with quants
    quants: Mapping[str, str] = field(default_factory=dict)
    #: {engine slot (a LoadRequest field): absolute path} of every component
    slots: Mapping[str, Path] = field(default_factory=dict)


class Resolver:
    def __init__(self, catalog: Catalog, settings: SettingsStore, inventory: Inventory):
        self.catalog = catalog
        self.settings = settings
        self.inventory = inventory

    def model(self, model_id: str | None = None) -> CatalogModel:
        return self.catalog.require(model_id or self.settings.settings.active_model_id)

    def selection(self, model_id: str) -> QuantSelection:
        return self.settings.selection(model_id)

    def file_for(self, model_id: str, component: str, quant_id: str | None = None) -> CatalogFile:
        """The file of one component of a model (``quant_id`` for a component with quants)."""
        model = self.model(model_id)
        comp = model.component(component)
        if comp is None:
            raise KeyError(component)
        if comp.file is not None:
            return comp.file
        if quant_id is None:
            raise UnknownQuantError(model_id, component, "(none)", comp.ids)
        quant = comp.get(quant_id)
        if quant is None:
            raise UnknownQuantError(model_id, component, quant_id, comp.ids)
        return quant

    def is_file_downloaded(
        self, model_id: str, component: str, quant_id: str | None = None
    ) -> bool:
        return self.inventory.is_present(self.file_for(model_id, component, quant_id).file)

    def selected_files(
        self, model: CatalogModel, selection: QuantSelection | None = None
    ) -> list[tuple[Component, str | None, CatalogFile | None]]:
        """Each component with the file it would load: (component, chosen quant id or None,
        file; None when no quant is chosen or the chosen one is not in the catalog)."""
        sel = selection or self.selection(model.id)
        out: list[tuple[Component, str | None, CatalogFile | None]] = []
        for comp in model.components:
            if comp.file is not None:
                out.append((comp, None, comp.file))
                continue
            qid = sel.get(comp.role)
            out.append((comp, qid, comp.get(qid) if qid else None))
        return out

    def missing(
        self, model_id: str | None = None, selection: QuantSelection | None = None
    ) -> list[str]:
        """Human reasons why a model is not ready (with its selected quants, or ``selection``:
        e.g. the quants a Gallery image was made with); empty when it is. Every component of
        the model's family counts (a text encoder, a VAE, an upscaler's one file)."""
        model = self.model(model_id)
        out: list[str] = []
        for comp, qid, f in self.selected_files(model, selection):
            title = component_title(model, comp)
            if comp.has_quants and qid is None:
                out.append(f"no {title} quant selected")
            elif f is None:
                out.append(f"selected {title} quant {qid!r} is not in the catalog")
            elif not self.inventory.is_present(f.file):
                out.append(self._not_here(model.id, f"{title} {qid}" if qid else title, f.file))
        return out

    def _not_here(self, model_id: str, what: str, rel: str) -> str:
        """Why a file is missing: not downloaded, or its symlink's original is gone."""
        gone = self.inventory.gone_original(rel)
        if gone is not None:
            return gone_text(model_id, what, rel, gone)
        return f"{what} is not downloaded ({rel})"

    def is_model_ready(self, model_id: str | None = None) -> bool:
        return not self.missing(model_id)

    def active_paths(
        self, model_id: str | None = None, selection: QuantSelection | None = None
    ) -> ActivePaths:
        model = self.model(model_id)
        missing = self.missing(model.id, selection)
        if missing:
            raise ModelNotReadyError(model.id, missing)
        base = self.inventory.models_dir
        quants: dict[str, str] = {}
        slots: dict[str, Path] = {}
        by_role: dict[str, Path] = {}
        sha = ""
        for comp, qid, f in self.selected_files(model, selection):
            assert f is not None  # missing() said so otherwise
            path = (base / f.file).resolve()
            if qid is not None:
                quants[comp.role] = qid
            slots[comp.engine_slot(model.family)] = path
            by_role[comp.role] = path
            if comp.role == "diffusion":
                known = self.inventory.get(f.file)
                sha = (known.sha256 or "") if known else ""
        return ActivePaths(
            model_id=model.id,
            diffusion_quant=quants.get("diffusion", ""),
            text_encoder_quant=quants.get("textEncoder", ""),
            diffusion_sha256=sha,
            diffusion=by_role.get("diffusion", Path()),
            text_encoder=by_role.get("textEncoder", Path()),
            vae=by_role.get("vae", Path()),
            quants=quants,
            slots=slots,
        )
