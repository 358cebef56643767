"""Failure reasons go to stderr, always (issue 23.5): the README says so; stdout keeps the
results (or the one JSON document). Real CLI processes against the loopback Hub."""

from __future__ import annotations

import json

from tests.test_hostile_downloads import M4, cli, models_dir, no_traceback, sha_of

REL = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
ARGS = ("models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae")


def _refused(hub_catalog, fake_hub) -> None:
    fake_hub.linked_size_override[sha_of(hub_catalog, REL)] = 0  # a refusal with a reason


def test_failure_reason_is_on_stderr_not_stdout(hub_catalog, fake_hub):
    _refused(hub_catalog, fake_hub)
    rc, out, err, _ = cli(*ARGS)
    assert rc == 1
    no_traceback(out + err)
    assert "FAILED" in err and "0 bytes" in err and "nothing was downloaded" in err
    assert "FAILED" not in out and "0 bytes" not in out
    assert not (models_dir() / REL).exists()


def test_failure_reason_on_stderr_with_quiet(hub_catalog, fake_hub):
    _refused(hub_catalog, fake_hub)
    rc, out, err, _ = cli(*ARGS, "--quiet")
    assert rc == 1
    assert "0 bytes" in err and REL.split("/")[-1] in err
    assert out.strip() == ""


def test_failure_reason_on_stderr_with_json(hub_catalog, fake_hub):
    _refused(hub_catalog, fake_hub)
    rc, out, err, _ = cli(*ARGS, "--json", "--quiet")
    assert rc == 1
    doc = json.loads(out)  # stdout is the one JSON document
    assert doc["version"] == 1 and doc["files"][0]["state"] == "failed"
    assert "0 bytes" in doc["files"][0]["error"] and "0 bytes" in err


def test_hf_hub_disable_progress_bars_drops_progress_not_results(
    hub_catalog, fake_hub, capsys, monkeypatch
):
    """HF_HUB_DISABLE_PROGRESS_BARS=1 (issue 23.9), as huggingface_hub honours it: no progress
    lines, while the state changes and the result lines stay."""
    import distill_tui.cli.downloads as dl
    from distill_tui.cli import main

    monkeypatch.setattr(dl, "PROGRESS_EVERY", 0.3)
    fake_hub.rate = 40_000  # a few seconds: several progress lines without the variable
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    assert main(["models", "download", M4, "--only", "diffusion", "--connections", "1"]) == 0
    cap = capsys.readouterr()
    assert not [x for x in cap.err.splitlines() if "%" in x], cap.err
    assert "downloaded and verified" in cap.out
