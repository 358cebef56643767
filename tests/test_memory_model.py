"""The memory model: formula, knobs, and which Klein sets fit an 8 GB card at 1024² / 512²."""

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
    for m in catalog.models:
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
