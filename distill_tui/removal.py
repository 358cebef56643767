"""Removing downloaded files: one set of rules for the Model Manager (del) and
``distill models remove``.

- The active quant of the active model is refused (Generate would break): select another
  downloaded quant first — unless forced (``--force``, or ``--all``: the whole model), which
  clears the selection. The active upscaler's file likewise, unless ``--force`` (which leaves
  no upscaler active). The CLI's lines name ``--force``; the Model Manager's (no force there)
  say what to do instead.
- Removing another model's selected quant clears that model's selection of it.
- A file another model uses too (the shared VAE, Klein 4B's Qwen3-4B text encoder that
  Z-Image-Turbo loads as well: ``Catalog.users_of``) is kept while that model has downloaded
  files of its own and would load it - unless forced (the CLI's ``--force``, or its question on
  a terminal; in the TUI, the confirmation): both name the models it breaks.
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
    #: file -> the names of the other models that use it (targets removed anyway, and kept ones)
    shared: dict[str, list[str]] = field(default_factory=dict)
    #: nothing may go without a force (the active upscaler): a refusal even with ``--all``
    refused: bool = False

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


def shared_users(core: CoreContext, model: CatalogModel, rel: str) -> list[CatalogModel]:
    """The other models that use ``rel`` too: it is one of their files, they have a downloaded
    file of their own (one that is not also a file of ``model``: a model set up only through
    the shared files uses nothing yet), and - where ``rel`` is a quant - it is the quant they
    chose for that component (or the recommended one, when they chose none)."""
    inv = core.inventory
    mine = {f.file for _c, _q, f in model.files()}
    out = []
    for m in core.catalog.users_of(rel):
        if m.id == model.id:
            continue
        if not any(inv.is_present(f.file) for _c, _q, f in m.files() if f.file not in mine):
            continue
        sel = core.settings.selection(m.id)
        uses = False
        for role, qid, f in m.files():
            if f.file != rel:
                continue
            if qid is None or (sel.get(role) or m.default_quant(role)) == qid:
                uses = True
        if uses:
            out.append(m)
    return out


def vae_users(core: CoreContext, model: CatalogModel) -> list[CatalogModel]:
    """Other models that share ``model``'s VAE file and use it (:func:`shared_users`)."""
    comp = model.component("vae")
    if comp is None or comp.file is None:
        return []
    return shared_users(core, model, comp.file.file)


def _active_file(core: CoreContext) -> dict[str, str]:
    """file -> the active model's component that loads it (what Generate uses now)."""
    settings = core.settings
    active = core.catalog.get(settings.settings.active_model_id)
    if active is None:
        return {}
    sel = settings.selection(active.id)
    out: dict[str, str] = {}
    for comp in active.components:
        if comp.has_quants:
            q = comp.get(sel.get(comp.role) or "")
            if q is not None:
                out[q.file] = comp.role
    return out


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
    force_shared: bool = False,
    force_word: str | None = None,
) -> RemovalPlan:
    """``items``: (component role, quant id or None for a component that is one file) of
    ``model_id`` to remove. ``force`` overrides every refusal; ``force_active`` only the
    active-quant one (removing a whole model, ``--all``, says what it means: its selection is
    cleared); ``force_shared`` only the shared-file one (the person was asked, naming who uses
    it). ``plan.shared`` names the other users of each shared file, removed or kept.

    The active upscaler's file needs ``force`` (``--force``) as the active quant does when it is
    removed alone; ``force_word``: how the caller forces a refusal (the CLI: ``--force``; None:
    the Model Manager, which has none - its lines say what to do there instead)."""
    force_active = force_active or force
    force_shared = force_shared or force
    model = core.catalog.require(model_id)
    settings = core.settings
    active_id = settings.settings.active_model_id
    active_files = _active_file(core)
    plan = RemovalPlan(model.id)
    hint = f" (or {force_word})" if force_word else ""
    active_up = getattr(settings.settings, "active_upscaler_id", None)
    if not model.spec.is_generator and not force and model.id == active_up:
        for component, _qid in items:
            comp = model.component(component)
            if comp is not None and comp.file is not None and _on_disk(core, comp.file.file):
                plan.kept.append(
                    f"kept {comp.file.file}: {model.name} is the active upscaler, the one "
                    f"upscaling uses; make another upscaler active first{hint}"
                )
        plan.refused = bool(plan.kept)
        return plan
    for component, qid in items:
        comp = model.component(component)
        if comp is None:
            continue
        if comp.file is not None:
            rel, qid = comp.file.file, None
        else:
            quant = comp.get(qid or "")
            if quant is None:
                continue
            rel = quant.file
            label = COMPONENT_LABELS.get(component, component)
            if rel in active_files and not force_active:
                owner = core.catalog.require(active_id)
                whose = (
                    f"the active {label.lower()} quant of {owner.name}"
                    if owner.id == model.id
                    else f"the {COMPONENT_LABELS.get(active_files[rel], 'file').lower()} the "
                    f"active model {owner.name} loads"
                )
                plan.kept.append(
                    f"kept {rel}: {qid} is {whose}, the one Generate uses; select another "
                    f"downloaded quant first{hint}"
                )
                continue
        users = shared_users(core, model, rel)
        if users:
            plan.shared[rel] = [m.name for m in users]
            if not force_shared:
                names = ", ".join(m.name for m in users)
                anyway = f" ({force_word} to remove it anyway)" if force_word else ""
                plan.kept.append(f"kept {rel}: also used by {names}{anyway}")
                continue
        size = _on_disk(core, rel)
        if size is None:
            continue
        plan.targets.append(Target(component, qid, rel, size))
    removed = {t.rel for t in plan.targets}
    for m in core.catalog.models:  # selections that point at a removed file
        sel = settings.selection(m.id)
        for comp in m.components:
            q = comp.get(sel.get(comp.role) or "") if comp.has_quants else None
            if q is not None and q.file in removed:
                plan.clears.append((m.id, comp.role))
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
    model = core.catalog.get(plan.model_id)
    up = getattr(core.settings.settings, "active_upscaler_id", None)
    if (
        model is not None
        and model.id == up
        and any(t.component == "upscaler" for t in plan.targets)
        and not any(core.inventory.is_present(f.file) for _c, _q, f in model.files())
    ):
        core.settings.update(active_upscaler_id=None)  # forced: no active upscaler now
    for model_id, component in plan.clears:
        comp = core.catalog.require(model_id).component(component)
        q = comp.get(core.settings.selection(model_id).get(component) or "") if comp else None
        if q is not None and q.file in gone:
            core.settings.set_quant(model_id, component, None)
    return out
