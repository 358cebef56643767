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
