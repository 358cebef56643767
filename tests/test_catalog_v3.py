"""Catalog v3 (issue 21.1): a model is a family and a list of components; v2 files migrate."""

from __future__ import annotations

import copy
import json

import pytest

from distill_tui.catalog import CatalogError, load_catalog, load_catalog_file, parse_catalog
from distill_tui.families import FAMILIES
from distill_tui.resources import bundled_catalog_path
from tests.catalog_raw import bundled_v2, bundled_v3


def _one(model: dict) -> dict:
    return {"catalogVersion": 3, "models": [model]}


def _err(raw: dict) -> str:
    with pytest.raises(CatalogError) as ei:
        parse_catalog(json.dumps(raw), "cat.json")
    return str(ei.value)


def test_bundled_models_read_their_family_and_components():
    cat = load_catalog_file(bundled_catalog_path())
    z = cat.require("z-image-turbo")
    assert (z.family, z.type, z.roles) == (
        "z-image",
        "image-generation",
        ["diffusion", "textEncoder", "vae"],
    )
    assert [c.engine_slot(z.family) for c in z.components] == [
        "diffusion_model_path",
        "llm_path",
        "vae_path",
    ]
    assert z.diffusion.ids == ["Q3_K", "Q4_0", "Q4_K", "Q6_K", "Q8_0"]
    assert z.default_quant("diffusion") == "Q4_K" and z.default_quant("textEncoder") == "Q4_K_M"
    rec = z.recommended
    assert (rec.steps, rec.cfg_scale, rec.sampler, rec.width, rec.flow_shift) == (
        8,
        1.0,
        "euler",
        1024,
        None,
    )
    assert not z.has_feature("edit_refs") and z.has_feature("img2img")
    base = cat.require("flux2-klein-base-4b")
    assert base.has_feature("negative_prompt") and not cat.require("flux2-klein-4b").has_feature(
        "negative_prompt"
    )
    assert (base.recommended.steps, base.recommended.cfg_scale) == (20, 4.0)
    ups = cat.of_type("upscaler")
    assert [m.id for m in ups] == ["realesrgan-x4plus", "realesrgan-x4plus-anime"]
    for m in ups:
        (comp,) = m.components
        assert comp.role == "upscaler" and comp.file is not None and not comp.has_quants
        assert comp.engine_slot(m.family) == "upscaler_path"


def test_the_qwen3_4b_quants_are_one_file_shared_by_three_models():
    cat = load_catalog_file(bundled_catalog_path())
    users = cat.users_of("text_encoders/Qwen3-4B-Q4_K_M.gguf")
    assert [m.id for m in users] == ["flux2-klein-4b", "z-image-turbo", "flux2-klein-base-4b"]
    k4, z = cat.require("flux2-klein-4b"), cat.require("z-image-turbo")
    assert [(q.file, q.sha256) for q in k4.text_encoder.quants] == [
        (q.file, q.sha256) for q in z.text_encoder.quants
    ]
    # Z-Image's FLUX.1 VAE is its own file (16 channels), not Klein's FLUX.2 VAE
    assert z.vae.file != k4.vae.file and z.vae.sha256 != k4.vae.sha256


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda m: m.update(family="sdxl"), "unknown family 'sdxl'"),
        (lambda m: m.update(type="upscaler"), "family 'z-image' is of type 'image-generation'"),
        (lambda m: m["components"].pop(2), "needs a 'vae' component"),
        (
            lambda m: m["components"].append({"role": "t5xxl", "file": m["components"][2]["file"]}),
            "no component role 't5xxl'",
        ),
        (lambda m: m["components"][1].update(slot="vae_path"), "slot 'vae_path' is not where"),
        (lambda m: m["components"][2].update(quants=[]), "either 'quants'"),
        (lambda m: m.update(features=["video"]), "unknown feature 'video'"),
        (lambda m: m["recommended"]["quants"].update(vae="Q4"), "recommended quant for 'vae'"),
    ],
)
def test_v3_rules_name_the_problem(mutate, words):
    raw = bundled_v3()
    z = copy.deepcopy(next(m for m in raw["models"] if m["id"] == "z-image-turbo"))
    mutate(z)
    msg = _err(_one(z))
    assert "cat.json: $.models[0]" in msg and words in msg, msg


def test_a_v2_user_copy_migrates_to_v3_and_keeps_the_users_own_model(tmp_path):
    """A user seeded with catalog v2 who added a model of their own: the bundled v3 models
    come in, the user's model stays, and the file is rewritten in the v3 shape."""
    old = bundled_v2()
    old["catalogVersion"] = 2
    mine = copy.deepcopy(old["models"][0])
    mine["id"], mine["family"] = "my-klein", ""  # v2 left the family empty
    for sec in ("diffusion", "textEncoder"):
        for q in mine[sec]["quants"]:
            q["file"] = "mine/" + q["file"]
    old["models"].append(mine)
    user = tmp_path / "model-catalog.json"
    user.write_text(json.dumps(old))
    loaded = load_catalog(user)
    assert loaded.warnings == []
    assert loaded.catalog.ids[-1] == "my-klein"
    assert loaded.catalog.require("my-klein").family == "flux2-klein"
    on_disk = json.loads(user.read_text())
    assert on_disk["catalogVersion"] == bundled_v3()["catalogVersion"]
    written = next(m for m in on_disk["models"] if m["id"] == "my-klein")
    assert "diffusion" not in written and [c["role"] for c in written["components"]] == [
        "diffusion",
        "textEncoder",
        "vae",
    ]
    assert load_catalog_file(user).require("my-klein").diffusion.ids == mine_ids(mine)


def mine_ids(model: dict) -> list[str]:
    return [q["id"] for q in model["diffusion"]["quants"]]


def test_a_v2_error_names_the_users_own_json_path():
    raw = bundled_v2()
    raw["models"][0]["vae"]["size"] = "big"
    assert "$.models[0].vae.size" in _err(raw)
    raw = bundled_v2()
    raw["models"][1]["textEncoder"]["quants"][0]["size"] = -1
    assert "$.models[1].textEncoder.quants[0].size" in _err(raw)


def test_every_family_row_is_complete():
    for fam in FAMILIES.values():
        assert fam.type in ("image-generation", "upscaler")
        assert fam.roles and all(r.slot for r in fam.roles)
        assert set(fam.signatures) == {r.role for r in fam.roles}, fam.id
        if fam.is_generator:
            assert {"steps", "cfg_scale", "sampler", "width", "height"} <= set(fam.defaults)


def test_what_an_entry_leaves_out_stays_left_out_after_a_rewrite(tmp_path, monkeypatch):
    """A user's Z-Image entry without a step count takes its family's (8), also after the
    user copy is rewritten by a merge and under HF_ENDPOINT (a rewrite must not write the
    schema's Klein-shaped defaults into it)."""
    raw = bundled_v3()
    z = copy.deepcopy(next(m for m in raw["models"] if m["id"] == "z-image-turbo"))
    z["id"] = "my-zimage"
    z["recommended"] = {"quants": {"diffusion": "Q4_K"}}
    old = {"catalogVersion": 1, "models": [z]}
    user = tmp_path / "model-catalog.json"
    user.write_text(json.dumps(old))
    load_catalog(user)  # merged with the newer bundled catalog and rewritten
    written = next(m for m in json.loads(user.read_text())["models"] if m["id"] == "my-zimage")
    assert written["recommended"] == {"quants": {"diffusion": "Q4_K"}}
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    cat = load_catalog(user).catalog
    assert "steps" not in cat.require("my-zimage").recommended.model_fields_set
    assert (
        cat.require("my-zimage").recommended.steps == 4
    )  # the row default; the family's 8 wins in Recipe.resolve
