"""Issue 21 (generation path): a model is a family and its components.

* a model of an existing family added through the user catalog only (a catalog v3 entry, no
  code) generates through ``distill generate`` and the real engine child;
* ``--quant ROLE=Q`` picks each component's quant (``--diffusion`` / ``--text-encoder`` stay
  as aliases on ``distill compare``); bad roles and quants are one line;
* only image-generation models generate: an upscaler id is one clear line;
* the load request is built from the components (each role's engine slot) and names the
  family; the recipe starts from the family's defaults, then the catalog's recommended values.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.outputs import parse_parameters, read_parameters

ROOT = Path(__file__).resolve().parent.parent

VARIANT = "my-klein-variant"


def distill(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def _file(path: Path, rel: str) -> dict:
    return {
        "file": rel,
        "size": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "downloadUrl": f"http://127.0.0.1:9/variant/{rel}",
    }


def variant_entry(models: dict[str, Path], recommended: dict | None = None) -> dict:
    """A catalog v3 model of the flux2-klein family: components only, two diffusion quants
    (the same bytes under two names) so ``--quant`` has a choice."""
    dit = models["diffusion"]
    return {
        "id": VARIANT,
        "name": "My Klein variant",
        "type": "image-generation",
        "family": "flux2-klein",
        "components": [
            {
                "role": "diffusion",
                "name": "Variant DiT",
                "quants": [
                    {"id": "A", "label": "A", **_file(dit, "variant/dit-A.gguf")},
                    {"id": "B", "label": "B", **_file(dit, "variant/dit-B.gguf")},
                ],
            },
            {
                "role": "textEncoder",
                "name": "Variant Qwen3",
                "quants": [
                    {
                        "id": "F16",
                        "label": "F16",
                        **_file(models["text_encoder"], "variant/llm.gguf"),
                    }
                ],
            },
            {"role": "vae", "file": _file(models["vae"], "variant/vae.safetensors")},
        ],
        "recommended": recommended
        if recommended is not None
        else {"width": 64, "height": 64, "steps": 2, "quants": {"diffusion": "A"}},
    }


def add_user_model(app_paths, entry: dict, files: dict[str, Path]) -> None:
    """The user catalog: the bundled one plus ``entry`` (nothing else changes); its files put
    in the models dir and recorded, as a download would; the model made active."""
    from distill_tui.context import CoreContext
    from distill_tui.resources import bundled_catalog_path

    cat = json.loads(bundled_catalog_path().read_text("utf-8"))
    cat["models"].append(entry)
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(cat, indent=2), "utf-8")
    ctx = CoreContext.build(app_paths)
    for comp in entry["components"]:
        specs = comp.get("quants") or [comp["file"]]
        for spec in specs:
            src = files[spec["file"]]
            dest = ctx.inventory.abs_path(spec["file"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            ctx.inventory.record(spec["file"], spec["size"], spec["sha256"], spec["downloadUrl"])
    for role in ("diffusion", "textEncoder"):  # the quants a download would select
        comp = next(c for c in entry["components"] if c["role"] == role)
        quant = entry["recommended"].get("quants", {}).get(role) or comp["quants"][0]["id"]
        ctx.settings.set_quant(entry["id"], role, quant)


def _variant(app_paths, tiny_models, recommended: dict | None = None) -> dict:
    entry = variant_entry(tiny_models, recommended)
    files = {
        "variant/dit-A.gguf": tiny_models["diffusion"],
        "variant/dit-B.gguf": tiny_models["diffusion"],
        "variant/llm.gguf": tiny_models["text_encoder"],
        "variant/vae.safetensors": tiny_models["vae"],
    }
    add_user_model(app_paths, entry, files)
    return entry


# ---- a model of an existing family, added through the user catalog only -------------------


def test_user_catalog_model_of_known_family_generates(app_paths, tiny_models, tmp_path):
    _variant(app_paths, tiny_models)
    out = tmp_path / "v.png"
    p = distill(
        "generate", "a lovely cat", "--model", VARIANT, "--quant", "diffusion=B",
        "--quant", "text-encoder=F16", "--seed", "3", "-o", str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [str(out)]
    with Image.open(out) as im:
        assert im.size == (64, 64)  # the entry's recommended size
    params = parse_parameters(read_parameters(out) or "")
    assert params["Model"] == VARIANT
    assert params["Diffusion quant"] == "B" and params["Steps"] == "2"
    # without --quant: the selected quant (--quant chose for one run only); --json names it
    p = distill("generate", "a cat", "--model", VARIANT, "--json", "-o", str(tmp_path / "w.png"))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["model"] == VARIANT and doc["quants"]["diffusion"] == "A"


def test_family_defaults_fill_what_the_entry_leaves_out(app_paths, tiny_models, tmp_path):
    """An entry without a recommended step count gets its family's (flux2-klein: 4), not a
    fixed one; a recommended flow shift reaches the generation."""
    _variant(app_paths, tiny_models, {"width": 64, "height": 64, "flowShift": 2.5})
    out = tmp_path / "f.png"
    p = distill("generate", "a cat", "--model", VARIANT, "--quiet", "-o", str(out))
    assert p.returncode == 0, p.stderr
    params = parse_parameters(read_parameters(out) or "")
    assert params["Steps"] == "4"
    with Image.open(out) as im:
        chunk = json.loads(im.info["distill"])
    assert chunk["flow_shift"] == 2.5 and chunk["steps"] == 4


def test_quant_flag_problems_are_one_line(app_paths, tiny_models):
    _variant(app_paths, tiny_models)
    cases = [
        (("--quant", "diffusion"), "--quant diffusion: expected ROLE=QUANT"),
        (("--quant", "vae=X"), "vae"),  # the VAE is one file: no quant to pick
        (("--quant", "unet=A"), "unet"),
        (("--quant", "diffusion=Q9"), "Q9"),
        (("--quant", "diffusion=A", "--quant", "diffusion=B"), "diffusion"),
    ]
    for flags, words in cases:
        p = distill("generate", "x", "--model", VARIANT, *flags)
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1, (flags, p.stderr)
        assert words in lines[0], (flags, lines)
        assert "Traceback" not in p.stderr
    # a terminal escape in a role or quant is shown, never sent to the terminal
    for item in ("diffusion=\x1b]0;pwned\x07", "\x1b[2Jdiffusion=A"):
        p = distill("generate", "x", "--model", VARIANT, "--quant", item)
        assert p.returncode == 1 and "\x1b" not in p.stderr and "\x07" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_not_downloaded_quant_names_the_download(app_paths, tiny_models):
    entry = _variant(app_paths, tiny_models)
    from distill_tui.context import CoreContext

    ctx = CoreContext.build(app_paths)
    rel = entry["components"][0]["quants"][1]["file"]
    ctx.inventory.abs_path(rel).unlink()
    p = distill("generate", "x", "--model", VARIANT, "--quant", "diffusion=B")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert "not downloaded" in lines[0] and VARIANT in lines[0]


def test_upscaler_is_not_a_generation_model(app_paths):
    for cmd in (("generate", "a cat"), ("compare", "a cat")):
        p = distill(*cmd, "--model", "realesrgan-x4plus")
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1, p.stderr
        assert "realesrgan-x4plus" in lines[0] and "upscaler" in lines[0], lines
        assert "distill upscale" in lines[0]


def test_load_request_from_components_and_family(app_paths, tiny_models):
    """Each component's file goes to its family's engine slot; the request names the family;
    the picture starts from the family's defaults (z-image: 8 steps) under the catalog's."""
    _variant(app_paths, tiny_models)
    from distill_tui.context import CoreContext
    from distill_tui.families import FAMILIES
    from distill_tui.recipe import Recipe

    ctx = CoreContext.build(app_paths)
    model = ctx.catalog.require(VARIANT)
    paths = ctx.resolver.active_paths(VARIANT)
    load, _gen = Recipe.resolve(model.recommended, family=model.family).to_requests(
        paths, "/tmp", None
    )
    assert load.family == "flux2-klein"
    inv = ctx.inventory
    assert Path(load.diffusion_model_path) == inv.abs_path("variant/dit-A.gguf").resolve()
    assert Path(load.llm_path) == inv.abs_path("variant/llm.gguf").resolve()
    assert Path(load.vae_path) == inv.abs_path("variant/vae.safetensors").resolve()
    zi = ctx.catalog.require("z-image-turbo")
    r = Recipe.resolve(None, family=zi.family)
    assert r["steps"] == FAMILIES["z-image"].defaults["steps"] == 8
    r = Recipe.resolve(zi.recommended, family=zi.family)
    assert r["steps"] == 8 and r["cfg_scale"] == 1.0
    # a Z-Image model's files: each role in the family's slot, and the family named (the
    # engine child's preflight checks the Z-Image signatures by it)
    from types import SimpleNamespace

    slots = {"diffusion_model_path": "/m/z.gguf", "llm_path": "/m/q.gguf", "vae_path": "/m/a.st"}
    zload = r.load_request(SimpleNamespace(slots=slots), None, family=zi.family)
    assert zload.family == "z-image" and zload.diffusion_model_path == "/m/z.gguf"
    assert (zload.llm_path, zload.vae_path) == ("/m/q.gguf", "/m/a.st")


def test_compare_by_role_with_alias(app_paths, tiny_models, tmp_path):
    """``distill compare --quant diffusion=A,B --text-encoder F16``: the family's slots, two
    cells; a role the model has no quants for is one line."""
    _variant(app_paths, tiny_models)
    sheet = tmp_path / "sheet.png"
    p = distill(
        "compare", "a cat", "--model", VARIANT, "--quant", "diffusion=A,B",
        "--text-encoder", "F16", "--seed", "5", "-o", str(sheet), timeout=240,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(sheet) and sheet.is_file()
    assert "2 diffusion × 1 text encoder" in p.stderr
    p = distill("compare", "a cat", "--model", VARIANT, "--quant", "vae=X")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "vae" in lines[0], p.stderr


# ---- Z-Image end to end: loopback Hub -> download -> use -> generate ----------------------


def _serve_zimage(hub, app_paths, files: dict[str, Path]) -> dict[str, str]:
    """The bundled catalog as the user's, with Z-Image-Turbo's recommended files (the DiT,
    the Qwen3-4B text encoder Klein 4B shares, the FLUX.1 VAE) served by ``hub`` with the tiny
    Z-Image bytes under their REAL repos and paths; every entry naming one of those files
    (Klein 4B's text encoder too: one file, one sha256) points at the loopback Hub."""
    from urllib.parse import urlsplit

    from tests.catalog_raw import bundled_v3

    raw = bundled_v3()
    zi = next(m for m in raw["models"] if m["id"] == "z-image-turbo")
    rec = zi["recommended"]["quants"]
    source = {"diffusion": files["diffusion"], "textEncoder": files["text_encoder"]}
    served: dict[str, tuple[str, Path]] = {}  # file -> (loopback url, tiny bytes)
    for comp in zi["components"]:
        if comp["role"] == "vae":
            entry, data = comp["file"], files["vae"]
        else:
            entry = next(q for q in comp["quants"] if q["id"] == rec[comp["role"]])
            data = source[comp["role"]]
        url = entry["downloadUrl"]
        repo = "/".join(urlsplit(url).path.strip("/").split("/")[:2])
        in_repo = urlsplit(url).path.split("/resolve/", 1)[1].split("/", 1)[1]
        hub.add_file(repo, in_repo, data)
        served[entry["file"]] = (hub.resolve_url(repo, in_repo), data)

    def fix(entry: dict) -> None:
        if entry["file"] in served:
            url, data = served[entry["file"]]
            entry.update(
                downloadUrl=url,
                size=data.stat().st_size,
                sha256=hashlib.sha256(data.read_bytes()).hexdigest(),
            )
            entry.pop("mirrors", None)
            entry.pop("revision", None)
            entry.pop("sizeEstimated", None)

    for m in raw["models"]:
        for comp in m["components"]:
            for entry in comp.get("quants") or [comp["file"]]:
                fix(entry)
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(raw, indent=2), "utf-8")
    return {role: rec[role] for role in ("diffusion", "textEncoder")}


@pytest.mark.slow
def test_zimage_download_use_generate(fake_hub, app_paths, tmp_path):
    from tests import tinymodels

    files = tinymodels.make_zimage_set(tmp_path / "zset")
    quants = _serve_zimage(fake_hub, app_paths, files)
    p = distill("models", "download", "z-image-turbo", timeout=600)
    assert p.returncode == 0, p.stderr
    p = distill(
        "models", "use", "z-image-turbo", "--quant", f"diffusion={quants['diffusion']}",
        "--quant", f"text-encoder={quants['textEncoder']}",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = tmp_path / "z.png"
    p = distill(
        "generate", "a lighthouse at dusk", "--width", "64", "--height", "64", "--steps", "2",
        "--seed", "11", "-o", str(out), timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [str(out)]
    with Image.open(out) as im:
        assert im.size == (64, 64)
        chunk = json.loads(im.info["distill"])
    params = parse_parameters(read_parameters(out) or "")
    assert params["Model"] == "z-image-turbo"
    assert params["Diffusion quant"] == quants["diffusion"]
    assert params["Text encoder quant"] == quants["textEncoder"]
    assert chunk["model_id"] == "z-image-turbo" and chunk["steps"] == 2
    # the family's defaults: without --steps the recipe starts from 8 (Z-Image-Turbo's)
    from distill_tui.context import CoreContext
    from distill_tui.recipe import Recipe

    model = CoreContext.build(app_paths).catalog.require("z-image-turbo")
    assert Recipe.resolve(model.recommended, family=model.family)["steps"] == 8
