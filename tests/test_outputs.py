"""PNG naming + parameters chunk, and the history file (no engine needed)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.outputs import (
    History,
    HistoryRecord,
    OutputRefused,
    format_parameters,
    parse_parameters,
    read_parameters,
    save_png,
)

PARAMS = {
    "prompt": "a lovely cat, 35mm",
    "negative_prompt": "blurry",
    "steps": 4,
    "sampler": "euler",
    "scheduler": "default",
    "cfg_scale": 1.0,
    "seed": 123,
    "width": 64,
    "height": 64,
    "model_id": "flux2-klein-4b",
    "diffusion_quant": "Q4_K_S",
    "text_encoder_quant": "Q3_K_M",
}


def img() -> Image.Image:
    return Image.new("RGBA", (64, 64), (10, 20, 30, 255))


def test_parameters_text_is_the_a1111_form():
    text = format_parameters(PARAMS)
    assert text == (
        "a lovely cat, 35mm\nNegative prompt: blurry\n"
        "Steps: 4, Sampler: euler, CFG scale: 1.0, Seed: 123, Size: 64x64, "
        "Model: flux2-klein-4b, Diffusion quant: Q4_K_S, Text encoder quant: Q3_K_M, "
        "Scheduler: default"
    )
    back = parse_parameters(text)
    assert back["prompt"] == "a lovely cat, 35mm" and back["negative_prompt"] == "blurry"
    assert back["Seed"] == "123" and back["Text encoder quant"] == "Q3_K_M"
    # no negative prompt: no line for it
    assert "Negative prompt" not in format_parameters({**PARAMS, "negative_prompt": ""})


def test_save_png_names_sort_never_collide_and_carry_parameters(tmp_path):
    paths = [save_png(img(), tmp_path, PARAMS, index=i % 2) for i in range(30)]
    assert len(set(paths)) == 30
    stamps = [p.name.split("_")[0] for p in paths]  # YYYYmmdd-HHMMSS-mmm
    assert stamps == sorted(stamps)
    first = paths[0]
    assert first.name.endswith("_123_0.png") and first.name[:8].isdigit()
    with Image.open(first) as im:
        assert im.mode == "RGB" and im.size == (64, 64)
    assert read_parameters(first) == format_parameters(PARAMS)


def test_save_png_concurrent_writers_get_distinct_files(tmp_path):
    out: list[Path] = []
    lock = threading.Lock()

    def work():
        for _ in range(10):
            p = save_png(img(), tmp_path, PARAMS)
            with lock:
                out.append(p)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 40 and len(set(out)) == 40
    assert len(list(tmp_path.glob("*.png"))) == 40


def test_save_png_exact_path_overwrites_atomically(tmp_path):
    target = tmp_path / "sub" / "out.png"
    assert save_png(img(), target, PARAMS, exact=True) == target
    # an existing file is replaced only when asked (-o ... --overwrite)
    with pytest.raises(OutputRefused, match="already exists"):
        save_png(img(), target, {**PARAMS, "seed": 4}, exact=True)
    assert "Seed: 123" in (read_parameters(target) or "")
    assert save_png(img(), target, {**PARAMS, "seed": 5}, exact=True, overwrite=True) == target
    assert "Seed: 5" in (read_parameters(target) or "")
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def test_save_png_exact_path_never_replaces_a_fifo_or_a_symlink(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    link = tmp_path / "link.png"
    link.symlink_to(fifo)
    for target in (fifo, link):
        for overwrite in (False, True):
            with pytest.raises(OutputRefused):
                save_png(img(), target, PARAMS, exact=True, overwrite=overwrite)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "pipe.png"]


def _rec(i: int, files: list[str]) -> HistoryRecord:
    return HistoryRecord(
        model_id="flux2-klein-4b",
        diffusion_quant="Q4_K_S",
        text_encoder_quant="Q3_K_M",
        params={**PARAMS, "seed": i},
        seed=i,
        images=files,
        timings={"total": 1.0},
    )


def test_history_newest_first_delete_with_files_and_torn_lines(tmp_path):
    h = History(tmp_path / "data" / "history.jsonl")
    assert h.records() == []
    files = []
    for i in range(3):
        f = save_png(img(), tmp_path / "out", {**PARAMS, "seed": i})
        files.append(f)
        h.add(_rec(i, [str(f)]))
    recs = h.records()
    assert [r.seed for r in recs] == [2, 1, 0]
    assert recs[0].key == ("flux2-klein-4b", "Q4_K_S", "Q3_K_M")
    # a torn last line (crash mid-append) is skipped, not fatal
    with open(h.path, "a") as fh:
        fh.write('{"id": "x", "model_')
    assert [r.seed for r in History(h.path).records()] == [2, 1, 0]
    assert h.delete(recs[1].id, outputs_dir=tmp_path / "out") is True
    assert not files[1].exists() and files[0].exists()
    assert [r.seed for r in h.records()] == [2, 0]
    assert h.delete("nope") is False
    assert h.delete(recs[0].id, delete_files=False) is True
    assert files[2].exists()
    assert h.get(recs[2].id) is not None


def test_history_concurrent_appends(tmp_path):
    h = History(tmp_path / "history.jsonl")

    def work(n):
        for i in range(25):
            h.add(_rec(n * 100 + i, []))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(h.records()) == 100 and not h.warnings
