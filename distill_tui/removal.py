"""Removing downloaded files: one set of rules for the Model Manager (del) and
``distill models remove``.

- The active quant of the active model is refused (Generate would break): select another
  downloaded quant first — unless forced (``--force``, or ``--all``: the whole model), which
  clears the selection.
- Removing another model's selected quant clears that model's selection of it.
- A VAE that another model with downloaded files still uses is kept — unless forced (the
  CLI's ``--force``; in the TUI, the confirmation that names the models it breaks).
- Each file is removed under its download lock: a file another distill process is downloading
  is skipped and said so; its partial and sidecar go with it.
- Space freed counts only bytes whose last link goes: a file hard-linked from the HF cache or
  an imported folder (``distill models import``), or a symlink to one, frees nothing, and the
  result says so.

No textual import.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distill_tui.catalog import COMPONENT_LABELS

if TYPE_CHECKING:
    from distill_tui.catalog import CatalogModel
    from distill_tui.context import CoreContext


@dataclass(frozen=True)
class Target:
    component: str
    quant_id: str | None
    rel: str
    size: int  #: the bytes removing it frees (0 for a file still linked from elsewhere)


@dataclass
class RemovalPlan:
    model_id: str
    targets: list[Target] = field(default_factory=list)
    #: files left alone, and why (shared VAE, active quant) — shown to the user
    kept: list[str] = field(default_factory=list)
    #: (model id, component) selections that removing the targets clears
    clears: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(t.size for t in self.targets)


@dataclass
class RemovalResult:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  #: "<rel>: why"
    freed: int = 0
    #: removed files whose bytes stay on disk (still linked from elsewhere), for a person
    notes: list[str] = field(default_factory=list)


def _freed_by(path: os.PathLike[str] | str) -> tuple[int, str | None]:
    """(bytes removing ``path`` frees, why none when it frees nothing); (0, None) if absent."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, None
    if stat.S_ISLNK(st.st_mode):
        return 0, "a symlink: the file it points to is left where it is"
    if st.st_nlink > 1:
        others = st.st_nlink - 1
        return 0, (
            f"still linked from elsewhere ({others} other hard link{'s' if others > 1 else ''}: "
            "the HF cache or the folder it was imported from)"
        )
    return st.st_blocks * 512, None


def vae_users(core: CoreContext, model: CatalogModel) -> list[CatalogModel]:
    """Other models that share ``model``'s VAE file and have downloaded files of their own."""
    inv = core.inventory
    return [
        m
        for m in core.catalog.models
        if m.id != model.id
        and m.vae.file == model.vae.file
        and any(inv.is_present(f.file) for c, _q, f in m.files() if c != "vae")
    ]


def _on_disk(core: CoreContext, rel: str) -> int | None:
    """Bytes of ``rel`` (and its partial) on disk; None when there is nothing to remove."""
    from distill_tui.downloads.sidecar import part_path

    p = core.inventory.abs_path(rel)
    size, found = 0, core.inventory.get(rel) is not None
    if os.path.lexists(p):
        size += _freed_by(p)[0]  # a hard link shared with the HF cache frees nothing
        found = True
    with contextlib.suppress(OSError):
        size += part_path(p).stat().st_blocks * 512
        found = True
    return size if found else None


def plan_removal(
    core: CoreContext,
    model_id: str,
    items: list[tuple[str, str | None]],
    *,
    force: bool = False,
    force_active: bool = False,
) -> RemovalPlan:
    """``items``: (component, quant id or None for the VAE) of ``model_id`` to remove.
    ``force`` overrides both refusals; ``force_active`` only the active-quant one (removing a
    whole model, ``--all``, says what it means: its selection is cleared)."""
    force_active = force_active or force
    model = core.catalog.require(model_id)
    settings = core.settings
    active_id = settings.settings.active_model_id
    plan = RemovalPlan(model.id)
    for component, qid in items:
        if component == "vae":
            rel = model.vae.file
            users = vae_users(core, model)
            if users and not force:
                names = ", ".join(m.name for m in users)
                plan.kept.append(f"kept {rel}: also used by {names} (force to remove it anyway)")
                continue
        else:
            quant = model.section(component).get(qid or "")
            if quant is None:
                continue
            rel = quant.file
            label = COMPONENT_LABELS[component]
            is_active = model.id == active_id and settings.selection(model.id).get(component) == qid
            if is_active and not force_active:
                plan.kept.append(
                    f"kept {rel}: {qid} is the active {label.lower()} quant of {model.name}, "
                    "the one Generate uses; select another downloaded quant first (or force)"
                )
                continue
        size = _on_disk(core, rel)
        if size is None:
            continue
        plan.targets.append(Target(component, qid, rel, size))
    removed = {t.rel for t in plan.targets}
    for m in core.catalog.models:  # selections that point at a removed file
        sel = settings.selection(m.id)
        for component in ("diffusion", "textEncoder"):
            q = m.section(component).get(sel.get(component) or "")
            if q is not None and q.file in removed:
                plan.clears.append((m.id, component))
    return plan


def remove(core: CoreContext, plan: RemovalPlan) -> RemovalResult:
    """Carry the plan out, each file under its download lock."""
    from distill_tui.downloads.lock import DestLock
    from distill_tui.downloads.sidecar import lock_path, part_path, sidecar_path

    inv = core.inventory
    out = RemovalResult()
    for t in plan.targets:
        p = inv.abs_path(t.rel)
        lock = DestLock(lock_path(p))
        try:
            acquired = lock.try_acquire()
        except OSError as e:  # a models dir this user may not write (read-only, another owner)
            out.skipped.append(
                f"{t.rel}: cannot remove it: {e.strerror or e} ({p.parent} is not writable "
                "by this user)"
            )
            continue
        if not acquired:
            out.skipped.append(
                f"{t.rel}: being downloaded by another distill process "
                f"(pid {lock.holder_pid() or '?'})"
            )
            continue
        freed = 0
        try:
            inv.forget(t.rel)
            for x in (p, part_path(p), sidecar_path(p)):
                size, shared = _freed_by(x)  # as it is now, under the lock
                with contextlib.suppress(FileNotFoundError):
                    x.unlink()
                    freed += size
                    if shared:
                        out.notes.append(f"{t.rel}: 0 B freed: {shared}")
        except OSError as e:
            out.skipped.append(f"{t.rel}: {e.strerror or e}")
            continue
        finally:
            lock.release(unlink=True)
        out.removed.append(t.rel)
        out.freed += freed
    gone = set(out.removed)
    for model_id, component in plan.clears:
        model = core.catalog.require(model_id)
        q = model.section(component).get(core.settings.selection(model_id).get(component) or "")
        if q is not None and q.file in gone:
            core.settings.set_quant(model_id, component, None)
    return out
