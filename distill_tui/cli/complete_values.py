"""``distill __complete KIND [WORDS...]``: the dynamic values a shell completes.

The completion scripts (``distill completion bash|zsh|fish``) call this for the values that
live in the user's files, not in the parser: model ids (``models download MODEL``,
``--model``), the quants of a model per role (``--diffusion``, ``--text-encoder``), LoRA names
(``--lora``) and history ids (``--reuse``). Each line is ``value`` or ``value<TAB>description``
(fish shows the description; the bash/zsh scripts cut it off).

It runs on every Tab press, so it stays cheap: plain ``json`` reads of the user catalog (the
bundled one when there is none), settings.json and the tail of history.jsonl - no pydantic, no
catalog validation, no textual. Anything unreadable completes nothing (a completion never prints
an error into the user's command line).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: catalog keys of each role a ``--ROLE`` flag names (v2 catalog; v3 components by role)
ROLE_KEYS = {"diffusion": ("diffusion",), "text-encoder": ("textEncoder", "text_encoder")}
#: how many history ids are offered (newest first); ``last`` is always offered
HISTORY_LIMIT = 50
#: the bytes of history.jsonl read from its end (the newest records)
HISTORY_TAIL = 256 * 1024
#: LoRA folders are listed this deep and this wide at most (a Tab press never walks /usr)
LORA_MAX_DEPTH = 4
LORA_MAX_ENTRIES = 5000
LORA_EXTENSIONS = (".safetensors", ".gguf", ".pt", ".ckpt")


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(32 * 1024 * 1024)
        return json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None


def _paths():
    from distill_tui.paths import AppPaths

    return AppPaths.from_env()


def _settings(paths) -> dict:
    data = _read_json(paths.settings_file)
    return data if isinstance(data, dict) else {}


def _catalog_models(paths) -> list[dict]:
    data = _read_json(paths.user_catalog_file)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        from distill_tui.resources import bundled_catalog_path

        try:
            data = _read_json(bundled_catalog_path())
        except FileNotFoundError:
            data = None
    models = data.get("models") if isinstance(data, dict) else None
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def _one_line(text: object, limit: int = 60) -> str:
    s = " ".join(str(text).split())
    s = "".join(c for c in s if c.isprintable())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _valid_word(value: object) -> bool:
    """A value a shell can take as one word: printable, no whitespace, no quote characters."""
    s = str(value)
    return bool(s) and s.isprintable() and not any(c.isspace() or c in "'\"\\`$" for c in s)


def models(paths) -> Iterator[str]:
    for m in _catalog_models(paths):
        mid = m.get("id")
        if _valid_word(mid):
            yield f"{mid}\t{_one_line(m.get('name') or '')}"


def _model_from_words(words: Sequence[str]) -> str | None:
    """The model a command line names: ``--model ID`` or the positional after ``models VERB``."""
    for i, w in enumerate(words):
        if w == "--model" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--model="):
            return w.split("=", 1)[1]
    if len(words) >= 4 and words[1] == "models":
        for w in words[3:]:
            if not w.startswith("-"):
                return w
            break
    return None


def _role_key(role: object) -> str:
    """``text-encoder``, ``text_encoder`` and ``textEncoder`` are one role (quantflag.role_key,
    not imported: a Tab press stays cheap)."""
    return str(role or "").replace("-", "").replace("_", "").lower()


def _role_quants(model: dict, role: str) -> Iterator[tuple[str, str]]:
    for key in ROLE_KEYS.get(role, (role,)):
        section = model.get(key)
        if isinstance(section, dict) and isinstance(section.get("quants"), list):
            for q in section["quants"]:
                if isinstance(q, dict) and _valid_word(q.get("id")):
                    yield str(q["id"]), _one_line(q.get("label") or q.get("description") or "")
    comps = model.get("components")  # catalog v3: components with a role
    if isinstance(comps, list):
        for c in comps:
            if isinstance(c, dict) and _role_key(c.get("role")) == _role_key(role):
                for q in c.get("quants") or []:
                    if isinstance(q, dict) and _valid_word(q.get("id")):
                        yield str(q["id"]), _one_line(q.get("label") or "")


def quants(paths, role: str, words: Sequence[str]) -> Iterator[str]:
    all_models = _catalog_models(paths)
    wanted = _model_from_words(words)
    if wanted is None and words[1:2] == ["generate"]:
        wanted = _settings(paths).get("active_model_id") or None
    chosen = [m for m in all_models if m.get("id") == wanted] or all_models
    seen: set[str] = set()
    for m in chosen:
        for qid, label in _role_quants(m, role):
            if qid not in seen:
                seen.add(qid)
                yield f"{qid}\t{label}" if len(chosen) == 1 else f"{qid}\t{m.get('id')}"


def role_quants(paths, words: Sequence[str]) -> Iterator[str]:
    """``--quant ROLE=Q``: every role with quants of the model on the line (else the active
    one for generate, else every model's), as ``role=quant``."""
    all_models = _catalog_models(paths)
    wanted = _model_from_words(words)
    if wanted is None and words[1:2] == ["generate"]:
        wanted = _settings(paths).get("active_model_id") or None
    chosen = [m for m in all_models if m.get("id") == wanted] or all_models
    seen: set[str] = set()
    for m in chosen:
        for c in m.get("components") or []:
            role = c.get("role") if isinstance(c, dict) else None
            if not _valid_word(role) or not isinstance(c.get("quants"), list):
                continue
            for qid, label in _role_quants(m, str(role)):
                word = f"{role}={qid}"
                if word not in seen:
                    seen.add(word)
                    yield f"{word}\t{label}" if len(chosen) == 1 else f"{word}\t{m.get('id')}"


def _lora_dir(paths) -> Path:
    s = _settings(paths)
    gen = s.get("generation")
    d = gen.get("lora_dir") if isinstance(gen, dict) else None
    if isinstance(d, str) and d:
        return Path(d).expanduser()
    base = s.get("model_base_path")
    models = Path(base).expanduser() if isinstance(base, str) and base else None
    return (models or paths.default_models_dir) / "loras"


def loras(paths, words: Sequence[str]) -> Iterator[str]:
    folder = None
    for i, w in enumerate(words):
        if w == "--lora-dir" and i + 1 < len(words):
            folder = Path(words[i + 1]).expanduser()
    folder = folder or _lora_dir(paths)
    stack: list[tuple[Path, int]] = [(folder, 0)]
    seen = 0
    names: list[str] = []
    while stack and seen < LORA_MAX_ENTRIES:
        d, depth = stack.pop()
        try:
            with os.scandir(d) as it:
                for entry in it:
                    seen += 1
                    if seen >= LORA_MAX_ENTRIES:
                        break
                    try:
                        if entry.is_dir():
                            if depth + 1 < LORA_MAX_DEPTH:
                                stack.append((Path(entry.path), depth + 1))
                        elif entry.name.lower().endswith(LORA_EXTENSIONS):
                            rel = Path(entry.path).relative_to(folder).with_suffix("")
                            names.append(rel.as_posix())
                    except (OSError, ValueError):
                        continue
        except OSError:
            continue
    yield from (n for n in sorted(names, key=str.lower) if _valid_word(n))


def history(paths) -> Iterator[str]:
    yield "last\tthe newest image"
    try:
        with open(paths.history_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - HISTORY_TAIL))
            tail = f.read()
    except OSError:
        return
    records = []
    for line in tail.splitlines()[-HISTORY_LIMIT * 2 :]:
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict) and _valid_word(rec.get("id")):
            records.append(rec)
    for rec in reversed(records[-HISTORY_LIMIT:]):
        yield f"{rec['id']}\t{_one_line(rec.get('prompt') or '')}"


def values(kind: str, words: Sequence[str]) -> list[str]:
    paths = _paths()
    if kind == "model":
        return list(models(paths))
    if kind.startswith("quant:"):
        return list(quants(paths, kind.split(":", 1)[1], words))
    if kind == "rolequant":
        return list(role_quants(paths, words))
    if kind == "lora":
        return list(loras(paths, words))
    if kind == "history":
        return list(history(paths))
    return []


def main(argv: Sequence[str]) -> int:
    """``argv``: KIND then the words of the command line being completed."""
    if not argv:
        return 2
    try:
        out = values(argv[0], list(argv[1:]))
    except Exception:  # a Tab press never shows a traceback
        return 1
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0
