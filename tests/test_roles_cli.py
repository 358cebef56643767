"""Issue 21 item 2 through the CLI: everything outside the generation path reads a model's
family and components, never a fixed trio. The whole bundled catalog v3 (Klein pair, Z-Image,
Klein base, the ESRGAN upscalers) served by the loopback Hub with tiny payloads
(``hub_catalog_v3``): per-role quant selection (``--quant ROLE=Q``), a shared file's removal
naming the model that uses it, ``models list`` for every model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from distill_tui.catalog import load_catalog_file
from distill_tui.cli import main
from distill_tui.resources import bundled_catalog_path

K4, Z, BASE, UP = "flux2-klein-4b", "z-image-turbo", "flux2-klein-base-4b", "realesrgan-x4plus"
TE_Q4 = "text_encoders/Qwen3-4B-Q4_K_M.gguf"


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def settings_on_disk() -> dict:
    from distill_tui.paths import AppPaths

    return json.loads(AppPaths.from_env().settings_file.read_text())


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


def list_json(capsys) -> dict:
    code, out, err = run(capsys, "models", "list", "--json")
    assert code == 0, err
    return json.loads(out)


# ---- models list: family, type, components of every model ---------------------------------
def test_list_json_has_family_type_and_components_of_every_model(isolated_dirs, capsys):
    doc = list_json(capsys)
    assert doc["version"] == 1  # fields were only added
    bundled = load_catalog_file(bundled_catalog_path())
    by_id = {m["id"]: m for m in doc["models"]}
    assert list(by_id) == bundled.ids and {UP, "realesrgan-x4plus-anime", Z, BASE} <= set(by_id)
    for cm in bundled.models:
        m = by_id[cm.id]
        assert (m["family"], m["type"]) == (cm.family, cm.type)
        assert list(m["components"]) == cm.roles
        for comp in cm.components:
            row = m["components"][comp.role]
            assert row["role"] == comp.role
            assert row["slot"] == comp.engine_slot(cm.family)
            if comp.has_quants:
                got = [(q["id"], q["file"], q["size"], q["sha256"]) for q in row["quants"]]
                want = [(q.id, q.file, q.size, q.sha256) for q in comp.quants or ()]
                assert got == want
            else:
                assert comp.file is not None
                assert (row["file"], row["size"], row["sha256"]) == (
                    comp.file.file,
                    comp.file.size,
                    comp.file.sha256,
                )
        assert set(m["selection"]) == set(cm.quant_roles)
    up = by_id[UP]
    assert up["type"] == "upscaler" and list(up["components"]) == ["upscaler"]
    assert up["components"]["upscaler"]["slot"] == "upscaler_path" and up["selection"] == {}
    # Z-Image-Turbo's text encoder rows are Klein 4B's files (one copy, shown as shared)
    z_te = by_id[Z]["components"]["textEncoder"]["quants"]
    k_te = by_id[K4]["components"]["textEncoder"]["quants"]
    assert [(q["file"], q["sha256"]) for q in z_te] == [(q["file"], q["sha256"]) for q in k_te]
    q4 = next(q for q in z_te if q["file"] == TE_Q4)
    assert q4["sharedWith"] == [K4, BASE]
    assert next(q for q in k_te if q["file"] == TE_Q4)["sharedWith"] == [Z, BASE]
    assert by_id[Z]["components"]["vae"]["sharedWith"] == []  # FLUX.1 VAE: Z-Image's own
    assert by_id[K4]["components"]["vae"]["sharedWith"] == ["flux2-klein-9b", BASE]


def test_list_plain_shows_every_model_and_its_components(isolated_dirs, capsys):
    code, out, err = run(capsys, "models", "list")
    assert code == 0, err
    assert "Real-ESRGAN x4plus (realesrgan-x4plus)" in out
    assert "Upscaler  upscalers/RealESRGAN_x4plus.pth" in out
    assert "Z-Image-Turbo (z-image-turbo)" in out and "z-image" in out
    assert "Text Encoder (Qwen3-4B)  shared with flux2-klein-4b" in out


# ---- per-role selection --------------------------------------------------------------------
def test_download_and_use_pick_quants_per_role(hub_catalog_v3, capsys):
    code, out, err = run(
        capsys, "models", "download", Z, "--quant", "diffusion=Q3_K", "--quant", "te=Q3_K_M"
    )
    assert code == 0, err + out
    sel = settings_on_disk()["model_quant_selections"][Z]
    assert sel == {"diffusionQuant": "Q3_K", "textEncoderQuant": "Q3_K_M"}
    assert (models_dir() / "text_encoders/Qwen3-4B-Q3_K_M.gguf").exists()
    # the old flags stay aliases; --quant's spellings of the text encoder are one role
    code, out, err = run(capsys, "models", "download", Z, "--text-encoder", "Q8_0", "--only", "te")
    assert code == 0, err + out
    code, out, err = run(capsys, "models", "use", Z, "--quant", "text-encoder=Q8_0")
    assert code == 0, err
    assert "z-image-turbo: diffusion Q3_K, text encoder Q8_0 (ready)" in out
    assert settings_on_disk()["model_quant_selections"][Z]["textEncoderQuant"] == "Q8_0"
    assert settings_on_disk()["active_model_id"] == Z
    # bad input: one line naming what is valid
    code, out, err = run(capsys, "models", "use", Z, "--quant", "clip=Q8_0")
    assert code != 0 and err.count("\n") == 1
    assert "roles with quants: diffusion, textEncoder" in err
    code, out, err = run(capsys, "models", "use", Z, "--quant", "diffusion=Q2")
    assert code != 0 and err.count("\n") == 1
    assert "unknown diffusion model quant 'Q2' for z-image-turbo; valid: Q3_K, Q4_0" in err
    code, out, err = run(capsys, "models", "use", Z, "--quant", "vae=x")
    assert code != 0 and "vae of z-image-turbo is one file (no quant to pick)" in err
    code, out, err = run(capsys, "models", "use", Z, "--quant", "diffusion=Q8_0")
    assert code != 0 and f"run: distill models download {Z} --diffusion Q8_0" in err


def test_old_selection_keys_are_read_and_written_per_role(isolated_dirs, capsys):
    from distill_tui.paths import AppPaths

    path = AppPaths.from_env().settings_file
    path.parent.mkdir(parents=True, exist_ok=True)
    old = {"diffusionQuant": "Q6_K", "textEncoderQuant": None}
    path.write_text(json.dumps({"schema_version": 2, "model_quant_selections": {Z: old}}))
    doc = list_json(capsys)
    z = next(m for m in doc["models"] if m["id"] == Z)
    assert z["selection"] == {"diffusion": "Q6_K", "textEncoder": None}


def test_a_shared_file_downloaded_for_one_model_is_chosen_for_the_others(hub_catalog_v3, capsys):
    """Klein 4B's download brings Qwen3-4B Q4_K_M: Z-Image-Turbo (no text encoder chosen yet)
    has it chosen too, so its diffusion alone makes it ready - as the import does."""
    code, out, err = run(capsys, "models", "download", K4)
    assert code == 0, err + out
    z = next(m for m in list_json(capsys)["models"] if m["id"] == Z)
    assert z["selection"] == {"diffusion": None, "textEncoder": "Q4_K_M"}
    assert z["components"]["textEncoder"]["quants"][1]["downloaded"] is True
    code, out, err = run(capsys, "models", "download", Z, "--only", "diffusion,vae")
    assert code == 0, err + out
    assert "z-image-turbo: selected diffusion Q4_K, text encoder Q4_K_M  (ready)" in out


# ---- shared files --------------------------------------------------------------------------
def _klein_and_z_installed(capsys) -> None:
    for argv in (("models", "download", K4), ("models", "download", Z)):
        code, out, err = run(capsys, *argv)
        assert code == 0, err + out
    # Klein 4B generates with another text encoder quant; Z-Image still loads the Q4_K_M
    code, out, err = run(capsys, "models", "download", K4, "--quant", "te=Q8_0", "--only", "te")
    assert code == 0, err + out
    code, out, err = run(capsys, "models", "use", K4, "--quant", "textEncoder=Q8_0")
    assert code == 0, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_removing_a_text_encoder_z_image_uses_asks_and_names_it(
    hub_catalog_v3, capsys, monkeypatch
):
    _klein_and_z_installed(capsys)
    doc = list_json(capsys)
    files = [f for f in doc["files"] if f["file"] == TE_Q4]
    assert len(files) == 1 and files[0]["usedBy"] == [K4, Z, BASE]  # one row, shared
    assert (models_dir() / TE_Q4).exists()
    # no terminal: --yes alone keeps it and says who uses it
    code, out, err = run(capsys, "models", "remove", K4, "--quant", "textEncoder=Q4_K_M", "--yes")
    assert code == 1
    assert f"kept {TE_Q4}: also used by Z-Image-Turbo" in out
    assert (models_dir() / TE_Q4).exists()
    # a terminal: the question names Z-Image-Turbo; "n" keeps it, "y" removes it
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, out, err = run(capsys, "models", "remove", K4, "--text-encoder", "Q4_K_M")
    assert code == 1 and "nothing deleted" in out
    assert f"{TE_Q4} is also used by Z-Image-Turbo" in out
    assert (models_dir() / TE_Q4).exists()
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, err = run(capsys, "models", "remove", K4, "--text-encoder", "Q4_K_M")
    assert code == 0, out + err
    assert f"{TE_Q4} is also used by Z-Image-Turbo" in out
    assert "z-image-turbo text encoder)" in out and "(selection cleared: " in out
    assert not (models_dir() / TE_Q4).exists()
    assert "textEncoderQuant" not in settings_on_disk()["model_quant_selections"][Z]


def test_a_file_the_active_model_loads_is_kept_whichever_model_removes_it(hub_catalog_v3, capsys):
    _klein_and_z_installed(capsys)
    code, out, err = run(capsys, "models", "use", Z, "--quant", "te=Q4_K_M")  # Z-Image active
    assert code == 0, err
    code, out, err = run(capsys, "models", "remove", K4, "--quant", "te=Q4_K_M", "--yes")
    assert code == 1
    assert "the text encoder the active model Z-Image-Turbo loads" in out
    assert (models_dir() / TE_Q4).exists()
    code, out, err = run(capsys, "models", "remove", K4, "--quant", "te=Q4_K_M", "--yes", "--force")
    assert code == 0 and not (models_dir() / TE_Q4).exists()  # forced: gone


def test_status_shows_a_shared_partial_once_with_every_model_that_uses_it(hub_catalog_v3, capsys):
    """A partial download of Qwen3-4B Q4_K_M is one row, naming the three models it serves."""
    from distill_tui.downloads.sidecar import RangeSet, Sidecar, part_path, sidecar_path

    dest = models_dir() / TE_Q4
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = hub_catalog_v3.payload(TE_Q4)
    part_path(dest).write_bytes(data[: len(data) // 2])
    Sidecar(
        "http://127.0.0.1:1/x/y/resolve/main/te.gguf",
        "r",
        None,
        len(data),
        RangeSet([(0, len(data) // 2)]),
    ).save(sidecar_path(dest))
    code, out, err = run(capsys, "models", "status", "--json")
    assert code == 0, err
    rows = [d for d in json.loads(out)["downloads"] if d["file"] == TE_Q4]
    assert len(rows) == 1 and rows[0]["usedBy"] == [K4, Z, BASE]
    assert rows[0]["state"] == "partial"


# ---- upscalers -----------------------------------------------------------------------------
def test_upscaler_downloads_lists_and_removes_like_any_model(hub_catalog_v3, capsys):
    code, out, err = run(capsys, "models", "use", UP)
    assert code != 0 and f"run: distill models download {UP}" in err
    code, out, err = run(capsys, "models", "download", UP)
    assert code == 0, err + out
    assert f"{UP}: ready" in out
    code, out, err = run(capsys, "models", "use", UP)
    assert code == 0 and "the active upscaler" in out, err
    assert settings_on_disk()["active_upscaler_id"] == UP
    assert settings_on_disk()["active_model_id"] == K4  # generation keeps its model
    listed = list_json(capsys)
    assert listed["activeUpscalerId"] == UP and listed["activeModelId"] == K4
    assert [m["id"] for m in listed["models"] if m["active"]] == [K4, UP]
    rel = "upscalers/RealESRGAN_x4plus.pth"
    assert (models_dir() / rel).read_bytes() == hub_catalog_v3.payload(rel)
    doc = list_json(capsys)
    up = next(m for m in doc["models"] if m["id"] == UP)
    assert up["ready"] is True and up["components"]["upscaler"]["downloaded"] is True
    assert up["components"]["upscaler"]["verified"] is True
    code, out, err = run(capsys, "models", "status", "--json")
    assert code == 0
    code, out, err = run(capsys, "models", "verify", UP)
    assert code == 0, out + err
    code, out, err = run(capsys, "models", "download", UP, "--quant", "upscaler=x")
    assert code != 0 and "roles with quants: none" in err
    code, out, err = run(capsys, "models", "remove", UP, "--all", "--yes")
    assert code == 1 and "the active upscaler" in out and "(or --force)" in out, out + err
    assert (models_dir() / rel).exists()  # the active upscaler needs --force (an active quant)
    code, out, err = run(capsys, "models", "remove", UP, "--all", "--yes", "--force")
    assert code == 0, out + err
    assert not (models_dir() / rel).exists()


@pytest.mark.parametrize("argv", [("models", "download", Z, "--dry-run", "--json")])
def test_dry_run_lists_every_component(isolated_dirs, capsys, monkeypatch, argv):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run(capsys, *argv)
    doc = json.loads(out)
    assert [f["component"] for f in doc["files"]] == ["diffusion", "textEncoder", "vae"]
    assert [f["quant"] for f in doc["files"]] == ["Q4_K", "Q4_K_M", None]
