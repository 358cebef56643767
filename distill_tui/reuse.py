"""Reusing a past generation (the Gallery's ``r``, ``distill generate --reuse ID``): one rule
for both surfaces.

A history record names the model and the quants the image was made with. Reusing it restores
all of them — not just the prompt and parameters — so the next generation really is the same
recipe. When a quant is not downloaded (any more) the plan says which and how big, so the UI can
offer to download it. Nothing is persisted here: the active model and selection change only
when the user actually generates with the reused recipe (GenerationService.generate with
``selection`` and ``persist``).

No textual import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distill_tui.catalog import COMPONENT_LABELS
from distill_tui.formatting import human_size, quant_pair
from distill_tui.settings import QuantSelection

if TYPE_CHECKING:
    from distill_tui.catalog import CatalogFile
    from distill_tui.context import CoreContext
    from distill_tui.outputs import HistoryRecord


@dataclass(frozen=True)
class MissingFile:
    component: str  #: "diffusion" | "textEncoder" | "vae"
    quant_id: str | None
    file: CatalogFile

    @property
    def label(self) -> str:
        name = COMPONENT_LABELS.get(self.component, self.component)
        return f"{name} {self.quant_id}" if self.quant_id else name


@dataclass(frozen=True)
class ReusePlan:
    model_id: str
    selection: QuantSelection
    missing: list[MissingFile] = field(default_factory=list)
    problem: str | None = None  #: the recipe cannot be restored at all (catalog changed)

    @property
    def ready(self) -> bool:
        return self.problem is None and not self.missing

    @property
    def quants(self) -> str:
        return quant_pair(self.selection.diffusion_quant, self.selection.text_encoder_quant)

    def describe_missing(self) -> str:
        return ", ".join(f"{m.label} ({human_size(m.file.size)})" for m in self.missing)


def plan_reuse(core: CoreContext, record: HistoryRecord) -> ReusePlan:
    sel = QuantSelection(
        diffusionQuant=record.diffusion_quant, textEncoderQuant=record.text_encoder_quant
    )
    model = core.catalog.get(record.model_id)
    if model is None:
        return ReusePlan(
            record.model_id, sel, problem=f"model {record.model_id!r} is no longer in the catalog"
        )
    missing: list[MissingFile] = []
    for component, qid in (
        ("diffusion", record.diffusion_quant),
        ("textEncoder", record.text_encoder_quant),
    ):
        quant = model.section(component).get(qid)
        if quant is None:
            label = COMPONENT_LABELS[component].lower()
            return ReusePlan(
                model.id, sel, problem=f"{label} quant {qid!r} is no longer in the catalog"
            )
        if not core.inventory.is_present(quant.file):
            missing.append(MissingFile(component, qid, quant))
    if not core.inventory.is_present(model.vae.file):
        missing.append(MissingFile("vae", None, model.vae))
    return ReusePlan(model.id, sel, missing)


def adopt_recipe(core: CoreContext, model_id: str, selection: QuantSelection) -> None:
    """The user generated with a reused recipe: its model and quants become the saved choice
    (the TUI's ctrl+g and ``distill generate --reuse`` alike)."""
    settings = core.settings
    for component in ("diffusion", "textEncoder"):
        quant = selection.get(component)
        if quant and settings.selection(model_id).get(component) != quant:
            settings.set_quant(model_id, component, quant)
    if settings.settings.active_model_id != model_id:
        settings.update(active_model_id=model_id)


def find_record(core: CoreContext, ref: str) -> HistoryRecord:
    """A history record by id (a unique prefix is enough) or ``last``; KeyError says why."""
    from distill_tui.outputs import History

    history = History(core.paths.history_file)
    records = history.records()  # valid records only: a record of the wrong shape is skipped
    # why a record is not there, when one was skipped (e.g. "line 3 ... (params.width: ...)")
    skipped = f" ({'; '.join(history.warnings[:2])})" if history.warnings else ""
    if ref in ("last", "latest") and history.newest_is_invalid:  # never quietly an older one
        raise KeyError(f"the last generation cannot be reused{skipped}")
    if not records:
        raise KeyError(
            f"no valid record in the history{skipped}"
            if skipped
            else "the history is empty: nothing to reuse"
        )
    if ref in ("last", "latest"):
        return records[0]
    found = [r for r in records if r.id.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(
            f"no generation {ref!r} in the history (ids: distill generate --help){skipped}"
        )
    raise KeyError(f"{ref!r} matches {len(found)} generations; give more of the id")
