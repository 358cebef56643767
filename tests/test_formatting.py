"""distill_tui.formatting: the one home of the words and numbers every surface shows."""

from __future__ import annotations

from pathlib import Path

from distill_tui import formatting as fmt


def test_sizes():
    assert fmt.human_size(1_500_000_000) == "1.5 GB"
    assert fmt.human_size(999) == "999 B"
    assert fmt.short_size(336_400_000) == "336 MB"
    assert fmt.short_size(2_400_000_000) == "2.4 GB"
    assert fmt.gib(6.5 * 1024**3) == "6.5 GiB"


def test_eta_text():
    assert fmt.eta_text(65) == "1:05"
    assert fmt.eta_text(3725) == "1:02:05"
    assert fmt.eta_text(None) == "--:--"
    assert fmt.eta_text(100 * 3600) == "--:--"  # beyond 99 h says nothing
    assert fmt.eta_text(None, unknown="") == ""


def test_paths(monkeypatch, tmp_path):
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    assert fmt.home_path(tmp_path / "models") == "~/models"
    assert fmt.home_path(str(tmp_path)) == "~"
    assert fmt.home_path("/elsewhere/x.png") == "/elsewhere/x.png"
    assert fmt.home_path(f"{tmp_path}-other/x") == f"{tmp_path}-other/x"
    assert fmt.shown_path(tmp_path / "out" / "a.png") == "~/out/a.png"
    assert fmt.shown_path(tmp_path / "out" / "a.png", name_only=True) == "a.png"


def test_labels_and_captions():
    assert fmt.quant_pair("Q4_K_S", "Q4_K_M") == "Q4_K_S × Q4_K_M"
    assert fmt.recipe_label("m", "Q4_K_S", "Q4_K_M") == "m · Q4_K_S + Q4_K_M"
    caption = fmt.image_caption("[x].png", 7, 64, 32, {"sample": 1.25, "total": 2.0})
    assert caption == "[b]\\[x].png[/b]\nseed 7 · 64x32\nsample 1.2s · total 2.0s"
    assert fmt.image_caption("a.png", 1, 8, 8) == "[b]a.png[/b]\nseed 1 · 8x8"
    assert fmt.one_line("a\n b   c", 10) == "a b c"
    assert fmt.one_line("abcdefghijkl", 5) == "abcd…"
    assert fmt.record_time("2025-06-01 12:34 (garbled)") == "06-01 12:34"  # not ISO: sliced
