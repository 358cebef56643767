"""``--quant ROLE=Q``: the one parser of the per-component quant flag (issue 21).

A model is a family and a list of components; each component with quants (a radio set) is
picked by its role: ``--quant diffusion=Q4_K --quant text-encoder=Q8_0``. The role is the
catalog's (``diffusion``, ``textEncoder`` ...) matched ignoring case, ``-`` and ``_``, so the
old flag's spelling (``text-encoder``) works too. The old ``--diffusion`` / ``--text-encoder``
flags stay as aliases (:func:`merge_aliases`).

No textual import: the CLI uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from distill_tui.textsafe import visible

if TYPE_CHECKING:
    from distill_tui.catalog import CatalogModel

#: the old per-role flags, kept as aliases of ``--quant ROLE=Q``
ALIASES: dict[str, str] = {"diffusion": "--diffusion", "textEncoder": "--text-encoder"}


class QuantFlagError(ValueError):
    """A ``--quant`` the command cannot use; the message is one line for the person."""


def role_key(text: str) -> str:
    """How a typed role is compared: ``text-encoder``, ``text_encoder`` and ``textEncoder``
    are one role."""
    return text.replace("-", "").replace("_", "").lower()


def parse_quant_flags(items: Sequence[str] | None, *, flag: str = "--quant") -> dict[str, str]:
    """``["diffusion=Q4_K", "text-encoder=Q8_0"]`` -> ``{"diffusion": "Q4_K", "text-encoder":
    "Q8_0"}`` (roles as typed; :func:`resolve_roles` maps them to a model's). A malformed item,
    or one role given two different quants, raises :class:`QuantFlagError`."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for item in items or ():
        role, eq, quant = item.partition("=")
        role, quant = role.strip(), quant.strip()
        if not eq or not role or not quant:
            raise QuantFlagError(
                f"{flag} {visible(item)}: expected ROLE=QUANT (e.g. {flag} diffusion=Q4_K)"
            )
        key = role_key(role)
        if key in seen and out[seen[key]] != quant:
            raise QuantFlagError(
                f"{flag}: {visible(role)} is given twice ({visible(out[seen[key]])} and "
                f"{visible(quant)})"
            )
        seen.setdefault(key, role)
        out[seen[key]] = quant
    return out


def merge_aliases(
    given: Mapping[str, str],
    aliases: Mapping[str, str | None],
    *,
    flag: str = "--quant",
) -> dict[str, str]:
    """``given`` (from :func:`parse_quant_flags`) plus the old flags' values (``{"diffusion":
    args.diffusion, "textEncoder": args.text_encoder}``; None: not given). An alias and a
    ``--quant`` naming the same role with different quants raise :class:`QuantFlagError`."""
    out = dict(given)
    keys = {role_key(r): r for r in out}
    for role, value in aliases.items():
        if value is None:
            continue
        typed = keys.get(role_key(role))
        if typed is not None and out[typed] != value:
            raise QuantFlagError(
                f"{ALIASES.get(role, role)} {visible(value)} and {flag} "
                f"{visible(typed)}={visible(out[typed])} name different quants"
            )
        if typed is None:
            out[role] = value
            keys[role_key(role)] = role
    return out


def resolve_roles(
    model: CatalogModel,
    given: Mapping[str, str],
    *,
    flag: str = "--quant",
    check_quants: bool = True,
) -> dict[str, str]:
    """``given`` keyed by ``model``'s roles (the catalog's spelling). A role the model has not,
    or one without quants (a VAE is one file), raises :class:`QuantFlagError` naming the
    roles it has; with ``check_quants`` so does a quant the component does not offer (values
    may be comma lists: each is checked)."""
    by_key = {role_key(r): r for r in model.quant_roles}
    out: dict[str, str] = {}
    for typed, quant in given.items():
        role = by_key.get(role_key(typed))
        if role is None:
            has = ", ".join(model.quant_roles) or "none"
            what = (
                "is one file (no quant to pick)"
                if model.component(typed) is not None
                or role_key(typed) in {role_key(r) for r in model.roles}
                else "is not one of its components"
            )
            raise QuantFlagError(
                f"{flag} {visible(typed)}={visible(quant)}: {visible(typed)} of {model.id} "
                f"{what}; roles with quants: {has}"
            )
        if check_quants:
            comp = model.section(role)
            for q in (x.strip() for x in quant.split(",")):
                if q and comp.get(q) is None:
                    raise QuantFlagError(
                        f"{flag} {visible(typed)}={visible(q)}: {model.id} has no "
                        f"{comp.label.lower()} quant {visible(q)!r}; valid: {', '.join(comp.ids)}"
                    )
        out[role] = quant
    return out


def apply_to_selection(selection: Any, quants: Mapping[str, str]) -> Any:
    """``selection`` (a ``settings.QuantSelection``) with these roles' quants replaced."""
    fields = type(selection).model_fields
    update: dict[str, Any] = {}
    for role, quant in quants.items():
        attr = _SELECTION_FIELDS.get(role)
        if attr is not None and attr in fields:
            update[attr] = quant
    if "quants" in fields:  # a per-role selection
        update["quants"] = {**(selection.quants or {}), **quants}
    return selection.model_copy(update=update)


#: the selection's field of each role (settings.QuantSelection today)
_SELECTION_FIELDS = {"diffusion": "diffusion_quant", "textEncoder": "text_encoder_quant"}
