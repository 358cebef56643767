"""Issue 19, items 1, 2 and 18 and the private-file NITs: ``-o`` never replaces what is not
ours, the Gallery deletes only the files it generated (still holding the recorded bytes), a
history record of the wrong shape is one clear line (never a dead TUI or a traceback), and the
prompts (history) and logs are private (0600) while images follow the umask.

Every case goes through the surface the user meets: the ``distill`` CLI as a process with the
real engine child on the tiny model, the engine client with the real child, the TUI by Pilot.
No test touches a real /dev entry: a FIFO in tmp stands for a device node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.outputs import History, HistoryRecord
from tests.engine_fixtures import TINY_MODEL_ID

ROOT = Path(__file__).resolve().parent.parent
GEN = ("generate", "a lovely cat", "--steps", "1", "--width", "64", "--height", "64")


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


def one_line_refusal(p: subprocess.CompletedProcess) -> str:
    """The process failed before the engine loaded, with one line and no traceback."""
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "loading model" not in p.stderr and "sampling" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- item 1: -o ------------------------------------------------------------------------


def test_output_that_is_not_a_regular_file_is_refused_before_the_engine(tiny_ready_model, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    link = tmp_path / "link.png"
    link.symlink_to(fifo)  # a symlink to such (a FIFO stands for /dev/full)
    for target in (fifo, folder, link):
        line = one_line_refusal(distill(*GEN, "-o", str(target), timeout=60))
        assert "not a regular file" in line, line
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert folder.is_dir() and not any(folder.iterdir())
    assert link.is_symlink() and os.readlink(link) == str(fifo)
    assert History(tiny_ready_model.paths.history_file).records() == []


def test_output_in_a_batch_is_checked_for_every_image(tiny_ready_model, tmp_path):
    os.mkfifo(tmp_path / "out-2.png")  # -o out.png --batch 2 writes out-1.png, out-2.png
    line = one_line_refusal(distill(*GEN, "--batch", "2", "-o", str(tmp_path / "out.png")))
    assert "out-2.png" in line and "not a regular file" in line
    assert stat.S_ISFIFO(os.lstat(tmp_path / "out-2.png").st_mode)


def test_existing_file_is_kept_unless_overwrite_and_file_modes(tiny_ready_model, tmp_path):
    help_text = distill("generate", "--help").stdout
    assert "--overwrite" in help_text
    out = tmp_path / "cover.png"
    out.write_bytes(b"my own work")
    line = one_line_refusal(distill(*GEN, "-o", str(out), timeout=60))
    assert "already exists" in line and "--overwrite" in line, line
    assert out.read_bytes() == b"my own work"
    # an old history file of 0644 becomes private too
    hist = tiny_ready_model.paths.history_file
    hist.parent.mkdir(parents=True, exist_ok=True)
    hist.touch(mode=0o644)
    os.chmod(hist, 0o644)
    p = distill(*GEN, "-o", str(out), "--overwrite")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [str(out)]
    with Image.open(out) as im:
        assert im.size == (64, 64)
    # the image follows the umask; the prompts (history) and logs are private
    assert mode(out) == 0o666 & ~umask()
    paths = tiny_ready_model.paths
    assert mode(paths.history_file) == 0o600
    assert mode(paths.log_dir / "engine.log") == 0o600
    assert mode(paths.log_file) == 0o600


def test_output_folder_that_cannot_be_made_is_refused_before_the_engine(tiny_ready_model, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where the folder would be")
    line = one_line_refusal(distill(*GEN, "-o", str(blocker / "sub" / "x.png"), timeout=60))
    assert "notes.txt" in line and "not a folder" in line, line
    assert blocker.read_text() == "a file where the folder would be"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_output_into_an_unwritable_folder_is_refused_before_the_engine(tiny_ready_model, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        line = one_line_refusal(distill(*GEN, "-o", str(ro / "x.png"), timeout=60))
        assert "not writable" in line, line
    finally:
        ro.chmod(0o700)


def test_init_image_that_is_not_a_regular_file_says_so(tiny_ready_model, tmp_path):
    fifo = tmp_path / "zero"
    os.mkfifo(fifo)
    line = one_line_refusal(distill(*GEN, "--init-image", str(fifo), timeout=60))
    assert "not a regular file" in line and "not found" not in line, line
    line = one_line_refusal(distill(*GEN, "--init-image", str(tmp_path / "nope.png")))
    assert "not found" in line


def test_engine_child_never_replaces_a_non_regular_file_at_the_exact_path(tiny_models, tmp_path):
    """The CLI's check can be raced (the FIFO appears after it): the child's own write refuses
    to replace anything but a regular file, and without overwrite refuses a regular file."""
    from distill_tui.engine.client import EngineClient, EngineError
    from tests.test_engine import gen_req, load_req

    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"mine")

    async def run() -> list[str]:
        client = EngineClient()
        errors = []
        try:
            for target, overwrite in ((fifo, True), (mine, False)):
                req = gen_req(
                    tmp_path, output_dir=None, output_file=str(target), output_overwrite=overwrite
                )
                with pytest.raises(EngineError) as e:
                    await client.generate(load_req(tiny_models), req)
                errors.append(e.value.message)
            fresh = gen_req(tmp_path, output_dir=None, output_file=str(mine), output_overwrite=True)
            await client.generate(load_req(tiny_models), fresh)
        finally:
            await client.shutdown()
        return errors

    errors = asyncio.run(run())
    assert "not a regular file" in errors[0], errors
    assert "already exists" in errors[1], errors
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with Image.open(mine) as im:  # --overwrite replaces a regular file
        assert im.size == (64, 64)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp left


# ---- item 2: Gallery delete ------------------------------------------------------------


def _png(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)
    return path


def _crafted_line(images: list[str], *, files: list[dict] | None = None, **params) -> str:
    rec = {
        "id": hashlib.sha1(repr(images).encode()).hexdigest(),
        "created": "2026-01-01T00:00:00+00:00",
        "model_id": "flux2-klein-4b",
        "diffusion_quant": "Q4_K_S",
        "text_encoder_quant": "Q3_K_M",
        "params": {"prompt": "crafted", "width": 16, "height": 16, **params},
        "seed": 1,
        "images": images,
    }
    if files is not None:
        rec["files"] = files
    return json.dumps(rec)


def _stamp(path: Path) -> dict:
    data = path.read_bytes()
    return {"path": str(path), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


async def _gallery_delete_all(app, pilot) -> list[str]:
    """Delete every record from the Gallery by keys; return the notes shown."""
    from tests.gen_helpers import wait_for

    notes: list[str] = []
    await pilot.press("f4")
    await pilot.pause(0.3)
    while app.screen.records:
        n = len(app.screen.records)
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda n=n: len(app.screen.records) == n - 1, 5)
        notes.append(str(app.screen.query_one("#gallery-status").render()))
    notes += [n.message for n in app._notifications]
    return notes


async def test_gallery_delete_keeps_files_a_crafted_history_names_outside_outputs(
    app_paths, tmp_path
):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from tests.test_snapshots_generate import fake_ready_core

    core = fake_ready_core()
    victim = _png(tmp_path / "home" / "thesis.png", (1, 2, 3))
    victim2 = _png(tmp_path / "home" / "holiday.png", (4, 5, 6))
    note = tmp_path / "home" / "notes.txt"
    note.write_text("mine")
    ours = _png(core.settings.outputs_dir / "20260101-000000-000_1_0.png")
    hist = core.paths.history_file
    hist.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        _crafted_line([str(victim)]),  # a legacy-looking record: no hash, outside
        # the right hash, a recorded -o/out-dir that is not this file
        _crafted_line([str(victim2)], files=[_stamp(victim2)], output_dir=str(victim2.parent)),
        _crafted_line([str(note)], files=[_stamp(note)], output_file=str(note)),
    ]
    hist.write_text("\n".join(lines) + "\n")
    History(hist).add(
        HistoryRecord(
            model_id="flux2-klein-4b",
            diffusion_quant="Q4_K_S",
            text_encoder_quant="Q3_K_M",
            params={"prompt": "ours", "output_dir": str(ours.parent)},
            seed=1,
            images=[str(ours)],
        )
    )
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        notes = await _gallery_delete_all(app, pilot)
        assert app.is_running
    assert victim.read_bytes() and victim2.exists() and note.read_text() == "mine"
    assert not ours.exists()  # the generated image in the outputs folder is deleted
    assert History(hist).records() == []
    text = " ".join(notes)
    assert "thesis.png" in text and "kept" in text, notes


async def test_gallery_delete_keeps_an_o_file_the_user_replaced(tiny_ready_model, tmp_path):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL

    cover, other = tmp_path / "cover.png", tmp_path / "other.png"
    for out in (cover, other):
        p = distill(*GEN, "-o", str(out))
        assert p.returncode == 0, p.stderr
    [rec_other, rec_cover] = History(tiny_ready_model.paths.history_file).records()
    assert [f.path for f in rec_cover.files] == [str(cover)] and rec_cover.files[0].sha256
    _png(cover, (200, 100, 50))  # the user saves their own work as cover.png
    own = cover.read_bytes()
    app = DistillApp(tiny_ready_model, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        notes = await _gallery_delete_all(app, pilot)
    assert cover.read_bytes() == own  # not ours any more: kept
    assert not other.exists()  # the exact -o path recorded, its bytes unchanged: deleted
    text = " ".join(notes)
    assert "cover.png" in text and "changed since" in text, notes


# ---- item 18: records of the wrong shape ------------------------------------------------

BAD_PARAMS = [
    {"width": "abc"},
    {"cfg_scale": [1]},
    {"ref_images": 5},
    {"loras": [{"name": "x", "weight": "heavy"}]},
    {"steps": 1e400},
]


def _bad_history(path: Path, bad: dict, model_id: str = "flux2-klein-4b", quant="Q4_K_S"):
    rec = {
        "id": "badbadbad0",
        "model_id": model_id,
        "diffusion_quant": quant,
        "text_encoder_quant": quant if model_id == TINY_MODEL_ID else "Q3_K_M",
        "params": {"prompt": "bad", "width": 64, "height": 64, **bad},
        "seed": 1,
        "images": [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec).replace("Infinity", "1e400") + "\n")


@pytest.mark.parametrize("bad", BAD_PARAMS, ids=lambda b: next(iter(b)))
async def test_gallery_reuse_of_a_record_of_the_wrong_shape_keeps_the_tui(app_paths, bad):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from tests.test_snapshots_generate import fake_ready_core

    core = fake_ready_core()
    _bad_history(core.paths.history_file, bad)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause(0.3)
        await pilot.press("r")
        await pilot.pause(0.5)
        assert app.is_running and app.return_code is None
        assert app.current_mode == "gallery"
        status = str(app.screen.query_one("#gallery-status").render())
        assert "line 1" in status and next(iter(bad)) in status, status


@pytest.mark.parametrize("bad", BAD_PARAMS[:3], ids=lambda b: next(iter(b)))
def test_cli_reuse_of_a_record_of_the_wrong_shape_is_one_line(tiny_ready_model, bad):
    _bad_history(tiny_ready_model.paths.history_file, bad, TINY_MODEL_ID, "F16")
    for ref in ("last", "badbad"):
        line = one_line_refusal(distill("generate", "--reuse", ref, timeout=60))
        assert "line 1" in line and next(iter(bad)) in line, line


# ---- NIT: private files ----------------------------------------------------------------


def test_detached_download_log_is_private(tmp_path):
    from distill_tui.downloads.handoff import spawn_detached

    pid, log = spawn_detached([sys.executable, "-c", "print('hi')"], tmp_path / "logs", "m")
    os.waitpid(pid, 0)
    assert mode(log) == 0o600 and log.read_text().strip() == "hi"


def test_history_file_is_private(tmp_path):
    h = History(tmp_path / "history.jsonl")
    h.add(
        HistoryRecord(
            model_id="m", diffusion_quant="a", text_encoder_quant="b", params={}, seed=1, images=[]
        )
    )
    assert mode(h.path) == 0o600
