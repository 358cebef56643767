"""LoRA files from a folder (``generation.lora_dir``, default ``<models>/loras``).

A LoRA is named by its file name without the extension (``style.safetensors`` -> ``style``);
subfolders are listed as ``sub/name``. A choice is ``NAME[:WEIGHT]`` (weight 1.0 when left
out); the form takes several separated by ``;`` or ``,``, the CLI one per ``--lora``. The
engine gets each as an absolute path and a weight (``LoraSpec``) and adds sd.cpp's prompt
tag ``<lora:PATH:WEIGHT>`` itself, so the recorded prompt stays as typed.

No textual import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from distill_tui.bounds import problem

if TYPE_CHECKING:
    from distill_tui.engine.protocol import LoraSpec


#: what sd.cpp loads as a LoRA
LORA_EXTENSIONS = (".safetensors", ".gguf", ".pt", ".ckpt")


class LoraError(ValueError):
    """A LoRA choice that cannot be used; the message is for the person."""


#: a LoRA folder walk stops after this many entries or seconds (a lora_dir set to /usr)
LORA_SCAN_ENTRIES = 20_000
LORA_SCAN_SECONDS = 3.0


def scan_loras(folder: Path) -> tuple[list[str], list[str]]:
    """(names, skipped): the LoRA names in ``folder`` and its subfolders, sorted ([] when it
    does not exist), and what the bounded walk left out (scan.py: a tree nested deeper than
    its limit, a huge folder). Blocking: the TUI calls it from a thread."""
    from distill_tui.scan import walk_files

    base = Path(folder)
    if not base.is_dir():
        return [], []
    walk = walk_files(
        base, LORA_EXTENSIONS, max_entries=LORA_SCAN_ENTRIES, max_seconds=LORA_SCAN_SECONDS
    )
    names = {p.relative_to(base).with_suffix("").as_posix() for p, _size in walk.files}
    return sorted(names, key=str.lower), walk.skipped()


def list_loras(folder: Path) -> list[str]:
    """The LoRA names in ``folder`` (and its subfolders), sorted; [] when it does not exist."""
    return scan_loras(folder)[0]


def parse_lora(text: str) -> tuple[str, float]:
    """``NAME[:WEIGHT]`` -> (name, weight). Raises :class:`LoraError`."""
    t = text.strip()
    m = re.fullmatch(r"(.+?)(?::\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+))?", t)
    if not t or m is None:
        raise LoraError("a LoRA is NAME or NAME:WEIGHT")
    name, weight = m.group(1).strip(), m.group(2)
    if ":" in name or ">" in name:
        raise LoraError(f"{t!r}: a LoRA is NAME or NAME:WEIGHT (weight a number)")
    w = float(weight) if weight is not None else 1.0
    why = problem("lora_weight", w)  # the one table's bound
    if why is not None:
        raise LoraError(f"{t!r}: weight {w:g}: {why}")
    return name, w


def parse_lora_list(text: str) -> list[tuple[str, float]]:
    """The form's field: ``a:0.8; b`` (``;`` or ``,`` between choices)."""
    return [parse_lora(part) for part in re.split(r"[;,]", text) if part.strip()]


def format_lora_list(loras: list[tuple[str, float]] | tuple[tuple[str, float], ...]) -> str:
    return "; ".join(f"{name}:{weight:g}" for name, weight in loras)


def resolve_lora(folder: Path, name: str) -> Path:
    """The file of LoRA ``name`` in ``folder``. Raises :class:`LoraError` naming the folder."""
    base = Path(folder)
    direct = base / name
    candidates = [direct] if direct.suffix.lower() in LORA_EXTENSIONS else []
    candidates += [direct.with_name(direct.name + ext) for ext in LORA_EXTENSIONS]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = list_loras(base)
    hint = f" (found: {', '.join(known[:6])}{'…' if len(known) > 6 else ''})" if known else ""
    where = "" if base.is_dir() else " (the folder does not exist)"
    raise LoraError(f"LoRA {name!r} not found in {base}{where}{hint}")


#: tensor names of the kinds stable-diffusion.cpp applies (lora.hpp, name_conversion.cpp):
#: LoRA up/down/mid in kohya, diffusers and PEFT spellings, LoHa, LoKr and full diffs
LORA_TENSOR = re.compile(
    r"lora[._](?:up|down|mid|A|B)\b|lora_linear|hada_w[12]|lokr_w[12]|\.diff(?:_b)?$"
)


def lora_file_problem(path: Path, name: str = "") -> str | None:
    """Why the file at ``path`` is no LoRA the engine can apply, from its header alone (read
    with every count bounded), or None. The engine would take such a file silently and apply
    nothing: random bytes, a truncated file, a model's own weights. ``.pt``/``.ckpt`` files
    (pickles) are not read here; the engine's count of applied tensors judges them (child)."""
    p = Path(path)
    label = f"LoRA {name!r}" if name else f"LoRA {p.name!r}"
    if p.suffix.lower() not in (".safetensors", ".gguf"):
        return None
    from distill_tui.engine.preflight import PreflightError, read_tensors

    try:
        table = read_tensors(p, role="LoRA")
    except PreflightError as e:
        return f"{label} cannot be used: {e.message}"
    names = list(table.shapes)
    if not any(LORA_TENSOR.search(n) for n in names):
        example = f" (e.g. {names[0]!r}: a model's file?)" if names else ""
        return (
            f"{label} is not a LoRA: none of its {len(names)} tensors is a LoRA tensor "
            f"(lora_up/lora_down, lora_A/lora_B, LoHa or LoKr){example}"
        )
    return None


def lora_specs(folder: Path, loras: list[tuple[str, float]] | tuple) -> list[LoraSpec]:
    """Protocol specs (absolute paths) for the chosen names, each file checked to be a LoRA
    (:func:`lora_file_problem`). Raises :class:`LoraError`."""
    from distill_tui.engine.protocol import LoraSpec

    specs = []
    for name, weight in loras:
        path = resolve_lora(folder, name)
        why = lora_file_problem(path, name)
        if why is not None:
            raise LoraError(why)
        try:
            specs.append(LoraSpec(name=name, path=str(path), weight=weight))
        except ValueError as e:  # pydantic: a path the prompt tag cannot carry
            raise LoraError(f"LoRA {name!r}: its path contains ':' or '>': {path}") from e
    return specs


def split_paths(text: str) -> list[str]:
    """Several image paths in one field: separated by ``;`` (or ``,`` where the comma-joined
    text is not itself an existing file)."""
    out: list[str] = []
    for part in text.split(";"):
        p = part.strip()
        if not p:
            continue
        if "," in p and not Path(p).expanduser().exists():
            out.extend(x.strip() for x in p.split(",") if x.strip())
        else:
            out.append(p)
    return out
