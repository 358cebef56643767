"""`distill models download|verify|remove|clean` in-process against the loopback fake Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_tui.cli import main
from tests.fakehub import VALID_TOKEN, Fault

M4 = "flux2-klein-4b"


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def listing(capsys) -> dict:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def files_on_disk() -> list[str]:
    d = models_dir()
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def test_download_defaults_to_recommended_and_lists_them(hub_catalog, fake_hub, capsys):
    fake_hub.faults.append(Fault("drop", after=1000, times=2, method="GET"))
    assert main(["models", "download", M4]) == 0
    out = capsys.readouterr().out
    assert "downloaded and verified" in out and "(ready)" in out
    model = hub_catalog.context().catalog.require(M4)
    diff, te = model.default_quant("diffusion"), model.default_quant("textEncoder")
    data = listing(capsys)
    m = next(x for x in data["models"] if x["id"] == M4)
    assert m["ready"] and m["selection"] == {"diffusion": diff, "textEncoder": te}
    assert [q["id"] for q in m["components"]["diffusion"]["quants"] if q["downloaded"]] == [diff]
    assert m["components"]["vae"]["downloaded"]
    for rel in (model.diffusion.get(diff).file, model.text_encoder.get(te).file, model.vae.file):
        assert (models_dir() / rel).read_bytes() == hub_catalog.payload(rel)
    # nothing else left in the model dir
    assert [f for f in files_on_disk() if not f.endswith((".gguf", ".safetensors"))] == [
        ".installed.json.lock",
        "installed.json",
    ]


def test_explicit_quants_and_gated_vae(hub_catalog, fake_hub, capsys, monkeypatch):
    fake_hub.set_gated(hub_catalog.vae_repo)
    argv = ["models", "download", M4, "--diffusion", "Q4_K_S", "--text-encoder", "Q3_K_M"]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert f"https://huggingface.co/{hub_catalog.vae_repo}" in cap.err and "HF_TOKEN" in cap.err
    assert "nothing was downloaded" in cap.err
    assert [f for f in files_on_disk() if f.endswith((".gguf", ".safetensors"))] == []
    assert fake_hub.cdn_requests() == []
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert VALID_TOKEN not in cap.out + cap.err and "Signature" not in cap.out + cap.err
    assert all(r.authorization is None for r in fake_hub.cdn_requests())
    sel = hub_catalog.context().settings.selection(M4)
    assert (sel.diffusion_quant, sel.text_encoder_quant) == ("Q4_K_S", "Q3_K_M")
    from distill_tui.paths import AppPaths

    log = AppPaths.from_env().log_file
    if log.exists():
        text = log.read_text()
        assert VALID_TOKEN not in text and "Signature=" not in text


def test_unknown_quant_is_a_clear_error(hub_catalog, capsys):
    assert main(["models", "download", M4, "--diffusion", "Q9_X"]) == 1
    err = capsys.readouterr().err
    assert "unknown diffusion model quant 'Q9_X'" in err and "Q4_K_S" in err


def test_verify_reports_mismatch(hub_catalog, capsys):
    assert main(["models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae"]) == 0
    assert main(["models", "verify", M4]) == 0
    assert "verified" in capsys.readouterr().out
    f = models_dir() / "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    data = bytearray(f.read_bytes())
    data[100] ^= 1
    f.write_bytes(bytes(data))
    assert main(["models", "verify"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "flux-2-klein-4b-Q4_K_S.gguf" in out


def test_remove_needs_yes_without_tty_and_clears_selection(hub_catalog, capsys, monkeypatch):
    assert main(["models", "download", M4, "--diffusion", "Q4_K_S", "--no-vae"]) == 0
    rel = "diffusion/flux-2-klein-4b-Q4_K_S.gguf"
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    # the active quant of the active model: refused, as in the Model Manager
    assert main(["models", "remove", M4, "--diffusion", "Q4_K_S", "--yes"]) == 1
    assert "active diffusion model quant" in capsys.readouterr().out
    assert (models_dir() / rel).exists()
    assert main(["models", "remove", M4, "--diffusion", "Q4_K_S", "--force"]) == 1
    assert "--yes" in capsys.readouterr().err
    assert (models_dir() / rel).exists()
    assert main(["models", "remove", M4, "--diffusion", "Q4_K_S", "--force", "--yes"]) == 0
    assert not (models_dir() / rel).exists()
    ctx = hub_catalog.context()
    assert ctx.inventory.get(rel) is None
    assert ctx.settings.selection(M4).diffusion_quant is None


def test_remove_all_keeps_vae_shared_with_another_model(hub_catalog, capsys):
    assert main(["models", "download", M4]) == 0
    assert main(["models", "download", "flux2-klein-9b", "--no-vae"]) == 0
    assert main(["models", "remove", M4, "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "kept vae/flux2-vae.safetensors" in out
    assert (models_dir() / "vae/flux2-vae.safetensors").exists()
    assert not any("4b" in f for f in files_on_disk())


def test_clean_removes_partials_and_stale_locks_never_outputs(hub_catalog, capsys):
    from distill_tui.settings import SettingsStore

    ctx = hub_catalog.context()
    d = models_dir()
    outputs = d / "outputs"
    ctx.settings.update(output_dir=str(outputs))
    SettingsStore(ctx.paths).load()
    (d / "diffusion").mkdir(parents=True)
    (d / "diffusion/x.gguf.part").write_bytes(b"1" * 10)
    (d / "diffusion/x.gguf.part.json").write_text("{}")
    (d / "diffusion/x.gguf.lock").write_text("123")
    (d / "diffusion/.x.json.abc.tmp").write_text("{}")
    outputs.mkdir()
    (outputs / "img.png").write_bytes(b"png")
    (outputs / "keep.part").write_bytes(b"not ours")
    (d / "diffusion/keep.gguf").write_bytes(b"model")
    assert main(["models", "clean"]) == 0
    out = capsys.readouterr().out
    assert "removed 4 leftover file(s)" in out
    assert sorted(files_on_disk()) == [
        "diffusion/keep.gguf",
        "outputs/img.png",
        "outputs/keep.part",
    ]


@pytest.mark.parametrize("flag", ["--diffusion", "--text-encoder"])
def test_remove_unknown_quant(hub_catalog, capsys, flag):
    assert main(["models", "remove", M4, flag, "NOPE", "--yes"]) == 1
    assert "NOPE" in capsys.readouterr().err
