"""Reading distill's own JSON files (settings.json, the user catalog, installed.json, sidecars).

One rule for all of them: :func:`loads` either returns plain JSON data of a sane shape or
raises :class:`JSONFileError` (a ``ValueError``) whose message is one line for a person. A file
nested thousands of levels deep (``RecursionError`` in the parser, and again in anything that
walks the result), a number too large for a float (``1e400`` -> ``inf``), ``NaN``/``Infinity``
or an integer of thousands of digits are all "not a file distill wrote": the caller moves it
aside and reports it, as for any other corrupt file.

No textual, no pydantic: every core module may use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: deeper than any file distill writes (the catalog is about 6 levels)
MAX_DEPTH = 64


class JSONFileError(ValueError):
    """The bytes are not usable JSON data; ``str()`` is one line naming the problem."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONFileError(f"number {text[:20]!r} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JSONFileError(f"{name} is not a JSON number")


def _depth_problem(obj: Any, limit: int) -> str | None:
    """Iterative (a recursive walk would hit the limit this guards against)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return f"nested more than {limit} levels deep"
        stack.extend((c, depth + 1) for c in children)
    return None


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for our own files; every problem is a :class:`JSONFileError`."""
    try:
        obj = json.loads(data, parse_float=_finite, parse_constant=_constant)
    except JSONFileError:
        raise
    except RecursionError:
        raise JSONFileError(f"not valid JSON (nested more than {max_depth} levels deep)") from None
    except json.JSONDecodeError as e:
        raise JSONFileError(f"not valid JSON (line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise JSONFileError("not valid JSON (not UTF-8 text)") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise JSONFileError(f"not valid JSON ({str(e).splitlines()[0][:80]})") from None
    problem = _depth_problem(obj, max_depth)
    if problem:
        raise JSONFileError(f"not valid JSON ({problem})")
    return obj
