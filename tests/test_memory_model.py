"""The memory model: each family's formula against the buffers sd.cpp logged, knobs, and which
sets fit an 8 GB card at 1024² / 512² (the models recommend CLI included)."""

from __future__ import annotations

import pytest

from distill_tui import memory_model as mm
from distill_tui.catalog import load_catalog_file
from distill_tui.resources import bundled_catalog_path

GB8 = 8_000_000_000
MiB = 2**20


@pytest.fixture(scope="module")
def catalog():
    return load_catalog_file(bundled_catalog_path())


def test_compute_buffers_match_what_sdcpp_logged():
    """bench/memory_model.md: the real-width VAE decoder and a Klein-4B-wide DiT on CPU."""
    assert mm.vae_compute(128, 128) / MiB == pytest.approx(104.03, rel=0.01)
    assert mm.vae_compute(256, 256) / MiB == pytest.approx(416.13, rel=0.01)
    # tiling: the buffer of one 512 px tile, whatever the size
    assert mm.vae_compute(1024, 1024, tiling=True) == mm.vae_compute(512, 512)
    a = mm.ARCHS["flux2-klein-4b"]
    for size, logged in ((128, 134.91), (256, 159.94), (512, 350.06)):
        est = mm.dit_compute(a, size, size, flash_attn=True) / MiB
        assert logged <= est <= logged * 1.25  # errs high, never low by more than nothing
    for size, logged in ((256, 180.94), (512, 476.06)):
        est = mm.dit_compute(a, size, size, flash_attn=False) / MiB
        assert est == pytest.approx(logged, rel=0.03)


def test_peak_formula_and_knobs():
    args = dict(
        diffusion_bytes=4 * 2**30,
        text_encoder_bytes=3 * 2**30,
        vae_bytes=2**28,
        width=1024,
        height=1024,
    )
    plain = mm.estimate(**args)
    w = 4 * 2**30 + 3 * 2**30 + 2**28
    assert plain.peak == mm.CONTEXT + w + mm.vae_compute(1024, 1024)
    assert plain.phase == "decode"
    tiled = mm.estimate(**args, knobs=mm.Knobs(vae_tiling=True))
    assert tiled.peak < plain.peak
    off = mm.estimate(**args, knobs=mm.Knobs(offload_to_cpu=True, vae_tiling=True))
    assert off.peak == mm.CONTEXT + max(
        3 * 2**30 + mm.ARCHS["flux2-klein-4b"].te_compute,
        4 * 2**30 + mm.dit_compute(mm.ARCHS["flux2-klein-4b"], 1024, 1024),
        2**28 + mm.vae_compute(1024, 1024, True),
    )
    te_cpu = mm.estimate(**args, knobs=mm.Knobs(keep_clip_on_cpu=True))
    assert te_cpu.peak == plain.peak - 3 * 2**30 and te_cpu.ram >= 3 * 2**30
    no_flash = mm.estimate(**args, knobs=mm.Knobs(flash_attn=False, vae_tiling=True))
    assert no_flash.compute["diffusion"] > tiled.compute["diffusion"]
    assert mm.estimate(**args, batch=4).peak == plain.peak  # a batch runs image by image


def table(catalog, size):
    out = {}
    for m in catalog.of_type("image-generation"):  # an upscaler has no sets
        for s in mm.all_sets(m, budget=GB8, width=size, height=size):
            out[(m.id, s.diffusion, s.text_encoder)] = s.fit
    return out


def test_8gb_card_at_1024(catalog):
    t = table(catalog, 1024)
    # the 6.5 GiB VAE decode buffer: nothing fits as it is at 1024² on 8 GB
    assert not [k for k, f in t.items() if f.level == "fits"]
    # Klein 4B: every set fits with knobs; the small ones with VAE tiling alone
    assert t[("flux2-klein-4b", "Q3_K_S", "Q3_K_M")].knobs == ("vae_tiling",)
    assert t[("flux2-klein-4b", "Q4_K_S", "Q4_K_M")].knobs == ("vae_tiling",)
    assert t[("flux2-klein-4b", "Q8_0", "Q8_0")].knobs == ("offload_to_cpu",)
    assert all(f.ok for (mid, _d, _t), f in t.items() if mid == "flux2-klein-4b")
    # Klein 9B: Q3_K_M / Q4_K_S with offload; Q5_K_M and up (7+ GB of DiT) do not fit
    assert t[("flux2-klein-9b", "Q4_K_S", "Q4_K_M")].knobs == ("offload_to_cpu",)
    for d in ("Q5_K_M", "Q6_K", "Q8_0"):
        assert t[("flux2-klein-9b", d, "Q3_K_M")].level == "no"
    best4 = mm.recommend(catalog.get("flux2-klein-4b"), budget=GB8, width=1024, height=1024)
    assert (best4.best.diffusion, best4.best.text_encoder) == ("Q8_0", "Q8_0")
    best9 = mm.recommend(catalog.get("flux2-klein-9b"), budget=GB8, width=1024, height=1024)
    assert best9.best.diffusion in ("Q3_K_M", "Q4_K_S") and best9.best.fit.ok


def test_8gb_card_at_512(catalog):
    t = table(catalog, 512)
    fits4 = {
        (d, e) for (mid, d, e), f in t.items() if mid == "flux2-klein-4b" and f.level == "fits"
    }
    assert ("Q4_K_S", "Q4_K_M") in fits4 and ("Q3_K_S", "Q3_K_M") in fits4
    assert ("Q8_0", "Q8_0") not in fits4
    assert t[("flux2-klein-4b", "Q8_0", "Q8_0")].knobs == ("offload_to_cpu",)
    assert not [k for k, f in t.items() if k[0] == "flux2-klein-9b" and f.level == "fits"]
    assert t[("flux2-klein-9b", "Q4_K_S", "Q4_K_M")].knobs == ("offload_to_cpu",)
    assert t[("flux2-klein-9b", "Q8_0", "Q8_0")].level == "no"


def test_cpu_only_budget_is_none():
    from distill_tui.devices import detect_machine

    assert mm.gpu_budget(detect_machine(fake_devices=[], fake_build="cpu")) is None


# ---- per family: Z-Image -------------------------------------------------------------------
#: sd.cpp's own DEBUG lines on tests/tinymodels.make_zimage_set (the REAL Z-Image DiT shape,
#: TQ2_0 zero weights stored sparse: its compute buffers are the real DiT's), CPU build 0.4.7,
#: prompt "a lighthouse at dusk" (< 32 tokens with its template: 32). Measured by engineer
#: tinyz and again by ``python bench/memory_families.py --only zimage`` (the same numbers),
#: which runs for each size and flash setting
#:   StableDiffusion(diffusion_model_path=zimage-dit.gguf, llm_path=zimage-llm.gguf,
#:                   vae_path=flux1-vae.safetensors, vae_decode_only=True, n_threads=2,
#:                   verbose=True, diffusion_flash_attn=FLASH, flash_attn=FLASH, enable_mmap=True)
#:   .generate_image(prompt="a lighthouse at dusk", width=W, height=W, sample_steps=1, seed=1)
#: and keeps the line "z_image compute buffer size: X MB(RAM)" (MiB). Params (every size):
#: "z_image params backend buffer size = 1520.19 MB(RAM) (453 tensors)"; the decoder-only
#: ch-32 FLUX.1 VAE: "vae compute buffer size: 6.50 MB" at 64x64.
ZIMAGE_LOGGED = {  # (size, flash_attn): MiB
    (64, True): 12.38,
    (256, True): 46.88,
    (512, True): 173.35,
    (1024, True): 690.10,
    (64, False): 10.51,
    (256, False): 47.81,
    (512, False): 238.24,
    (1024, False): 2379.49,
}
ZIMAGE_DIT_FILE = 1_593_573_856  # bytes of the tiny set's DiT file (the full shape in TQ2_0)
ZIMAGE_DIT_PARAMS_LOGGED = 1520.19  # MiB


#: the text encoder's buffer: a zero-weight Qwen3-4B of the real shape (36 layers, hidden
#: 2560, FFN 9728, tests.tinymodels.write_zimage_llm(path, 2560, 36, 9728)), prompts of N x
#: "lighthouse" (2 tokens each, + 8 of the template), bench/memory_families.py --only qwen3:
#: "qwen3 compute buffer size" (MiB; flash attention on or off logged the same)
QWEN3_4B_LOGGED = {"z-image": {128: 14.06, 254: 28.03, 508: 64.24}, "flux2-klein": {512: 75.00}}


def zimage_arch():
    return mm.ARCHS["z-image-6b"]


def test_zimage_compute_buffers_match_what_sdcpp_logged():
    """The Z-Image formula (families.py's z-image memory entry) never under the logged DiT
    buffer, within 8 % from 256² up (the sizes that matter: 1024² is 1.1 % / 0.4 % high)."""
    a = zimage_arch()
    assert (a.dit_hidden, a.dit_heads, a.family) == (3840, 30, "z-image")
    for (size, flash), logged in ZIMAGE_LOGGED.items():
        est = mm.dit_compute(a, size, size, flash_attn=flash, txt_tokens=32) / MiB
        assert est >= logged, (size, flash, est, logged)
        if size >= 256:
            assert est <= logged * 1.08, (size, flash, est, logged)
        else:  # 64²: 32 + 32 tokens; a few MiB next to GiBs of weights
            assert est - logged <= 6, (size, flash, est, logged)
    # the tokens the DiT sees: image and text each padded to 32
    assert mm.dit_tokens(a, 64, 64, 20) == 64
    assert mm.dit_tokens(a, 1024, 1024, 32) == 4128
    # the weights are the file: the logged params buffer is the file's tensors (+0.03 %)
    assert ZIMAGE_DIT_FILE / MiB == pytest.approx(ZIMAGE_DIT_PARAMS_LOGGED, rel=0.001)
    # the FLUX.1 decoder: the tiny ch-32 one logged 6.50 MiB at 64²: 52 B per channel per
    # pixel, as FLUX.2's; the real decoder is ch 128
    from dataclasses import replace

    assert mm.vae_compute(64, 64, arch=replace(a, vae_ch=32)) / MiB == pytest.approx(6.50, rel=0.01)
    assert a.vae_ch == 128
    # the text encoder's buffer is over what Qwen3-4B logged for a 508-token prompt (Klein's
    # 256 MiB estimate is over its padded 512 tokens: it errs high)
    assert a.te_compute / MiB >= max(QWEN3_4B_LOGGED["z-image"].values())
    assert mm.ARCHS["flux2-klein-4b"].te_compute / MiB >= QWEN3_4B_LOGGED["flux2-klein"][512]


def test_zimage_vae_tile_is_256px_and_klein_keeps_512():
    """sd.cpp tiles the decode by 32 latents: 512 px for FLUX.2 (16 px per latent), 256 px for
    the FLUX.1 VAE of Z-Image (8 px)."""
    z, k = zimage_arch(), mm.ARCHS["flux2-klein-4b"]
    assert mm.vae_compute(1024, 1024, tiling=True, arch=z) == mm.vae_compute(256, 256, arch=z)
    assert mm.vae_compute(1024, 1024, tiling=True, arch=k) == mm.vae_compute(512, 512, arch=k)
    assert mm.vae_compute(1024, 1024, arch=z) == mm.vae_compute(1024, 1024, arch=k)


def test_each_catalog_model_reads_its_family_formula(catalog):
    """The memory model reads model.spec.memory: Z-Image-Turbo is not a Klein (its Q8_0 file,
    6.6 GB, once made it a 'Klein 9B'); Klein base 4B is a Klein 4B; an upscaler has none."""
    got = {m.id: mm.arch_of(m).name for m in catalog.of_type("image-generation")}
    assert got["z-image-turbo"] == "z-image-6b"
    assert got["flux2-klein-4b"] == got["flux2-klein-base-4b"] == "flux2-klein-4b"
    assert got["flux2-klein-9b"] == "flux2-klein-9b"
    for m in catalog.of_type("upscaler"):
        with pytest.raises(mm.NoMemoryFormula, match="unknown"):
            mm.arch_of(m)
    # every image-generation family has a formula
    from distill_tui.families import FAMILIES

    for f in FAMILIES.values():
        assert bool(f.memory.get("variants")) == f.is_generator, f.id


def test_zimage_dit_buffers_on_the_real_engine(tmp_path):
    """ONE real-engine check, ~5 s: sd.cpp loads the tiny Z-Image set (the real DiT shape) and
    allocates the DiT's compute buffer for a 512² image; the process is stopped once the
    line is logged (before the 15-40 s step). The formula is over it by < 8 %, and the logged
    params buffer is the DiT file within 0.1 %."""
    import re
    import subprocess
    import sys
    import time

    from tests.tinymodels import make_zimage_set

    paths = make_zimage_set(tmp_path / "set")
    script = (
        "import sys, stable_diffusion_cpp as s\n"
        "d, l, v = sys.argv[1:4]\n"
        "sd = s.StableDiffusion(diffusion_model_path=d, llm_path=l, vae_path=v,"
        " vae_decode_only=True, n_threads=2, verbose=True, diffusion_flash_attn=True,"
        " flash_attn=True, enable_mmap=True)\n"
        "sd.generate_image(prompt='a lighthouse at dusk', width=512, height=512,"
        " sample_steps=1, cfg_scale=1.0, seed=1)\n"
    )
    cmd = [
        sys.executable,
        "-c",
        script,
        *(str(paths[k]) for k in ("diffusion", "text_encoder", "vae")),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    params = compute = None
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"z_image params backend buffer size =\s*([\d.]+) MB", line)
            params = float(m.group(1)) if m else params
            m = re.search(r"z_image compute buffer size: ([\d.]+) MB", line)
            if m:
                compute = float(m.group(1))
                break
            if time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert params is not None and compute is not None, "sd.cpp logged no z_image buffers"
    est = mm.dit_compute(zimage_arch(), 512, 512, flash_attn=True, txt_tokens=32) / MiB
    assert compute <= est <= compute * 1.08, (compute, est)
    assert paths["diffusion"].stat().st_size / MiB == pytest.approx(params, rel=0.001)


# ---- through the CLI: distill models recommend ------------------------------------------
CARD_8 = '[{"name":"NVIDIA RTX 4060","backend":"cuda","total":8e9,"free":7.5e9}]'


@pytest.fixture
def card8(monkeypatch):
    monkeypatch.setenv("DISTILL_FAKE_DEVICES", CARD_8)
    monkeypatch.setenv("DISTILL_FAKE_BUILD", "cuda")


def _recommend(capsys, *extra: str) -> dict:
    import json

    from distill_tui.cli import main as cli_main

    assert cli_main(["models", "recommend", "--json", "--all", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_recommend_zimage_on_an_8gb_card(app_paths, capsys, card8, catalog):
    """Z-Image-Turbo's sets at 1024² on 8 GB, with Z-Image's arithmetic: its 256 px VAE tiles
    (416 MiB) and 3840-wide DiT (~0.7 GiB), not Klein 9B's (1.6 GiB tiles, 1.5 GiB DiT)."""
    doc = _recommend(capsys, "--width", "1024", "--height", "1024")
    z = next(m for m in doc["models"] if m["model"] == "z-image-turbo")
    sets = {(s["diffusion"], s["text_encoder"]): s for s in z["sets"]}
    assert len(sets) == 25
    # the smallest set fits with VAE tiling alone (Klein 9B arithmetic: offload)
    assert sets[("Q3_K", "Q3_K_M")]["fit"] == "fits: VAE tiling"
    # the 6.6 GB Q8_0 DiT leaves no room (10 % kept free) whatever the encoder
    assert all(sets[("Q8_0", t)]["level"] == "no" for t in ("Q3_K_M", "Q8_0"))
    assert z["best"]["fit"].startswith("fits") and z["best"]["diffusion"] != "Q8_0"
    # each peak is the Z-Image formula on the catalog's sizes
    model = catalog.get("z-image-turbo")
    a = mm.ARCHS["z-image-6b"]
    for (d, t), s in sets.items():
        est = mm.estimate(
            diffusion_bytes=model.diffusion.get(d).size,
            text_encoder_bytes=model.text_encoder.get(t).size,
            vae_bytes=model.vae.size,
            width=1024,
            height=1024,
            arch=a,
        )
        assert s["plain_peak"] == est.peak
    # plain (no knobs) the 6.5 GiB decode buffer sets the peak, as for Klein
    assert sets[("Q4_K", "Q4_K_M")]["plain_peak"] > 12 * 2**30
    # Klein's answers do not move
    k4 = next(m for m in doc["models"] if m["model"] == "flux2-klein-4b")
    assert (k4["best"]["diffusion"], k4["best"]["text_encoder"]) == ("Q8_0", "Q8_0")


#: sd.cpp's DEBUG lines for tests/tiny_esrgan.write_pth (RRDBNet x4 at the real num_feat 64,
#: 1 block; 2 blocks logged the same), CPU build 0.4.7: bench/memory_families.py --only esrgan runs
#: StableDiffusion(upscaler_path=P, upscale_tile_size=TILE, n_threads=2, verbose=True)
#: .upscale(images=[SRC x SRC RGB], upscale_factor=4) and keeps "esrgan compute buffer size".
ESRGAN_LOGGED = {  # (tile, source side): MiB
    (32, 128): 26.01,
    (64, 128): 104.05,
    (128, 128): 416.19,
    (256, 256): 1664.75,
    (128, 64): 104.05,  # the image within one tile: run whole
}


def test_esrgan_tile_buffers_match_what_sdcpp_logged(catalog):
    up = catalog.get("realesrgan-x4plus")
    for (tile, src), logged in ESRGAN_LOGGED.items():
        est = mm.upscale_compute(up, tile, src, src) / MiB
        assert est == pytest.approx(logged, rel=0.001), (tile, src, est, logged)
    e = mm.upscale_estimate(up, tile=128)
    assert e.peak == mm.CONTEXT + 67_040_989 + e.compute
    assert e.compute / MiB == pytest.approx(416.19, rel=0.001)


def test_esrgan_tile_buffer_on_the_real_engine(tmp_path, catalog):
    """ONE real-engine check, ~3 s: the tiny real-width ESRGAN at tile 64 on a 128² image."""
    import re
    import subprocess
    import sys
    import time

    from tests.tiny_esrgan import write_pth

    pth = write_pth(tmp_path / "x4.pth")
    script = (
        "import sys, stable_diffusion_cpp as s\n"
        "from PIL import Image\n"
        "up = s.StableDiffusion(upscaler_path=sys.argv[1], upscale_tile_size=64, n_threads=2,"
        " verbose=True)\n"
        "up.upscale(images=[Image.new('RGB', (128, 128), (120, 80, 40))], upscale_factor=4)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(pth)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    m = None
    deadline = time.monotonic() + 120
    try:  # stopped once the buffer is logged (the tiles themselves take ~50 s on 2 cores)
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"esrgan compute buffer size: ([\d.]+) MB", line)
            if m or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert m, "".join(seen)[-2000:]
    est = mm.upscale_compute(catalog.get("realesrgan-x4plus"), 64, 128, 128) / MiB
    assert est == pytest.approx(float(m.group(1)), rel=0.001)


def test_recommend_an_upscaler_gives_its_memory(app_paths, capsys, card8):
    """distill models recommend --model UPSCALER: its weights + one tile's buffer at distill
    upscale's default tile (128 px), not a generation set (and no traceback)."""
    import json

    from distill_tui.cli import main as cli_main

    assert cli_main(["models", "recommend", "--model", "realesrgan-x4plus", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (m,) = doc["models"]
    assert (m["model"], m["type"], m["tile"], m["fit"]) == (
        "realesrgan-x4plus",
        "upscaler",
        128,
        "fits",
    )
    assert m["peak"] == mm.CONTEXT + 67_040_989 + int(26_636 * 128 * 128)
    assert cli_main(["models", "recommend", "--model", "realesrgan-x4plus"]) == 0
    text = capsys.readouterr().out
    assert "tile 128" in text and "fits" in text and "Traceback" not in text


# ---- the Model Manager's fit column ---------------------------------------------------------
async def test_model_manager_fit_column_for_zimage_and_none_for_an_upscaler(card8):
    """F3 with an 8 GB card: Z-Image-Turbo's rows show the Z-Image formula's fit (its smallest
    DiT in 6.6 GB fits with offload at 1024²), an upscaler's card shows no fit mark (its fit
    is unknown: no Klein number)."""
    import asyncio

    from tests.test_snapshots_models import build_app

    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            if app.machine is not None:
                break
            await asyncio.sleep(0.02)
        await pilot.press("f3")
        await pilot.pause()
        card = next(c for c in app.screen.cards if c.model.id == "z-image-turbo")
        card.collapsed = False
        await pilot.pause()
        model = app.core.catalog.require("z-image-turbo")
        w, h = mm.generation_size(app.core.settings.settings, model)
        assert (w, h) == (1024, 1024)
        fits = mm.card_fits(
            model, app.core.settings.selection(model.id), budget=GB8, width=w, height=h
        )
        marks = {r.quant_id: r.fit_mark.plain.strip() for r in card.sets["diffusion"].rows}
        assert set(marks) == {"Q3_K", "Q4_0", "Q4_K", "Q6_K", "Q8_0"}
        for row in card.sets["diffusion"].rows:
            assert row.fit_mark.plain.strip().startswith(
                {"fits": "✓", "knobs": "≈", "no": "✗"}[fits.rows[row.key].level]
            )
        # the marks are the Z-Image formula's (Klein 9B arithmetic, 1.6 GiB VAE tiles, marked
        # the small sets "offload")
        te = card.best_set["textEncoder"] if card.best_set else None
        assert te is not None and card.fit_header is not None
        for row in card.sets["diffusion"].rows:
            want = mm.fit(
                GB8,
                diffusion_bytes=model.diffusion.get(row.quant_id).size,
                text_encoder_bytes=model.text_encoder.get(te).size,
                vae_bytes=model.vae.size,
                width=w,
                height=h,
                arch=mm.ARCHS["z-image-6b"],
            )
            assert fits.rows[row.key] == want, row.quant_id
        # the 6.6 GB Q8_0 DiT + its 0.7 GiB buffer fit with offload (a "Klein 9B" said too big:
        # 1.5 GiB); the best set (10 % kept free) is Q6_K + Q8_0 (the "Klein 9B": Q4_K)
        assert marks["Q8_0"] == "≈ offload", marks
        assert card.best_set == {"diffusion": "Q6_K", "textEncoder": "Q8_0"}
        for up in (c for c in app.screen.cards if c.model.type == "upscaler"):
            assert up.fit_header is None and up.best_set is None
