"""`distill catalog check` against the loopback fake Hub with a crafted user catalog.

The catalog keeps the real ``https://huggingface.co`` URLs; ``HF_ENDPOINT`` points them at the
fake Hub (as a user with a mirror endpoint would). Exit codes and one-line errors are checked
on the real CLI in a subprocess; the finer cases run ``main()`` in-process (faster).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from distill_tui.cli import main
from tests.fakehub import COMMIT, VALID_TOKEN, FakeHub, Fault
from tests.hub_fixtures import payload_bytes

ROOT = Path(__file__).resolve().parent.parent
HF = "https://huggingface.co"
MODEL = "tiny-klein"
DIFF_REPO = "acme/tiny-klein-GGUF"
TE_REPO = "acme/tiny-qwen-GGUF"
VAE_REPO = "acme/tiny-vae"  # ungated primary
GATED_REPO = "bigco/tiny-dev"  # gated mirror, as BFL's FLUX.2-dev


def url(repo: str, path: str) -> str:
    return f"{HF}/{repo}/resolve/main/{path}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


DATA = {
    "Q4": payload_bytes("q4", 40_000),
    "Q8": payload_bytes("q8", 60_000),
    "TE": payload_bytes("te", 30_000),
    "VAE": payload_bytes("vae", 20_000),
}


def quant(qid: str, repo: str, data: bytes, **extra: object) -> dict:
    entry = {
        "id": qid,
        "label": qid,
        "file": f"diffusion/{qid}.gguf",
        "size": len(data),
        "downloadUrl": url(repo, f"{qid}.gguf"),
        "sha256": sha(data),
    }
    entry.update(extra)
    return entry


def build_catalog() -> dict:
    return {
        "catalogVersion": 1000,
        "models": [
            {
                "id": MODEL,
                "name": "Tiny Klein",
                "vae": {
                    "file": "vae/vae.safetensors",
                    "size": len(DATA["VAE"]),
                    "downloadUrl": url(VAE_REPO, "vae.safetensors"),
                    "mirrors": [url(GATED_REPO, "vae/ae.safetensors")],
                    "sha256": sha(DATA["VAE"]),
                },
                "diffusion": {
                    "quants": [
                        quant("Q4", DIFF_REPO, DATA["Q4"]),
                        quant("Q8", DIFF_REPO, DATA["Q8"]),
                    ]
                },
                "textEncoder": {
                    "name": "Tiny Qwen",
                    "quants": [
                        {
                            "id": "Q4_K_M",
                            "label": "Q4_K_M",
                            "file": "text_encoder/te-Q4_K_M.gguf",
                            "size": len(DATA["TE"]),
                            "downloadUrl": url(TE_REPO, "te-Q4_K_M.gguf"),
                            "sha256": sha(DATA["TE"]),
                        }
                    ],
                },
            }
        ],
    }


def serve_all(hub: FakeHub) -> None:
    hub.add_file(DIFF_REPO, "Q4.gguf", DATA["Q4"])
    hub.add_file(DIFF_REPO, "Q8.gguf", DATA["Q8"])
    hub.add_file(TE_REPO, "te-Q4_K_M.gguf", DATA["TE"])
    hub.add_file(VAE_REPO, "vae.safetensors", DATA["VAE"])
    hub.add_file(GATED_REPO, "vae/ae.safetensors", DATA["VAE"], gated=True)


def user_catalog_path() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().user_catalog_file


def write_catalog(raw: dict) -> Path:
    p = user_catalog_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(raw, indent=2))
    return p


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    serve_all(fake_hub)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    return fake_hub


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (the isolated XDG dirs and env are inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", "catalog", "check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ),
    )


def check_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["catalog", "check", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def entry_of(data: dict, quant_id: str | None) -> dict:
    return next(f for f in data["files"] if f["quant"] == quant_id)


# ---- all good ------------------------------------------------------------------------------


def test_all_good_exit_zero_and_table_fits_80_columns(hub):
    write_catalog(build_catalog())
    r = cli()
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert any(
        DIFF_REPO in line and " ok " in line and sha(DATA["Q4"])[:8] in line for line in lines
    )
    # the gated mirror is shown, explained, and not a failure (the primary serves the file)
    mirror = next(line for line in lines if GATED_REPO in line)
    assert "gated" in mirror
    assert "gated (needs a token + accepted license)" in r.stdout
    assert f"{DIFF_REPO} @ {COMMIT[:12]}" in r.stdout
    assert "all 4 files are served with the catalog's bytes" in r.stdout
    # HEADs only, each URL once; the Hub's CDN is never touched
    assert {q.method for q in hub.requests} == {"HEAD"}
    assert hub.cdn_requests() == []


def test_json_shape_every_file_every_source(hub, capsys):
    write_catalog(build_catalog())
    rc, data = check_json(capsys)
    assert rc == 0 and data["ok"] is True and data["error"] is None
    assert data["version"] == 1 and data["tokenPresent"] is False
    assert data["summary"] == {"files": 4, "ok": 4, "withProblems": 0}
    vae = entry_of(data, None)
    assert [s["role"] for s in vae["sources"]] == ["primary", "mirror"]
    prim, mirror = vae["sources"]
    assert prim["status"] == "ok" and prim["repo"] == VAE_REPO
    assert prim["hub"] == {"size": 20_000, "sha256": sha(DATA["VAE"]), "revision": COMMIT}
    assert mirror["status"] == "gated" and mirror["hub"]["size"] is None
    assert "needs a token + accepted license" in mirror["message"]
    assert vae["catalog"] == {
        "size": 20_000,
        "sizeEstimated": False,
        "sha256": sha(DATA["VAE"]),
        "revision": None,
    }
    assert vae["problems"] == [] and vae["record"] == {"revision": COMMIT}


# ---- missing, wrong size, wrong sha ----------------------------------------------------------


def test_missing_file_and_wrong_size_are_named_and_exit_nonzero(hub):
    raw = build_catalog()
    q4, q8 = raw["models"][0]["diffusion"]["quants"]
    q4["downloadUrl"] = url(DIFF_REPO, "Q4-renamed.gguf")  # 404 EntryNotFound
    q8["size"] += 123  # an exact size that is wrong
    write_catalog(raw)
    r = cli("--json")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["summary"]["withProblems"] == 2
    bad = {f["quant"]: f for f in data["files"] if not f["ok"]}
    assert set(bad) == {"Q4", "Q8"}
    assert bad["Q4"]["sources"][0]["status"] == "missing"
    assert "missing on the Hub" in bad["Q4"]["problems"][0]
    assert "Q4-renamed.gguf not found" in bad["Q4"]["problems"][0]
    assert bad["Q8"]["sources"][0]["status"] == "differs"
    assert "size differs: the Hub says 60,000 B, the catalog 60,123 B" in bad["Q8"]["problems"][0]
    # both are named in the top-level problem list too (model, quant, file)
    assert any("tiny-klein diffusion Q4 (diffusion/Q4.gguf)" in p for p in data["problems"])
    assert any("tiny-klein diffusion Q8 (diffusion/Q8.gguf)" in p for p in data["problems"])
    # the table says the same in words
    r = cli()
    assert r.returncode == 1
    assert "2 of 4 files have problems" in r.stdout and "missing" in r.stdout


def test_estimated_size_is_not_a_problem(hub, capsys):
    raw = build_catalog()
    q8 = raw["models"][0]["diffusion"]["quants"][1]
    q8["size"], q8["sizeEstimated"] = 99_000, True
    write_catalog(raw)
    rc, data = check_json(capsys)
    assert rc == 0
    assert entry_of(data, "Q8")["record"]["size"] == 60_000
    capsys.readouterr()
    assert main(["catalog", "check"]) == 0
    out = capsys.readouterr().out
    assert "60.00 KB*" in out and "the catalog's size is an estimate" in out


def test_wrong_sha256_is_a_problem(hub, capsys):
    raw = build_catalog()
    raw["models"][0]["textEncoder"]["quants"][0]["sha256"] = "ab" * 32
    write_catalog(raw)
    rc, data = check_json(capsys)
    assert rc == 1
    te = entry_of(data, "Q4_K_M")
    assert te["sources"][0]["status"] == "differs"
    assert "sha256 differs" in te["problems"][0] and "abababababab" in te["problems"][0]
    assert te["record"] == {}


# ---- gated, token ----------------------------------------------------------------------------


def test_gated_only_source_without_token_fails_with_token_passes(hub, capsys, monkeypatch):
    hub.set_gated(DIFF_REPO)
    write_catalog(build_catalog())
    rc, data = check_json(capsys)
    assert rc == 1
    q4 = entry_of(data, "Q4")
    assert q4["sources"][0]["status"] == "gated"
    assert q4["sources"][0]["message"].startswith("gated (needs a token + accepted license)")
    assert "no source serves it" in q4["problems"][0]
    assert all(r.authorization is None for r in hub.requests)

    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    hub.requests.clear()
    capsys.readouterr()
    rc = main(["catalog", "check"])
    cap = capsys.readouterr()
    assert rc == 0, cap.out
    assert VALID_TOKEN not in cap.out + cap.err
    assert "token: yes" in cap.out
    assert all(r.authorization == f"Bearer {VALID_TOKEN}" for r in hub.requests)


def test_token_goes_to_the_hub_origin_only(hub, monkeypatch, capsys):
    """A mirror on another host never sees the token (nor does any non-Hub origin)."""
    other = FakeHub().start()
    try:
        other.add_file(VAE_REPO, "vae.safetensors", DATA["VAE"])
        raw = build_catalog()
        raw["models"][0]["vae"]["mirrors"] = [other.resolve_url(VAE_REPO, "vae.safetensors")]
        write_catalog(raw)
        monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
        rc, data = check_json(capsys)
        assert rc == 0
        assert entry_of(data, None)["sources"][1]["status"] == "ok"
        assert other.requests and all(r.authorization is None for r in other.requests)
        assert all(r.authorization for r in hub.requests)
    finally:
        other.stop()


def test_gated_primary_with_good_mirror_is_ok(hub, capsys):
    raw = build_catalog()
    vae = raw["models"][0]["vae"]
    vae["downloadUrl"], vae["mirrors"] = vae["mirrors"][0], [vae["downloadUrl"]]
    write_catalog(raw)
    rc, data = check_json(capsys)
    assert rc == 0
    v = entry_of(data, None)
    assert [s["status"] for s in v["sources"]] == ["gated", "ok"] and v["ok"]
    assert any("the file comes from mirror" in n for n in v["notes"])
    # the revision is the primary's: not learnt from another repo
    assert "revision" not in v["record"]


# ---- mirrors -------------------------------------------------------------------------------


def test_primary_missing_mirror_ok_is_ok(hub):
    raw = build_catalog()
    vae = raw["models"][0]["vae"]
    vae["downloadUrl"] = url(VAE_REPO, "gone.safetensors")
    vae["mirrors"] = [url(VAE_REPO, "vae.safetensors")]
    write_catalog(raw)
    r = cli("--json")
    assert r.returncode == 0, r.stdout
    v = entry_of(json.loads(r.stdout), None)
    assert [s["status"] for s in v["sources"]] == ["missing", "ok"] and v["ok"]


def test_mirror_serving_other_bytes_is_a_problem(hub, capsys):
    hub.add_file("evil/mirror", "vae.safetensors", payload_bytes("other", 20_000))
    raw = build_catalog()
    raw["models"][0]["vae"]["mirrors"] = [url("evil/mirror", "vae.safetensors")]
    write_catalog(raw)
    rc, data = check_json(capsys)
    assert rc == 1
    v = entry_of(data, None)
    assert [s["status"] for s in v["sources"]] == ["ok", "differs"]
    assert "mirror evil/mirror: serves other bytes" in v["problems"][0]
    capsys.readouterr()
    assert main(["catalog", "check"]) == 1
    assert "serves other bytes" in capsys.readouterr().out


# ---- --write -------------------------------------------------------------------------------


def test_write_records_exact_sizes_sha256_and_revision(hub, capsys):
    raw = build_catalog()
    q4, q8 = raw["models"][0]["diffusion"]["quants"]
    q4["size"], q4["sizeEstimated"] = 50_000, True
    del q4["sha256"]
    q8["size"] += 1  # wrong exact size: a problem, never overwritten
    path = write_catalog(raw)
    capsys.readouterr()
    assert main(["catalog", "check", "--write"]) == 1
    out = capsys.readouterr().out
    assert "recorded 1 exact size, 1 sha256 and 3 revisions" in out
    after = json.loads(path.read_text())
    a4, a8 = after["models"][0]["diffusion"]["quants"]
    assert a4["size"] == 40_000 and a4["sha256"] == sha(DATA["Q4"]) and "sizeEstimated" not in a4
    assert a4["revision"] == COMMIT
    assert a8["size"] == 60_001 and "revision" not in a8  # the file with a problem: untouched
    assert after["models"][0]["vae"]["revision"] == COMMIT
    # URLs stay the catalog's (HF_ENDPOINT is not written into the file); schema still valid
    assert a4["downloadUrl"] == url(DIFF_REPO, "Q4.gguf")
    assert not list(path.parent.glob(".model-catalog.json.*.tmp"))
    from distill_tui.catalog import load_catalog_file

    load_catalog_file(path)
    # the fixed file gets its revision on the next run; then there is nothing left to record
    a8["size"] = 60_000
    path.write_text(json.dumps(after))
    capsys.readouterr()
    assert main(["catalog", "check", "--write"]) == 0
    assert "recorded 1 revision in" in capsys.readouterr().out
    assert json.loads(path.read_text())["models"][0]["diffusion"]["quants"][1]["revision"]
    assert main(["catalog", "check", "--write"]) == 0
    assert "nothing to record" in capsys.readouterr().out


def _v3(raw: dict) -> dict:
    """A v2-shaped test catalog in the v3 shape (components by role), as users' copies are
    now (seeded from the bundled v3 file)."""
    for m in raw["models"]:
        m["family"], m["type"] = "flux2-klein", "image-generation"
        m["components"] = [
            {"role": "diffusion", **m.pop("diffusion")},
            {"role": "textEncoder", **m.pop("textEncoder")},
            {"role": "vae", "file": m.pop("vae")},
        ]
    return raw


def test_write_records_into_a_v3_catalogs_components(hub, capsys):
    """Issue 21: ``--write`` finds each entry in a v3 catalog (components with a role)."""
    raw = _v3(build_catalog())
    q4 = raw["models"][0]["components"][0]["quants"][0]
    q4["size"], q4["sizeEstimated"] = 50_000, True
    del q4["sha256"]
    path = write_catalog(raw)
    capsys.readouterr()
    assert main(["catalog", "check", "--write"]) == 0
    out = capsys.readouterr().out
    assert "recorded 1 exact size, 1 sha256 and 4 revisions" in out, out
    after = json.loads(path.read_text())["models"][0]["components"]
    a4 = after[0]["quants"][0]
    assert a4["size"] == 40_000 and a4["sha256"] == sha(DATA["Q4"]) and "sizeEstimated" not in a4
    assert after[1]["quants"][0]["revision"] == COMMIT and after[2]["file"]["revision"] == COMMIT


# ---- unreachable, timeouts, bounds ------------------------------------------------------------


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_endpoint_is_one_line_no_traceback(monkeypatch):
    write_catalog(build_catalog())
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    t0 = time.monotonic()
    r = cli(timeout=60)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 3
    assert r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith("distill: cannot reach 127.0.0.1:") and "connection refused" in err[0]
    assert "Traceback" not in r.stderr
    # --json still gives a document that says so
    r = cli("--json", timeout=60)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    data = json.loads(r.stdout)
    assert data["ok"] is False and "connection refused" in data["error"]
    assert {s["status"] for f in data["files"] for s in f["sources"]} == {"unreachable"}


def test_check_does_not_import_textual(monkeypatch):
    write_catalog(build_catalog())
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    code = (
        "import sys\n"
        "from distill_tui.cli import main\n"
        "rc = main(['catalog', 'check', '--json'])\n"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert r.stdout.strip().splitlines()[-1] == "3 []", r.stdout + r.stderr


def test_slow_source_is_bounded_by_timeout(hub, capsys):
    write_catalog(build_catalog())
    hub.faults.append(
        Fault("callback", server="hub", path="/Q8.gguf", times=None, fn=lambda h: time.sleep(3))
    )
    t0 = time.monotonic()
    rc, data = check_json(capsys, "--timeout", "0.5")
    assert time.monotonic() - t0 < 3
    assert rc == 1
    q8 = entry_of(data, "Q8")
    assert q8["sources"][0]["status"] == "unreachable"
    assert "no answer from" in q8["sources"][0]["message"]
    assert entry_of(data, "Q4")["ok"]


def test_heads_run_concurrently_with_a_bound(fake_hub, monkeypatch):
    from distill_tui.catalog import parse_catalog
    from distill_tui.catalog_check import CONCURRENCY, check_catalog

    raw = build_catalog()
    quants = raw["models"][0]["diffusion"]["quants"]
    for i in range(14):
        data = payload_bytes(f"q{i}", 1000 + i)
        fake_hub.add_file(DIFF_REPO, f"X{i}.gguf", data)
        quants.append(quant(f"X{i}", DIFF_REPO, data))
    serve_all(fake_hub)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    lock, now, peak = threading.Lock(), [0], [0]

    def slow(_handler: object) -> None:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.3)
        with lock:
            now[0] -= 1

    fake_hub.faults.append(Fault("callback", server="hub", times=None, fn=slow))
    from distill_tui.catalog import apply_endpoint

    catalog = apply_endpoint(parse_catalog(json.dumps(raw), "test"), fake_hub.url)
    t0 = time.monotonic()
    report = check_catalog(catalog, timeout=10)
    elapsed = time.monotonic() - t0
    assert report.ok
    assert 2 <= peak[0] <= CONCURRENCY
    assert elapsed < 18 * 0.3  # not one after the other


# ---- --model, bad input -------------------------------------------------------------------


def test_model_option_and_unknown_model(hub, capsys):
    raw = build_catalog()
    other = json.loads(json.dumps(raw["models"][0]))
    other["id"], other["name"] = "other", "Other"
    other["diffusion"]["quants"][0]["downloadUrl"] = url(DIFF_REPO, "nope.gguf")
    raw["models"].append(other)
    write_catalog(raw)
    rc, data = check_json(capsys, "--model", MODEL)
    assert rc == 0 and {f["model"] for f in data["files"]} == {MODEL}
    rc, data = check_json(capsys)
    assert rc == 1
    capsys.readouterr()
    assert main(["catalog", "check", "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and len(err.strip().splitlines()) == 1


def test_control_characters_from_the_catalog_and_server_are_escaped(hub, capsys):
    raw = build_catalog()
    raw["models"][0]["name"] = "Tiny\x1b]0;pwned\x07 Klein\x9b2J"
    raw["models"][0]["diffusion"]["quants"][0]["id"] = "Q4\x1b[2J"
    write_catalog(raw)
    capsys.readouterr()
    main(["catalog", "check"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "Tiny\\x1b]0;pwned\\x07 Klein\\x9b2J" in out


def test_help_is_clear():
    r = subprocess.run(
        [sys.executable, "-m", "distill_tui", "catalog", "check", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 0
    for word in ("--json", "--write", "--model", "--timeout", "HF_ENDPOINT", "HF_TOKEN", "Exit 0"):
        assert word in r.stdout
