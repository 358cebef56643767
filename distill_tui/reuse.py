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
    component: str  #: the component's role: "diffusion", "textEncoder", "vae" ...
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
        q = self.selection.quants
        if set(q) == {"diffusion", "textEncoder"}:
            return quant_pair(q["diffusion"], q["textEncoder"])
        return " × ".join(q.values())

    def describe_missing(self) -> str:
        return ", ".join(f"{m.label} ({human_size(m.file.size)})" for m in self.missing)


def record_quants(record: HistoryRecord) -> dict[str, str]:
    """The quant of each component a history record was made with, by role."""
    quants = {str(k): str(v) for k, v in (getattr(record, "quants", None) or {}).items() if v}
    for role, qid in (
        ("diffusion", record.diffusion_quant),
        ("textEncoder", record.text_encoder_quant),
    ):
        if qid:
            quants.setdefault(role, qid)
    return quants


def plan_reuse(core: CoreContext, record: HistoryRecord) -> ReusePlan:
    """The model and quants ``record`` was made with, and which of their files are missing.
    Every component of the model counts (a component of one file: the VAE); a role the
    record does not name (an older record) is the model's selected, else recommended, quant."""
    quants = record_quants(record)
    sel = QuantSelection(quants=quants)
    model = core.catalog.get(record.model_id)
    if model is None:
        return ReusePlan(
            record.model_id, sel, problem=f"model {record.model_id!r} is no longer in the catalog"
        )
    chosen: dict[str, str] = {}
    missing: list[MissingFile] = []
    current = core.settings.selection(model.id)
    for comp in model.components:
        if comp.file is not None:
            if not core.inventory.is_present(comp.file.file):
                missing.append(MissingFile(comp.role, None, comp.file))
            continue
        qid = quants.get(comp.role) or current.get(comp.role) or model.default_quant(comp.role)
        quant = comp.get(qid)
        if quant is None:
            label = COMPONENT_LABELS.get(comp.role, comp.role).lower()
            return ReusePlan(
                model.id, sel, problem=f"{label} quant {qid!r} is no longer in the catalog"
            )
        chosen[comp.role] = qid
        if not core.inventory.is_present(quant.file):
            missing.append(MissingFile(comp.role, qid, quant))
    return ReusePlan(model.id, QuantSelection(quants=chosen), missing)


def adopt_recipe(core: CoreContext, model_id: str, selection: QuantSelection) -> None:
    """The user generated with a reused recipe: its model and quants become the saved choice
    (the TUI's ctrl+g and ``distill generate --reuse`` alike)."""
    settings = core.settings
    for component, quant in selection.quants.items():
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
