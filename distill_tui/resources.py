"""Locate the bundled data folders (``catalog/`` and ``styles/``).

In a source checkout or an editable install they sit at the repository root next to the
package; a built wheel carries them inside the package as ``distill_tui/_data/<name>``
(hatch ``force-include``). This module is the one place that knows both layouts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the directory of bundled data ``name`` ("catalog" or "styles")."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"bundled data folder {name!r} not found next to {_PACKAGE_DIR} "
        "(broken install? reinstall with `pip install .`)"
    )


def bundled_catalog_path() -> Path:
    return data_dir("catalog") / "model-catalog.json"


def style_path(name: str) -> Path:
    return data_dir("styles") / name
