"""Issue 14.3 and 14.4: `distill models check` (upstream drift), and the scripting conventions:
--json / --quiet / --dry-run on models download, non-tty progress lines, generate --json and
-o .jpg/.webp, --help with choices, shell completion, a closed pipe. Loopback Hub, real engine."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.cli import EXIT_PIPE, main
from distill_tui.outputs import parse_parameters, read_parameters
from tests.hub_fixtures import payload_bytes

ROOT = Path(__file__).resolve().parent.parent
M4 = "flux2-klein-4b"


def _hub_path(url: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    m = re.search(r"^/(.+?/[^/]+)/resolve/[^/]+/(.+)$", urlsplit(url).path)
    assert m
    return m.group(1), m.group(2)


# ---- models check ---------------------------------------------------------------------------
def test_models_check_reports_changed_and_gone(hub_catalog, fake_hub, capsys):
    assert main(["models", "download", M4, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["models", "check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and len(doc["files"]) == 3
    assert {f["status"] for f in doc["files"]} == {"up_to_date"}
    model = hub_catalog.context().catalog.require(M4)
    sel_diff = next(f for f in doc["files"] if f["component"] == "diffusion")
    entry = model.diffusion.get(sel_diff["quant"])
    repo, path = _hub_path(entry.download_url)
    new = payload_bytes("changed upstream", len(hub_catalog.payload(entry.file)) + 100)
    fake_hub.add_file(repo, path, new)  # the repo's file now has other bytes
    n_cdn = len(fake_hub.cdn_requests())
    assert main(["models", "check", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_file = {f["file"]: f for f in doc["files"]}
    changed = by_file[entry.file]
    assert changed["status"] == "changed" and "upstream changed" in changed["summary"]
    import hashlib

    assert changed["hub"]["sha256"] == hashlib.sha256(new).hexdigest()
    assert changed["hub"]["size"] == len(new) and changed["local"]["size"] != len(new)
    assert [f["status"] for k, f in by_file.items() if k != entry.file] == ["up_to_date"] * 2
    assert doc["summary"] == {"upToDate": 2, "changed": 1, "gone": 0, "unknown": 0}
    assert len(fake_hub.cdn_requests()) == n_cdn  # never downloads
    # the VAE disappears upstream: gone (404)
    vrepo, vpath = _hub_path(model.vae.download_url)
    del fake_hub.files[(vrepo, vpath)]
    assert main(["models", "check", M4]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"{re.escape(model.vae.file)}\s+gone \(", out), out
    assert re.search(rf"{re.escape(entry.file)}\s+upstream changed \(new sha256", out), out
    assert "1 up to date, 1 changed upstream, 1 gone" in out


def test_models_check_unreachable_is_one_line(hub_catalog, fake_hub, capsys, monkeypatch):
    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0
    capsys.readouterr()
    fake_hub.stop()
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    assert main(["models", "check"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot check" in err, err


def test_catalog_revision_pins_the_resolve_url(hub_catalog):
    from distill_tui.catalog import parse_catalog

    raw = json.loads(hub_catalog.path.read_text())
    raw["models"][0]["vae"]["revision"] = "a" * 40
    cat = parse_catalog(json.dumps(raw), "x")
    vae = cat.require(M4).vae
    assert f"/resolve/{'a' * 40}/" in vae.sources[0] and vae.pinned_revision == "a" * 40
    assert "/resolve/main/" in vae.download_url


# ---- models download: --dry-run, --json, --quiet, progress lines ------------------------------
def test_dry_run_says_what_where_how_big_and_fits(hub_catalog, fake_hub, capsys, monkeypatch):
    assert main(["models", "download", M4, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "the Hub's size" in out and ": fits" in out
    assert fake_hub.cdn_requests() == []  # HEADs only
    assert main(["models", "download", M4, "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    model = hub_catalog.context().catalog.require(M4)
    assert doc["fits"] and doc["exitCode"] == 0 and len(doc["files"]) == 3
    for f in doc["files"]:
        assert f["sizeSource"] == "hub" and not f["estimate"] and f["url"].startswith("http")
        assert f["size"] == len(hub_catalog.payload(f["file"]))
    assert doc["needBytes"] == sum(f["size"] for f in doc["files"])
    # offline: the catalog's sizes, marked as estimates; nothing asked
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_hub.requests)
    assert main(["models", "download", M4, "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["offline"] and all(f["estimate"] for f in doc["files"])
    assert len(fake_hub.requests) == n
    assert main(["models", "download", M4, "--dry-run"]) == 0
    assert "~" in capsys.readouterr().out
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # a disk too small: exit 1, says it does not fit
    from distill_tui.inventory import Inventory

    monkeypatch.setattr(Inventory, "free_bytes", lambda self: 1000)
    assert main(["models", "download", M4, "--dry-run"]) == 1
    assert "does NOT fit" in capsys.readouterr().out
    assert not any((model.vae.file in str(p)) for p in Path(doc["modelsDir"]).rglob("*"))


def test_download_json_and_quiet(hub_catalog, capsys):
    assert main(["models", "download", M4, "--json", "--quiet"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)  # stdout is the JSON document alone
    assert doc["version"] == 1 and doc["model"] == M4 and doc["ready"] and doc["exitCode"] == 0
    assert len(doc["files"]) == 3
    for f in doc["files"]:
        assert f["state"] == "done" and f["result"] == "downloaded" and f["verified"]
        assert f["sha256"] and f["size"] == len(hub_catalog.payload(f["file"]))
    assert "downloading" not in cap.err and "verifying" not in cap.err  # --quiet
    assert main(["models", "download", M4, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {f["result"] for f in doc["files"]} == {"already"}


def test_non_tty_download_prints_progress_lines(hub_catalog, fake_hub, capsys, monkeypatch):
    import distill_tui.cli.downloads as dl

    monkeypatch.setattr(dl, "PROGRESS_EVERY", 0.3)
    fake_hub.rate = 40_000  # bytes/s per connection: ~100 KB takes a few seconds
    assert main(["models", "download", M4, "--only", "diffusion", "--connections", "1"]) == 0
    err = capsys.readouterr().err
    prog = [x for x in err.splitlines() if re.search(r"downloading .+ \d+\.\d%.* of .*/s", x)]
    assert len(prog) >= 2, err


# ---- generate --------------------------------------------------------------------------------
def distill(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


SMALL = ("--steps", "1", "--width", "64", "--height", "64", "--seed", "11")


@pytest.mark.parametrize("ext,fmt", [("jpg", "JPEG"), ("webp", "WEBP")])
def test_generate_jpg_webp_keep_parameters(tiny_ready_model, tmp_path, ext, fmt):
    out = tmp_path / f"cat.{ext}"
    p = distill("generate", "a jpeg cat", *SMALL, "-o", str(out), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["paths"] == [str(out)] and doc["seed"] == 11 and doc["steps"] == 1
    assert doc["quants"] == {"diffusion": "F16", "textEncoder": "F16"}
    assert set(doc["timings"]) == {"load", "encode", "sample", "decode", "total"}
    assert doc["knobs"]["vaeTiling"] is False and doc["knobs"]["loras"] == []
    assert doc["knobs"]["initImage"] is None and isinstance(doc["knobs"]["flashAttention"], bool)
    assert p.stderr.strip() == ""  # --quiet
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (64, 64)
    params = parse_parameters(read_parameters(out) or "")
    assert params["prompt"] == "a jpeg cat" and params["Seed"] == "11" and params["Steps"] == "1"
    raw = Image.open(out).getexif().get_ifd(0x8769)[0x9286]
    assert raw.startswith(b"UNICODE\0")  # A1111's UserComment encoding


def test_generate_refuses_unknown_extension(tiny_ready_model, tmp_path, capsys):
    assert main(["generate", "x", "-o", str(tmp_path / "a.gif")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'.gif'" in err and ".webp" in err
    assert not (tmp_path / "a.gif").exists()


# ---- help, completion, closed pipe --------------------------------------------------------------
def test_help_shows_choices_defaults_and_models(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "euler_a" in out and "karras" in out and "flux2-klein-4b" in out
    assert "Q4_K_S*" in out or re.search(r"\w+\*", out)  # default quants marked
    assert ".webp" in out and "4 steps" in out
    with pytest.raises(SystemExit):
        main(["models", "download", "--help"])
    out = capsys.readouterr().out
    assert "--dry-run" in out and "flux2-klein-9b" in out


def test_completion_scripts(capsys, tmp_path):
    for shell in ("bash", "zsh", "fish"):
        assert main(["completion", shell]) == 0
        text = capsys.readouterr().out
        for word in ("models", "download", "check", "generate", "completion", "dry-run"):
            assert word in text, (shell, word)  # fish: -l dry-run
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "c.bash"
    script.write_text(capsys.readouterr().out)
    probe = (
        f"source {script}; COMP_WORDS=(distill models ch); COMP_CWORD=2; _distill_complete; "
        'echo "${COMPREPLY[@]}"; COMP_WORDS=(distill generate x --sampler euler_); '
        'COMP_CWORD=4; _distill_complete; echo "${COMPREPLY[@]}"'
    )
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == ["check", "euler_a"]


def test_closed_stdout_is_quiet_in_process(monkeypatch):
    r, w = os.pipe()
    os.close(r)
    stream = io.TextIOWrapper(os.fdopen(w, "wb"), write_through=False)
    monkeypatch.setattr(sys, "stdout", stream)
    assert main(["models", "list", "--json"]) == EXIT_PIPE


@pytest.mark.parametrize("cmd", ["models list", "models list --json", "doctor", "completion bash"])
def test_closed_pipe_no_traceback(cmd):
    line = f"{sys.executable} -m distill_tui {cmd} | head -1"
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {line}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode in (0, EXIT_PIPE) and r.stdout.strip()


def test_palette_drift_summary(hub_catalog, fake_hub, capsys):
    from distill_tui.commands import drift_summary as summary
    from distill_tui.drift import check_installed

    assert main(["models", "download", M4, "--only", "vae", "--quiet"]) == 0
    ctx = hub_catalog.context()
    msg, sev = summary(check_installed(ctx.catalog, ctx.inventory))
    assert msg == "All 1 checked file(s) are up to date" and sev == "information"
    vae = ctx.catalog.require(M4).vae
    del fake_hub.files[_hub_path(vae.download_url)]
    msg, sev = summary(check_installed(ctx.catalog, ctx.inventory))
    assert (
        msg.startswith("1 of 1 installed file(s) changed upstream or are gone") and sev == "warning"
    )
    assert f"{vae.file}: gone" in msg
