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
from distill_tui.downloads.hub import path_in_repo, repo_of
from distill_tui.resources import bundled_catalog_path
from tests.catalog_raw import bundled_v2

BUNDLED = bundled_v2()  # the v2 shape: every rule below holds for v2 files too
#: the bundled models (catalog v3): the Klein pair first, then the families of issue 21
BUNDLED_IDS = [
    "flux2-klein-4b",
    "flux2-klein-9b",
    "z-image-turbo",
    "flux2-klein-base-4b",
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
]


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
    assert cat.ids == BUNDLED_IDS
    four, nine = cat.models[:2]
    assert four.diffusion.ids == ["Q3_K_S", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0"]
    # the 9B repo has no Q3_K_S (hub-facts.md): Q3_K_M, and the description says so
    assert nine.diffusion.ids == ["Q3_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0"]
    assert "no Q3_K_S" in nine.diffusion.get("Q3_K_M").description
    assert nine.license.commercial is False and "Non-Commercial" in nine.license.name
    for m in cat.models[:2]:
        assert m.text_encoder.ids == ["Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]
        assert m.vae.file == "vae/flux2-vae.safetensors"
        assert m.vae.repo_id == "Comfy-Org/flux2-dev"  # ungated: no token needed for Ready
        assert m.vae.sha256 and m.vae.sha256.startswith("d64f3a68")
        assert [repo_of(u) for u in m.vae.mirrors] == ["black-forest-labs/FLUX.2-dev"]
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
    for m in raw["models"]:  # the shared VAE: one file, so one sha256 (issue 11)
        m["vae"]["sha256"] = "AB" * 32
    cat = load_catalog_file(_write(tmp_path, raw))
    assert cat.models[0].vae.sha256 == "ab" * 32


def test_first_launch_seeds_user_copy(tmp_path):
    user = tmp_path / "cfg" / "model-catalog.json"
    loaded = load_catalog(user)
    assert loaded.warnings == []
    assert user.exists()
    assert json.loads(user.read_text())["catalogVersion"] == BUNDLED["catalogVersion"]
    assert loaded.catalog.ids == BUNDLED_IDS


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
    assert loaded.catalog.ids == BUNDLED_IDS
    assert json.loads(user.read_text())["models"]  # re-seeded


def test_hf_endpoint_rewrites_prefix(monkeypatch):
    cat = parse_catalog(json.dumps(BUNDLED), "bundled")
    mirrored = apply_endpoint(cat, "https://hf-mirror.example.org/")
    urls = [f.download_url for m in mirrored.models for _c, _q, f in m.files()]
    assert all(u.startswith("https://hf-mirror.example.org/") for u in urls)
    assert urls[0].endswith("/resolve/main/flux-2-klein-4b-Q3_K_S.gguf")
    loopback = apply_endpoint(cat, "http://127.0.0.1:9999")
    assert loopback.models[0].vae.download_url == (
        "http://127.0.0.1:9999/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors"
    )
    assert loopback.models[0].vae.mirrors[0].startswith("http://127.0.0.1:9999/black-forest-labs/")
    with pytest.raises(CatalogError, match="HF_ENDPOINT"):
        apply_endpoint(cat, "http://mirror.example.org")  # plain http off loopback


def test_roundtrip_is_stable():
    cat = Catalog.model_validate(BUNDLED)
    assert Catalog.model_validate(cat.to_json()) == cat


# What hub-facts.md (../shared/research) says really lives on the Hub: (repo, file) -> (bytes,
# sha256 or None). Every bundled URL must be one of these, with the exact size and sha256 where
# known; a size hub-facts only estimates must be flagged ``sizeEstimated``.
_FLUX1_AE = "afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38"
HUB_FACTS: dict[tuple[str, str], tuple[int | None, str | None]] = {
    ("unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q3_K_S.gguf"): (None, None),
    ("unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q4_K_S.gguf"): (None, None),
    ("unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q5_K_M.gguf"): (
        3_073_368_640,
        "58c01c75fee2272eadb127f53e26dd05a5a8e7f812e37c36fa44603301f91e54",
    ),
    ("unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q6_K.gguf"): (3_409_273_408, None),
    ("unsloth/FLUX.2-klein-4B-GGUF", "flux-2-klein-4b-Q8_0.gguf"): (4_300_644_928, None),
    ("unsloth/FLUX.2-klein-9B-GGUF", "flux-2-klein-9b-Q3_K_M.gguf"): (None, None),
    ("unsloth/FLUX.2-klein-9B-GGUF", "flux-2-klein-9b-Q4_K_S.gguf"): (None, None),
    ("unsloth/FLUX.2-klein-9B-GGUF", "flux-2-klein-9b-Q5_K_M.gguf"): (
        None,
        "ad0ace013fb401560ba4a7ff2b2bb3235795f07c19dffebf411806b424700503",
    ),
    ("unsloth/FLUX.2-klein-9B-GGUF", "flux-2-klein-9b-Q6_K.gguf"): (
        7_865_424_160,
        "1cd667293607431e79c9e7e01ecf5c602bd00539c2c0f49d4817a62998b5fe98",
    ),
    ("unsloth/FLUX.2-klein-9B-GGUF", "flux-2-klein-9b-Q8_0.gguf"): (9_978_304_800, None),
    ("unsloth/Qwen3-4B-GGUF", "Qwen3-4B-Q3_K_M.gguf"): (
        2_075_618_592,
        "e78ff54a67f3b3f57e637fbf0770d5b73c1e215ea7c0153980f1e8140c2b2486",
    ),
    ("unsloth/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf"): (
        2_497_281_312,
        "f6f851777709861056efcdad3af01da38b31223a3ba26e61a4f8bf3a2195813a",
    ),
    ("unsloth/Qwen3-4B-GGUF", "Qwen3-4B-Q5_K_M.gguf"): (2_889_514_272, None),
    ("unsloth/Qwen3-4B-GGUF", "Qwen3-4B-Q6_K.gguf"): (3_306_261_792, None),
    ("unsloth/Qwen3-4B-GGUF", "Qwen3-4B-Q8_0.gguf"): (
        4_280_405_792,
        "eed555233267a33c7e8ee31682762cc7751b3f6d224039086e0e846f05fffa5d",
    ),
    ("unsloth/Qwen3-8B-GGUF", "Qwen3-8B-Q3_K_M.gguf"): (
        4_124_161_856,
        "4924cf38a3b3c4b27ead5ccb93e27027f9418738506ac50a24a70dfe8581a007",
    ),
    ("unsloth/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf"): (
        5_027_784_512,
        "120307ba529eb2439d6c430d94104dabd578497bc7bfe7e322b5d9933b449bd4",
    ),
    ("unsloth/Qwen3-8B-GGUF", "Qwen3-8B-Q5_K_M.gguf"): (
        5_851_113_280,
        "159c694b93271e4edc1dc2a305b10cf981032c8f3035a7da00973312f0331504",
    ),
    ("unsloth/Qwen3-8B-GGUF", "Qwen3-8B-Q6_K.gguf"): (
        6_725_900_096,
        "0eaec718fdeab0f429dfa0ec481c090388811f5e63785ddb582292f4ef3c3827",
    ),
    ("unsloth/Qwen3-8B-GGUF", "Qwen3-8B-Q8_0.gguf"): (
        8_709_519_168,
        "0cfbf745760f07a76ddeb358dd025a27f2e11d1ca9c9a4169a373d52990fe86e",
    ),
    ("Comfy-Org/flux2-dev", "split_files/vae/flux2-vae.safetensors"): (
        336_213_556,
        "d64f3a68e1cc4f9f4e29b6e0da38a0204fe9a49f2d4053f0ec1fa1ca02f9c4b5",
    ),
    # the same bytes in BFL's gated repo (a mirror, never the first source)
    ("black-forest-labs/FLUX.2-dev", "vae/diffusion_pytorch_model.safetensors"): (
        336_213_556,
        "d64f3a68e1cc4f9f4e29b6e0da38a0204fe9a49f2d4053f0ec1fa1ca02f9c4b5",
    ),
    # hub-facts-next.md: Z-Image-Turbo (leejet, pinned at c61c0e4), its FLUX.1 VAE (ungated
    # Comfy-Org repackage + byte-identical mirrors), Klein base 4B (leejet, d126711), ESRGAN
    ("leejet/Z-Image-Turbo-GGUF", "z_image_turbo-Q3_K.gguf"): (
        3_143_559_104,
        "4b44bdaa7814f20d7cf144e3939bd93aa32f50660204dd0c2aea5c5376232980",
    ),
    ("leejet/Z-Image-Turbo-GGUF", "z_image_turbo-Q4_0.gguf"): (
        3_683_370_944,
        "2bc57986874c84f7ec6d02d9d7070a53b0029954a0e38a6e1342eb91095572f5",
    ),
    ("leejet/Z-Image-Turbo-GGUF", "z_image_turbo-Q4_K.gguf"): (
        3_864_250_304,
        "14b375ab4f226bc5378f68f37e899ef3c2242b8541e61e2bc1aff40976086fbd",
    ),
    ("leejet/Z-Image-Turbo-GGUF", "z_image_turbo-Q6_K.gguf"): (
        5_263_239_104,
        "319f627beac8059b7546f36a7b4d5097b7f4ee6a1fc37585d0f75ca1d12d01af",
    ),
    ("leejet/Z-Image-Turbo-GGUF", "z_image_turbo-Q8_0.gguf"): (
        6_577_440_704,
        "df1c5baa86d1398c979495a6072dbcee79444fdb884a2445582ba0769c44e9a1",
    ),
    ("Comfy-Org/z_image_turbo", "split_files/vae/ae.safetensors"): (335_304_388, _FLUX1_AE),
    ("Comfy-Org/Lumina_Image_2.0_Repackaged", "split_files/vae/ae.safetensors"): (
        335_304_388,
        _FLUX1_AE,
    ),
    ("unsloth/Z-Image-Turbo-ComfyUI", "split_files/vae/ae.safetensors"): (335_304_388, _FLUX1_AE),
    ("second-state/FLUX.1-schnell-GGUF", "ae.safetensors"): (335_304_388, _FLUX1_AE),
    ("leejet/FLUX.2-klein-base-4B-GGUF", "flux-2-klein-base-4b-Q4_0.gguf"): (
        2_460_378_560,
        "c3a2854510677b7aa37dd7547d908c54889a76c6d6aa3ffe902fcaa092d1328b",
    ),
    ("leejet/FLUX.2-klein-base-4B-GGUF", "flux-2-klein-base-4b-Q8_0.gguf"): (
        None,
        "197fbc64147d4f0a0ddf4c9e667b05a3790a73ed12f92d391f0f4d286ee30fe8",
    ),
    ("LykosAI/Upscalers", "RealESRGAN/RealESRGAN_x4plus.pth"): (
        67_040_989,
        "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    ),
    ("LykosAI/Upscalers", "RealESRGAN/RealESRGAN_x4plus_anime_6B.pth"): (
        17_938_799,
        "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
    ),
}


def test_bundled_catalog_matches_what_lives_on_the_hub():
    cat = load_catalog_file(bundled_catalog_path())
    seen = set()
    for m in cat.models:
        for _component, _qid, f in m.files():
            for url in f.sources:
                assert url.startswith("https://huggingface.co/"), url
                key = (repo_of(url), path_in_repo(url))
                assert key in HUB_FACTS, f"{url} is not known to exist on the Hub"
                seen.add(key)
            size, sha = HUB_FACTS[(repo_of(f.download_url), path_in_repo(f.download_url))]
            if size is None:
                assert f.size_estimated, f"{f.file}: size {f.size} is a guess, flag it"
            else:
                assert (f.size, f.size_estimated) == (size, False), f.file
            assert f.sha256 == sha, f.file
            if m.id in ("flux2-klein-4b", "flux2-klein-9b"):  # leejet: only Q4_0/Q8_0 there
                assert not f.repo_id.startswith("leejet/"), f.file
    # 21 Klein files + 5 Z-Image + its VAE + 2 Klein base + 2 upscalers (the Qwen3-4B quants
    # are shared), + the 4 VAE mirrors: nothing else
    assert seen == set(HUB_FACTS)
    assert len({f.file for m in cat.models for _c, _q, f in m.files()}) == 31


def test_mirrors_need_a_sha_and_valid_urls():
    raw = json.loads(json.dumps(BUNDLED))
    vae = raw["models"][0]["vae"]
    vae.pop("sha256")
    with pytest.raises(CatalogError, match="mirrors needs a sha256"):
        parse_catalog(json.dumps(raw), "c.json")
    vae["sha256"] = "0" * 64
    vae["mirrors"] = ["http://mirror.example.org/x"]
    with pytest.raises(CatalogError, match=r"vae\.mirrors.*plain http"):
        parse_catalog(json.dumps(raw), "c.json")


def test_a_v1_user_copy_with_dead_urls_is_upgraded(tmp_path):
    """Users seeded before catalog v2 hold leejet K-quant URLs (404 on the Hub) and a VAE path
    that never existed; the bundled models replace theirs, their own models stay."""
    old = copy.deepcopy(BUNDLED)
    old["catalogVersion"] = 1
    for m in old["models"]:
        for q in m["diffusion"]["quants"]:
            q["downloadUrl"] = q["downloadUrl"].replace("unsloth/", "leejet/")
            q.pop("sha256", None)
            q.pop("sizeEstimated", None)
        m["vae"] = {
            "file": "vae/ae.safetensors",
            "size": 336213556,
            "downloadUrl": "https://huggingface.co/black-forest-labs/FLUX.2-dev/resolve/main/vae/ae.safetensors",
        }
    mine = copy.deepcopy(old["models"][0])
    mine["id"] = "my-own-model"
    for section in ("diffusion", "textEncoder"):
        for q in mine[section]["quants"]:
            q["file"] = "mine/" + q["file"]
    old["models"].append(mine)
    user = _write(tmp_path, old, "model-catalog.json")
    cat = load_catalog(user).catalog
    assert cat.ids == [*BUNDLED_IDS, "my-own-model"]
    for m in cat.models[:2]:
        assert all("leejet" not in f.download_url for _c, _q, f in m.files())
        assert m.vae.file == "vae/flux2-vae.safetensors"
    on_disk = json.loads(user.read_text())
    assert on_disk["catalogVersion"] == BUNDLED["catalogVersion"] >= 2
    assert "leejet" not in json.dumps(on_disk["models"][:2])


def test_a_user_model_colliding_with_a_bundled_file_is_left_out_with_a_warning(tmp_path):
    """A user copy that is valid by itself, with a model of its own that names a bundled
    model's file with other bytes: after the merge one download would overwrite the other."""
    old = copy.deepcopy(BUNDLED)
    old["catalogVersion"] = 1
    mine = copy.deepcopy(old["models"][0])
    mine["id"] = "my-model"
    mine["diffusion"]["quants"][0]["sha256"] = "0" * 64  # the bundled Q3_K_S path, other bytes
    same = copy.deepcopy(old["models"][0])
    same["id"] = "my-other-model"
    old["models"] = [mine]
    user = _write(tmp_path, old, "model-catalog.json")
    assert load_catalog_file(user).ids == ["my-model"]  # valid by itself
    loaded = load_catalog(user)
    assert loaded.catalog.ids == BUNDLED_IDS
    assert any("'my-model'" in w and "left out" in w for w in loaded.warnings)
    old["models"] = [same]
    user2 = _write(tmp_path, old, "model-catalog-2.json")
    assert "my-other-model" in load_catalog(user2).catalog.ids
