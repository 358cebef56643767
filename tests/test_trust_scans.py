"""Issue 19, items 16, 20 and 22: what distill reads from the disk is bounded.

* 20 — crafted model files: a GGUF header whose counts claim more than the file holds, a
  safetensors header nested thousands deep. `distill models import` reads their headers (to
  say what an unmatched file looks like): one line, quickly, in bounded memory, no traceback.
* 16 — folder trees 1,100 levels deep in ``import_dirs`` / ``lora_dir``: scans are iterative
  and bounded; a download still works; the TUI's LoRA picker fills from a thread.
* 22 — an HF cache repo with 10,000 snapshot folders: the Model Manager opens at once.

Real processes (the CLI in a subprocess, its time and peak memory measured by wait4) and the
real TUI under Pilot.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# ---- helpers ---------------------------------------------------------------------------------
def run_bounded(args: list[str], timeout: float = 30.0, env: dict | None = None) -> dict:
    """Run ``python -m distill_tui ARGS`` in a process; its rc, output, wall seconds and peak
    RSS (MiB: VmHWM of its own memory map). Killed after ``timeout`` (rc -9)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    with open(_tmpfile("out"), "w+b") as out_f, open(_tmpfile("err"), "w+b") as err_f:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "distill_tui", *args], env=env, stdout=out_f, stderr=err_f
        )
        rc, rss = None, 0
        while True:
            # the peak RSS of the program itself: VmHWM of its own memory map, polled (wait4's
            # ru_maxrss also counts the pytest process's pages at the fork, 1.7 GB late in a
            # full run)
            rss = max(rss, _vm_hwm_kib(proc.pid))
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc
                break
            if time.monotonic() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read().decode(errors="replace"), err_f.read().decode(errors="replace")
    return {"rc": rc, "out": out, "err": err, "seconds": seconds, "rss_mib": rss / 1024}


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


_n = [0]


def _tmpfile(kind: str) -> str:
    _n[0] += 1
    return os.path.join(os.environ["XDG_STATE_HOME"], f"run-{_n[0]}.{kind}")


def crafted_gguf(path: Path) -> Path:
    """113 bytes: GGUF v3, one metadata key, an array of 2**40 uint32 (a header that made the
    gguf library's reader loop over empty slices and allocate until 3 GB)."""
    key = b"tokenizer.ggml.token_type"
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    body += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 4, 1 << 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body.ljust(113, b"\1"))
    assert path.stat().st_size == 113
    return path


def nested_safetensors(path: Path, depth: int = 100_000) -> Path:
    header = b'{"a":' * depth + b"1" + b"}" * depth
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    return path


def assert_one_clear_line(res: dict, name: str, words: str) -> None:
    said = res["out"] + res["err"]
    assert "Traceback" not in said, said
    lines = [ln for ln in said.splitlines() if name in ln]
    assert len(lines) == 1, said
    assert words in lines[0], said


# ---- 20: crafted model files -----------------------------------------------------------------
def test_import_of_a_crafted_gguf_is_one_line_fast_and_small(tmp_path):
    """The 113-byte GGUF claiming 2**60 strings: refused from its header, not walked."""
    folder = tmp_path / "crafted"
    crafted_gguf(folder / "evil.gguf")
    res = run_bounded(["models", "import", str(folder)], env={"HF_HUB_OFFLINE": "1"})
    assert res["rc"] not in (0, None, -9), res
    assert res["seconds"] < 20, res
    assert res["rss_mib"] < 400, res
    assert_one_clear_line(res, "evil.gguf", "not a valid GGUF file")
    assert "claims" in res["out"]


def test_import_of_a_deeply_nested_safetensors_is_one_line(tmp_path):
    folder = tmp_path / "crafted"
    nested_safetensors(folder / "deep.safetensors")
    res = run_bounded(["models", "import", str(folder)], env={"HF_HUB_OFFLINE": "1"})
    assert res["rc"] not in (0, None, -9), res
    assert res["seconds"] < 20, res
    assert_one_clear_line(res, "deep.safetensors", "not a valid safetensors file")
    assert "nested too deeply" in res["out"]


@pytest.mark.parametrize(
    "label, data",
    [
        ("tensor count", b"GGUF" + struct.pack("<IQQ", 3, 1 << 50, 0)),
        ("key count", b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 40)),
        ("key length", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 62)),
        (
            "dims",
            b"GGUF"
            + struct.pack("<IQQ", 3, 1, 0)
            + struct.pack("<Q", 1)
            + b"t"
            + struct.pack("<I", 1 << 31),
        ),
        (
            "u8 array",
            b"GGUF"
            + struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 1)
            + b"k"
            + struct.pack("<IIQ", 9, 0, 1 << 62),
        ),
    ],
)
def test_every_gguf_count_is_bounded_by_the_file(tmp_path, label, data):
    """Each count a GGUF header carries (tensors, keys, lengths, dimensions, array elements)
    is checked against what the file holds before it is used: the header reader answers in
    milliseconds with a reason, and the preflight (before the engine loads) says one line."""
    from distill_tui.engine import preflight as pf

    p = tmp_path / "x.gguf"
    p.write_bytes(data.ljust(64, b"\0"))
    t0 = time.monotonic()
    with pytest.raises(pf.HeaderError):
        pf.read_gguf_header(p)
    with pytest.raises(pf.PreflightError) as ei:
        pf.read_tensors(p, "diffusion")
    assert time.monotonic() - t0 < 1.0, label
    assert ei.value.kind == "bad_file" and "not a valid GGUF file" in ei.value.message
    assert "\n" not in ei.value.message


def test_the_bounded_reader_reads_what_the_gguf_library_writes(tmp_path):
    """The reader agrees with gguf's own on a real file (metadata, a 150k-string tokenizer,
    nested arrays, tensor offsets and sizes) and skips the tokenizer quickly."""
    import gguf
    import numpy as np

    from distill_tui.engine import preflight as pf

    p = tmp_path / "real.gguf"
    w = gguf.GGUFWriter(str(p), "qwen3")
    w.add_name("Real Model")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_token_list([f"tok{i}" for i in range(150_000)])
    w.add_array("x.nested", [[1, 2], [3, 4, 5]])
    w.add_tensor("a.weight", np.zeros((4, 64), dtype=np.float16))
    w.add_tensor("b.weight", np.zeros((2, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    t0 = time.monotonic()
    h = pf.read_gguf_header(p)
    assert time.monotonic() - t0 < 2.0
    assert h.fields["general.name"] == "Real Model"
    assert h.fields["tokenizer.ggml.tokens"] == pf.GgufArray(8, 150_000)
    r = gguf.GGUFReader(str(p))
    theirs = {
        t.name: (tuple(int(x) for x in t.shape), int(t.data_offset), int(t.n_bytes))
        for t in r.tensors
    }
    mine = {t.name: (t.dims, t.offset, t.n_bytes) for t in h.tensors}
    assert mine == theirs


# ---- shared for 16 ---------------------------------------------------------------------------
def _make_deep_tree(root: Path, depth: int = 1100) -> Path:
    """``root/d/d/…/d`` ``depth`` levels deep (made level by level, relative to each parent,
    so no path length limit bites); returns the deepest folder."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return root.joinpath(*(["d"] * depth))


def _remove_tree(top: Path) -> None:
    """Remove a tree iteratively through folder fds (pytest's own rmtree recurses and would
    fail on it with RecursionError when it cleans old temp dirs, in every later session)."""
    try:
        stack = [(os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW), "")]
    except FileNotFoundError:
        return
    while stack:
        fd, _name = stack[-1]
        sub = None
        for e in list(os.scandir(fd)):
            if e.is_dir(follow_symlinks=False):
                sub = e.name
                break
            os.unlink(e.name, dir_fd=fd)
        if sub is not None:
            stack.append((os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), sub))
            continue
        os.close(fd)
        stack.pop()
        if stack:
            os.rmdir(_name, dir_fd=stack[-1][0])
    top.rmdir()


@pytest.fixture
def deep_tree():
    """Makes trees 1,100 levels deep (``deep_tree(root)``) and removes them afterwards."""
    made: list[Path] = []

    def make(root: Path, depth: int = 1100) -> Path:
        bottom = _make_deep_tree(root, depth)
        made.append(root / "d")
        return bottom

    yield make
    for top in made:
        _remove_tree(top)


# ---- 16: deep and huge folders ---------------------------------------------------------------
M4 = "flux2-klein-4b"


def test_download_with_a_deep_import_dir_still_works(
    hub_catalog, fake_hub, tmp_path, capsys, deep_tree
):
    """import_dirs holds a tree 1,100 levels deep: the download still runs (the folder walk
    is iterative and stops at its depth limit), the model is ready."""
    from distill_tui.cli import main

    deep = tmp_path / "deep"
    deep_tree(deep)
    hub_catalog.context().settings.update(import_dirs=[str(deep)])
    assert main(["models", "download", M4]) == 0, capsys.readouterr()
    cap = capsys.readouterr()
    assert "(ready)" in cap.out and "Traceback" not in cap.err + cap.out


def test_import_of_a_deep_tree_links_what_is_shallow_and_says_what_it_skipped(
    hub_catalog, fake_hub, tmp_path, capsys, deep_tree
):
    """`distill models import` of a tree 1,100 levels deep: the VAE at the top is linked, one
    line says what was skipped (folders nested too deep), no traceback."""
    from distill_tui.cli import main
    from distill_tui.scan import MAX_DEPTH

    model = hub_catalog.context().catalog.require(M4)
    vae = model.vae
    deep = tmp_path / "deep"
    deep_tree(deep)
    (deep / "vae.safetensors").write_bytes(hub_catalog.payload(vae.file))
    assert main(["models", "import", str(deep)]) == 0
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    assert f"-> {vae.file}" in cap.out and "1 linked" in cap.out
    skipped = [ln for ln in cap.out.splitlines() if "skipped" in ln]
    assert len(skipped) == 1 and f"deeper than {MAX_DEPTH} levels" in skipped[0], cap.out


async def test_tui_lora_picker_with_a_deep_lora_dir_stays_up(deep_tree):
    """The LoRA folder is a tree 1,100 levels deep with a LoRA at the top: ctrl+n opens the
    advanced section, the picker fills (from a thread) with the LoRA, the app keeps running and
    answers keys."""
    from textual.widgets import Collapsible

    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext
    from distill_tui.display import STILL
    from tests.gen_helpers import wait_for

    core = CoreContext.build()
    lora_dir = core.settings.lora_dir
    deep_tree(lora_dir)
    (lora_dir / "style.safetensors").write_bytes(b"x" * 64)
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        section = screen.query_one("#advanced", Collapsible)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not section.collapsed
        pick = screen.query_one("#lora-pick")
        await wait_for(pilot, lambda: any(v == "style" for _l, v in pick._options), 10)
        assert "partial" in str(pick.prompt)  # the folders too deep were skipped, and said
        await pilot.press("ctrl+n")  # closes it again: the app still answers
        await pilot.pause()
        assert section.collapsed and app.is_running


@pytest.mark.skipif(not os.path.isdir("/usr"), reason="needs a big real folder")
async def test_tui_stays_responsive_while_a_huge_lora_dir_is_scanned():
    """lora_dir is /usr (140,000 entries here; the old synchronous walk froze the UI ~6 s):
    opening the advanced section walks it on a thread, bounded — the event loop never stalls
    long (a 10 ms ticker on the app's own loop), the picker gets its prompt, keys still work."""
    import asyncio

    from textual.widgets import Collapsible

    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext
    from distill_tui.display import STILL
    from tests.gen_helpers import wait_for

    core = CoreContext.build()
    gen = core.settings.settings.generation.model_dump()
    core.settings.update(generation=dict(gen, lora_dir="/usr"))
    assert core.settings.lora_dir == Path("/usr")
    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        section = screen.query_one("#advanced", Collapsible)
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen.query("#lora-pick"), 30)
        pick = screen.query_one("#lora-pick")
        await wait_for(pilot, lambda: "LoRA" in str(pick.prompt), 30)  # filled: built + walked
        section.collapsed = True
        await pilot.pause()
        pick.prompt = "-"
        task = asyncio.create_task(ticker())
        t0 = loop.time()
        section.collapsed = False  # opening it again walks the folder again: measured
        await wait_for(pilot, lambda: "LoRA" in str(pick.prompt), 30)
        took = loop.time() - t0
        done.set()
        await task
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert section.collapsed and app.is_running
    print(f"lora_dir=/usr: filled in {took:.2f} s, longest event-loop stall {max(gaps):.3f} s")
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.2f} s"


# ---- 22: an HF cache repo with 10,000 snapshot folders --------------------------------------
@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """The HF cache of this test (HF_HUB_CACHE for children; huggingface_hub's constant here)."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def many_snapshots(hub_catalog, cache: Path, n: int = 10_000):
    """The diffusion quant cached as the hf client lays it out (refs/main -> a snapshot -> a
    blob), in a repo that also holds ``n`` other snapshot folders. Returns the catalog file."""
    from tests.test_local_reuse import default_set, hf_cache_put, repo_and_path

    f = default_set(hub_catalog)[0]
    repo, path = repo_and_path(f.download_url)
    hf_cache_put(cache, repo, path, hub_catalog.payload(f.file))
    snaps = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
    fd = os.open(snaps, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n):
            os.mkdir(f"{i:040x}", dir_fd=fd)
    finally:
        os.close(fd)
    return f


async def test_model_manager_opens_at_once_with_10000_snapshots(hub_catalog, fake_hub, hf_cache):
    """F3 with a cached repo of 10,000 snapshot folders: the screen is up within 3 s (it took
    ~120 s: every row listed and stat'ed every snapshot, on the event loop), the HF-cache hint
    of the cached quant still comes (from a thread), nothing else is marked."""
    from tests.test_models_screen import make_app, screen

    f = many_snapshots(hub_catalog, hf_cache)
    app = make_app(hub_catalog.context())
    async with app.run_test(size=(100, 30)) as pilot:
        t0 = time.monotonic()
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        opened = time.monotonic() - t0
        loop_t0 = time.monotonic()
        await pilot.pause()
        assert time.monotonic() - loop_t0 < 1.0  # the loop answers right after
        rows = scr.rows_for(f.file)
        assert rows, "the active model's card shows the diffusion quant"
        deadline = time.monotonic() + 30
        while rows[0].found != "the HF cache":
            assert time.monotonic() < deadline, "the HF-cache hint never came"
            await pilot.pause(0.05)
        found = time.monotonic() - t0
        others = [r for c in scr.cards for r in c.rows if r.key != f.file]
        assert all(r.found is None for r in others)
    print(f"F3 with 10,000 snapshots: screen up in {opened:.2f} s, HF-cache hint in {found:.2f} s")
    assert opened < 3.0, f"F3 took {opened:.1f} s to open"
