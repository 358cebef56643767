"""Every third-party module the package imports is a runtime dependency (or a dependency of one).

A plain ``pip install .`` gets ``[project.dependencies]`` and nothing from the ``test`` extra: an
import that only the test extra satisfies works in the suite and fails for every user (the GGUF
preflight once imported ``gguf`` that way). The list of imports comes from the source (every
``import`` statement, also those inside functions), the declared dependencies from
pyproject.toml, and their own dependencies from the installed distributions' metadata.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "distill_tui"


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules(pkg: Path = PKG) -> dict[str, list[str]]:
    """{top-level module: [where it is imported]} for every import in the package."""
    found: dict[str, list[str]] = {}
    for path in sorted(pkg.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".", 1)[0]
                found.setdefault(top, []).append(f"{path.relative_to(pkg.parent)}:{node.lineno}")
    return found


def runtime_closure(pyproject: Path = ROOT / "pyproject.toml") -> set[str]:
    """Canonical names of the declared runtime dependencies and everything they require."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    env = default_environment()
    todo = [Requirement(d) for d in deps]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = _canon(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(Requirement(r) for r in requires)
    return seen


def undeclared_imports(pkg: Path = PKG, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    closure = runtime_closure(pyproject)
    dists = md.packages_distributions()
    problems = []
    for module, where in sorted(imported_top_level_modules(pkg).items()):
        if module in sys.stdlib_module_names or module in ("distill_tui", "__future__"):
            continue
        owners = {_canon(d) for d in dists.get(module, [])}
        if not owners:
            problems.append(f"{module}: not installed at all (imported at {where[0]})")
        elif not owners & closure:
            problems.append(
                f"{module} (from {', '.join(sorted(owners))}) is imported at {where[0]} but is "
                "not a runtime dependency nor a dependency of one"
            )
    return problems


def test_every_runtime_import_is_a_runtime_dependency() -> None:
    assert undeclared_imports() == []


def test_the_check_catches_a_test_only_import(tmp_path: Path) -> None:
    """The check itself can fail: a package importing ``pytest`` (test extra only) is caught,
    and so is ``gguf`` when it sits in the test extra instead of the dependencies."""
    pkg = tmp_path / "distill_tui"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    import pytest\n    from gguf import GGUFReader\n")
    text = (ROOT / "pyproject.toml").read_text()
    moved = re.sub(r'\n\s*"gguf[^"]*",[^\n]*', "", text.split("[project.optional-dependencies]")[0])
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(moved)
    problems = undeclared_imports(pkg, pyproject)
    assert any(p.startswith("pytest") for p in problems), problems
    assert any(p.startswith("gguf") for p in problems), problems
