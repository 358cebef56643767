"""From catalog + settings + inventory to the absolute paths the engine loads (spec §3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill_tui.catalog import (
    COMPONENT_LABELS,
    Catalog,
    CatalogFile,
    CatalogModel,
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


@dataclass(frozen=True, slots=True)
class ActivePaths:
    model_id: str
    diffusion_quant: str
    text_encoder_quant: str
    diffusion: Path
    text_encoder: Path
    vae: Path
    #: the diffusion file's sha256 as the inventory recorded it ("": not known)
    diffusion_sha256: str = ""


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
        model = self.model(model_id)
        if component == "vae":
            return model.vae
        section = model.section(component)
        if quant_id is None:
            raise UnknownQuantError(model_id, component, "(none)", section.ids)
        quant = section.get(quant_id)
        if quant is None:
            raise UnknownQuantError(model_id, component, quant_id, section.ids)
        return quant

    def is_file_downloaded(
        self, model_id: str, component: str, quant_id: str | None = None
    ) -> bool:
        return self.inventory.is_present(self.file_for(model_id, component, quant_id).file)

    def missing(
        self, model_id: str | None = None, selection: QuantSelection | None = None
    ) -> list[str]:
        """Human reasons why a model is not ready (with its selected quants, or ``selection``:
        e.g. the quants a Gallery image was made with); empty when it is."""
        model = self.model(model_id)
        sel = selection or self.selection(model.id)
        out: list[str] = []
        for component in ("diffusion", "textEncoder"):
            label = COMPONENT_LABELS[component]
            if component == "textEncoder":
                label = f"{label} ({model.text_encoder_name})"
            qid = sel.get(component)
            if qid is None:
                out.append(f"no {label} quant selected")
                continue
            quant = model.section(component).get(qid)
            if quant is None:
                out.append(f"selected {label} quant {qid!r} is not in the catalog")
            elif not self.inventory.is_present(quant.file):
                out.append(self._not_here(model.id, f"{label} {qid}", quant.file))
        if not self.inventory.is_present(model.vae.file):
            out.append(self._not_here(model.id, "VAE", model.vae.file))
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
        sel = selection or self.selection(model.id)
        assert sel.diffusion_quant and sel.text_encoder_quant
        base = self.inventory.models_dir
        diffusion = model.diffusion.get(sel.diffusion_quant)
        known = self.inventory.get(diffusion.file) if diffusion else None
        return ActivePaths(
            model_id=model.id,
            diffusion_quant=sel.diffusion_quant,
            text_encoder_quant=sel.text_encoder_quant,
            diffusion_sha256=(known.sha256 or "") if known else "",
            diffusion=(base / model.diffusion.get(sel.diffusion_quant).file).resolve(),  # type: ignore[union-attr]
            text_encoder=(base / model.text_encoder.get(sel.text_encoder_quant).file).resolve(),  # type: ignore[union-attr]
            vae=(base / model.vae.file).resolve(),
        )
