"""The tree stays ruff-clean (the issue's "Checks"): a lint error fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the test extra: pip install -e '.[test]'"
    out = subprocess.run(
        [ruff, "check", "distill_tui", "tests", "bench"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_import_contracts_are_kept():
    """pyproject's [tool.importlinter] contracts: the core never imports textual, the headless
    CLI neither, widgets know no screens and screens no app."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the test extra: pip install -e '.[test]'"
    out = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def test_mypy_is_clean():
    """`python -m mypy distill_tui` reports no error (pyproject's [tool.mypy])."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "distill_tui"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Success: no issues found" in out.stdout
