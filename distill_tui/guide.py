"""What a person needs to know before the first image: what is missing for a model (and how
big it is), and where the Hugging Face token comes from (never the token itself).

No textual here: the Generate screen's empty state and the Settings screen format these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_tui.catalog import Catalog, CatalogFile
from distill_tui.formatting import human_size
from distill_tui.hftoken import token_path
from distill_tui.inventory import Inventory
from distill_tui.settings import SettingsStore


@dataclass(frozen=True)
class SetupNeed:
    """The files one model still needs: its selected set, or the recommended one where
    nothing is selected (what ``d`` on its card header downloads)."""

    model_id: str
    model_name: str
    #: (component, quant id or None, file) of the whole set
    files: tuple[tuple[str, str | None, CatalogFile], ...]
    #: the part of ``files`` not on disk
    missing: tuple[tuple[str, str | None, CatalogFile], ...]
    recommended: bool

    @property
    def bytes(self) -> int:
        return sum(f.size for _c, _q, f in self.missing)

    @property
    def estimated(self) -> bool:
        """A size of the missing files is the catalog's estimate (the Hub knows better)."""
        return any(f.size_estimated for _c, _q, f in self.missing)

    @property
    def size_text(self) -> str:
        return ("~" if self.estimated else "") + human_size(self.bytes)

    @property
    def which(self) -> str:
        return "recommended set" if self.recommended else "selected set"


def setup_need(
    catalog: Catalog,
    settings: SettingsStore,
    inventory: Inventory,
    model_id: str,
    prefer: dict[str, str] | None = None,
) -> SetupNeed | None:
    """The set of ``model_id`` and what of it is missing; None for a model not in the catalog.
    Per component: the selected quant, else ``prefer`` (e.g. the set that fits the GPU), else
    the catalog's recommended quant."""
    model = catalog.get(model_id)
    if model is None:
        return None
    sel = settings.selection(model.id)
    files: list[tuple[str, str | None, Any]] = []
    for comp in model.components:  # every component of the family, in catalog order
        if comp.file is not None:
            files.append((comp.role, None, comp.file))
            continue
        qid = sel.get(comp.role)
        quant = comp.get(qid) if qid else None
        if quant is None and prefer:
            quant = comp.get(prefer.get(comp.role, ""))
        if quant is None:
            quant = comp.get(model.default_quant(comp.role))
        if quant is not None:
            files.append((comp.role, quant.id, quant))
    missing = tuple(x for x in files if not inventory.is_present(x[2].file))
    return SetupNeed(
        model_id=model.id,
        model_name=model.name,
        files=tuple(files),
        missing=missing,
        recommended=sel.is_empty,
    )


@dataclass(frozen=True)
class TokenStatus:
    """Whether a Hugging Face token is there and where from. Never holds the token."""

    present: bool
    #: "env" (HF_TOKEN / HUGGING_FACE_HUB_TOKEN), "file" (a token file), or None
    kind: str | None
    #: the variable name, or the token file's path
    where: str | None
    #: the token file distill reads (where `hf auth login` writes), for the hint
    file: Path
    #: the file is named by HF_TOKEN_PATH (else HF_HOME or the hf CLI's default)
    file_from_env: str | None


def token_status() -> TokenStatus:
    path = token_path()
    from_env = (
        "HF_TOKEN_PATH"
        if os.environ.get("HF_TOKEN_PATH")
        else "HF_HOME"
        if os.environ.get("HF_HOME")
        else None
    )
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var, "").strip():
            return TokenStatus(True, "env", var, path, from_env)
    try:
        present = bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        present = False
    if present:
        return TokenStatus(True, "file", str(path), path, from_env)
    return TokenStatus(False, None, None, path, from_env)
