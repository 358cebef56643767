"""Catalog: the bundled file, validation rules with file/JSON-path errors, user-copy layering."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from distill_tui.catalog import (
    Catalog,
    CatalogError,
    apply_endpoint,
    load_catalog,
    load_catalog_file,
    parse_catalog,
)
from distill_tui.resources import bundled_catalog_path

BUNDLED = json.loads(bundled_catalog_path().read_text())


def _write(tmp_path: Path, obj, name="cat.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _bad(tmp_path: Path, mutate) -> str:
    raw = copy.deepcopy(BUNDLED)
    mutate(raw)
    p = _write(tmp_path, raw)
    with pytest.raises(CatalogError) as ei:
        load_catalog_file(p)
    msg = str(ei.value)
    assert str(p) in msg, msg  # names the file
    return msg


def test_bundled_catalog_lists_both_models_with_every_quant():
    cat = load_catalog_file(bundled_catalog_path())
    assert cat.ids == ["flux2-klein-4b", "flux2-klein-9b"]
    for m in cat.models:
        assert m.diffusion.ids == ["Q3_K_S", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0"]
        assert m.text_encoder.ids == ["Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]
        assert m.vae.file == "vae/ae.safetensors"
        assert m.vae.repo_id == "black-forest-labs/FLUX.2-dev"
        assert (m.recommended.steps, m.recommended.cfg_scale, m.recommended.sampler) == (
            4,
            1.0,
            "euler",
        )
        assert m.license is not None and m.license.name
        for _c, _q, f in m.files():
            assert f.download_url.startswith("https://huggingface.co/")
            assert f.size > 0
    assert cat.get("flux2-klein-4b").text_encoder.name == "Qwen3-4B"
    assert cat.get("flux2-klein-9b").text_encoder.name == "Qwen3-8B"


def test_not_json(tmp_path):
    p = _write(tmp_path, "{ not json")
    with pytest.raises(CatalogError, match=r"cat\.json: \$: not valid JSON"):
        load_catalog_file(p)


def test_not_an_object(tmp_path):
    p = _write(tmp_path, "[1, 2]")
    with pytest.raises(CatalogError, match="expected a JSON object, got list"):
        load_catalog_file(p)


def test_wrong_types_name_the_json_path(tmp_path):
    msg = _bad(tmp_path, lambda r: r["models"][0]["diffusion"]["quants"][1].update(size="big"))
    assert "$.models[0].diffusion.quants[1].size" in msg


def test_duplicate_model_id(tmp_path):
    msg = _bad(tmp_path, lambda r: r["models"][1].update(id="flux2-klein-4b"))
    assert "duplicate model id 'flux2-klein-4b'" in msg


def test_duplicate_quant_id(tmp_path):
    msg = _bad(tmp_path, lambda r: r["models"][0]["textEncoder"]["quants"][2].update(id="Q3_K_M"))
    assert "$.models[0].textEncoder" in msg and "duplicate quant id 'Q3_K_M'" in msg


@pytest.mark.parametrize(
    "path",
    ["../escape.gguf", "diffusion/../../x.gguf", "/etc/passwd", "C:\\models\\x.gguf", "\\\\srv\\x"],
)
def test_file_must_stay_inside_model_dir(tmp_path, path):
    msg = _bad(tmp_path, lambda r: r["models"][0]["vae"].update(file=path))
    assert "$.models[0].vae.file" in msg


@pytest.mark.parametrize(
    "url, problem",
    [
        ("file:///etc/passwd", "must be an https URL"),
        ("http://example.com/x.gguf", "plain http is allowed only for loopback"),
        ("ftp://example.com/x", "must be an https URL"),
    ],
)
def test_download_url_rules(tmp_path, url, problem):
    msg = _bad(tmp_path, lambda r: r["models"][0]["vae"].update(downloadUrl=url))
    assert "$.models[0].vae.downloadUrl" in msg and problem in msg


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/a/b/resolve/main/x", "http://localhost/x"])
def test_http_allowed_on_loopback(tmp_path, url):
    raw = copy.deepcopy(BUNDLED)
    raw["models"][0]["vae"]["downloadUrl"] = url
    assert load_catalog_file(_write(tmp_path, raw)).models[0].vae.download_url == url


def test_negative_size(tmp_path):
    msg = _bad(tmp_path, lambda r: r["models"][0]["diffusion"]["quants"][0].update(size=-5))
    assert "$.models[0].diffusion.quants[0].size" in msg and "greater than 0" in msg


@pytest.mark.parametrize("sha", ["abc", "z" * 64, "a" * 63])
def test_bad_sha256(tmp_path, sha):
    msg = _bad(tmp_path, lambda r: r["models"][0]["vae"].update(sha256=sha))
    assert "$.models[0].vae.sha256" in msg and "64 hexadecimal" in msg


def test_good_sha256_is_accepted_and_normalised(tmp_path):
    raw = copy.deepcopy(BUNDLED)
    raw["models"][0]["vae"]["sha256"] = "AB" * 32
    cat = load_catalog_file(_write(tmp_path, raw))
    assert cat.models[0].vae.sha256 == "ab" * 32


def test_first_launch_seeds_user_copy(tmp_path):
    user = tmp_path / "cfg" / "model-catalog.json"
    loaded = load_catalog(user)
    assert loaded.warnings == []
    assert user.exists()
    assert json.loads(user.read_text())["catalogVersion"] == BUNDLED["catalogVersion"]
    assert loaded.catalog.ids == ["flux2-klein-4b", "flux2-klein-9b"]


def test_user_added_model_survives_newer_bundled_version(tmp_path):
    user_raw = copy.deepcopy(BUNDLED)
    mine = copy.deepcopy(user_raw["models"][0])
    mine["id"], mine["name"] = "my-model", "Mine"
    user_raw["models"].append(mine)
    user_raw["models"][0]["name"] = "stale name"
    user = _write(tmp_path, user_raw, "user.json")
    bundled_raw = copy.deepcopy(BUNDLED)
    bundled_raw["catalogVersion"] = BUNDLED["catalogVersion"] + 1
    bundled = _write(tmp_path, bundled_raw, "bundled.json")
    loaded = load_catalog(user, bundled)
    assert loaded.catalog.ids == ["flux2-klein-4b", "flux2-klein-9b", "my-model"]
    assert loaded.catalog.get("flux2-klein-4b").name == "FLUX.2 Klein 4B"  # bundled update wins
    on_disk = json.loads(user.read_text())
    assert on_disk["catalogVersion"] == bundled_raw["catalogVersion"]
    assert [m["id"] for m in on_disk["models"]][-1] == "my-model"


def test_same_version_user_copy_is_used_as_is(tmp_path):
    user_raw = copy.deepcopy(BUNDLED)
    user_raw["models"][0]["name"] = "Renamed by me"
    user = _write(tmp_path, user_raw, "user.json")
    assert load_catalog(user).catalog.get("flux2-klein-4b").name == "Renamed by me"


def test_corrupt_user_copy_is_moved_aside_and_bundled_used(tmp_path):
    user = _write(tmp_path, '{"catalogVersion": 1, "models": [', "model-catalog.json")
    loaded = load_catalog(user)
    assert len(loaded.warnings) == 1
    aside = list(tmp_path.glob("model-catalog.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"catalogVersion": 1')
    assert aside[0].name in loaded.warnings[0]
    assert loaded.catalog.ids == ["flux2-klein-4b", "flux2-klein-9b"]
    assert json.loads(user.read_text())["models"]  # re-seeded


def test_hf_endpoint_rewrites_prefix(monkeypatch):
    cat = parse_catalog(json.dumps(BUNDLED), "bundled")
    mirrored = apply_endpoint(cat, "https://hf-mirror.example.org/")
    urls = [f.download_url for m in mirrored.models for _c, _q, f in m.files()]
    assert all(u.startswith("https://hf-mirror.example.org/") for u in urls)
    assert urls[0].endswith("/resolve/main/flux-2-klein-4b-Q3_K_S.gguf")
    loopback = apply_endpoint(cat, "http://127.0.0.1:9999")
    assert loopback.models[0].vae.download_url == (
        "http://127.0.0.1:9999/black-forest-labs/FLUX.2-dev/resolve/main/vae/ae.safetensors"
    )
    with pytest.raises(CatalogError, match="HF_ENDPOINT"):
        apply_endpoint(cat, "http://mirror.example.org")  # plain http off loopback


def test_roundtrip_is_stable():
    cat = Catalog.model_validate(BUNDLED)
    assert Catalog.model_validate(cat.to_json()) == cat
