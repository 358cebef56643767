"""Every ``--json`` output has ``version`` and the top-level shape the README documents
(issue 23.7). ``generate --json`` runs the real engine (tests/test_generate_cli.py checks its
shape); ``catalog check --json`` and ``models check`` ask a Hub (tests/test_catalog_check.py,
tests/test_scriptable_cli.py): here they run offline / with nothing installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill_tui.cli import build_parser
from distill_tui.cli import main as cli_main
from distill_tui.cli.completion import walk

README = Path(__file__).resolve().parent.parent / "README.md"

#: (argv, the top-level keys the README lists for it)
COMMANDS = [
    (["models", "list", "--json"], {"version", "modelsDir", "activeModelId", "storage", "models"}),
    (["models", "status", "--json"], {"version", "modelsDir", "downloads"}),
    (
        ["models", "download", "flux2-klein-4b", "--dry-run", "--json"],
        {
            "version",
            "model",
            "modelsDir",
            "offline",
            "files",
            "needBytes",
            "marginBytes",
            "freeBytes",
            "fits",
            "exitCode",
        },
    ),
    (["models", "check", "--json"], {"version", "endpoint", "files", "summary"}),
    (
        ["models", "recommend", "--json"],
        {"version", "target", "margin", "knobs", "rebuild", "models"},
    ),
    (["doctor", "--json"], {"version", "rows", "fields", "machine"}),
]


def test_every_json_command_is_listed_here():
    """A new ``--json`` command must be added above (and to the README)."""
    have = {n.path for n in walk(build_parser()) if "--json" in n.options}
    listed = {
        " ".join(a for a in argv[:2] if not a.startswith("-") and a != "flux2-klein-4b")
        for argv, _ in COMMANDS
    }
    # generate and upscale run the engine: tests/test_generate_cli.py and tests/test_upscale.py
    # check their shape and version
    assert have - {"generate", "upscale", "catalog check"} == listed


@pytest.mark.parametrize(
    "argv,keys", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_json_has_version_and_the_documented_shape(argv, keys, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing leaves the machine
    cli_main(argv)
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1
    assert keys <= set(doc), keys - set(doc)
    from distill_tui.cli import models

    documented = README.read_text() + (models.__doc__ or "")  # the README points there
    for key in keys:
        assert re.search(rf'"{key}"', documented), key


def test_doctor_json_fields_are_typed_and_hold_no_secret(capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz0123")
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example.org/hf")
    assert cli_main(["doctor", "--json"]) == 0
    out = capsys.readouterr().out
    assert "abcdefghijklmnop" not in out
    f = json.loads(out)["fields"]
    assert isinstance(f["freeDiskBytes"], int) and f["freeDiskBytes"] > 0
    assert f["hfToken"] == {"present": True, "source": "HF_TOKEN", "sent": True}
    assert f["hfOffline"] is False and f["modelReady"] is False and f["missing"]
    assert isinstance(f["hfTimeouts"]["etag"], float)
    assert f["hfEndpoint"] == "https://mirror.example.org/hf"
