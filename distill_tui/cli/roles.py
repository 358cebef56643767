"""The CLI's words for a model's components (issue 21): ``--quant ROLE=Q`` read against one
model (the old ``--diffusion`` / ``--text-encoder`` flags are aliases), a role as a person reads
it ("text encoder") and the flags that name one quant again (hints, resume lines).

No textual import.
"""

from __future__ import annotations

import argparse
import re

from distill_tui.catalog import CatalogModel, UnknownQuantError
from distill_tui.cli import CliError
from distill_tui.quantflag import (
    ALIASES,
    QuantFlagError,
    merge_aliases,
    parse_quant_flags,
    resolve_roles,
    role_key,
)

#: short spellings of a role on the command line
SHORT = {"te": "textEncoder"}


def role_word(role: str) -> str:
    """``textEncoder`` -> ``text encoder`` (how lines name a component)."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", role).lower()


def role_flag(role: str) -> str:
    """``textEncoder`` -> ``text-encoder`` (how ``--only`` and ``--quant`` spell it)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", role).lower()


def quant_flag(role: str, quant_id: str) -> list[str]:
    """The words that pick one quant of a role: the old flag where it has one."""
    alias = ALIASES.get(role)
    return [alias, quant_id] if alias else ["--quant", f"{role}={quant_id}"]


def quant_args(args: argparse.Namespace, model: CatalogModel) -> dict[str, str]:
    """{role: quant id} from ``--quant ROLE=Q`` (repeatable) and the old per-role flags, keyed
    by ``model``'s roles. Bad input is one line naming the valid roles or quants."""
    try:
        given = parse_quant_flags(getattr(args, "quant", None))
        given = {SHORT.get(role_key(r), r): q for r, q in given.items()}
        given = merge_aliases(
            given,
            {
                "diffusion": getattr(args, "diffusion", None),
                "textEncoder": getattr(args, "text_encoder", None),
            },
        )
        chosen = resolve_roles(model, given, check_quants=False)
    except QuantFlagError as e:
        raise CliError(str(e)) from None
    for role, qid in chosen.items():
        comp = model.section(role)
        if comp.get(qid) is None:
            raise CliError(str(UnknownQuantError(model.id, role, qid, comp.ids)))
    return chosen


def parts_arg(text: str, model: CatalogModel, flag: str = "--only") -> set[str]:
    """``--only diffusion,text-encoder`` -> the model's roles (any spelling of a role; ``te``
    for the text encoder)."""
    by_key = {role_key(r): r for r in model.roles}
    for short, full in SHORT.items():
        if full in model.roles:
            by_key.setdefault(short, full)
    wanted: set[str] = set()
    for part in text.split(","):
        typed = part.strip()
        found = by_key.get(role_key(typed))
        if found is None:
            choices = ", ".join(role_flag(r) for r in model.roles)
            raise CliError(f"{flag}: unknown part {typed.lower()!r}; choose from {choices}")
        wanted.add(found)
    return wanted
