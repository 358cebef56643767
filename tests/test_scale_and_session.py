"""A catalog too large to be a catalog, partials the hints must resume exactly, and a Model
Directory that must not move under another process's download (issues 19.11, 21.4, 22.3, 22.4).

Through the surfaces a person meets: ``distill`` processes, the TUI driven by keys, the loopback
fake Hub, and real second processes holding the download lock.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.catalog_raw import bundled_v3
from tests.hub_fixtures import build_hub_catalog

ROOT = Path(__file__).resolve().parent.parent
M4 = "flux2-klein-4b"
BUNDLED_IDS = [m["id"] for m in bundled_v3()["models"]]  # a refused catalog: the bundled one
TE_Q3 = "text_encoders/Qwen3-4B-Q3_K_M.gguf"
SIZE = 4 << 20
#: the documented limit (README, distill_tui.catalog.MAX_MODELS)
MAX_MODELS = 1000


def env() -> dict:
    """The test's environment (the isolated XDG dirs are set by a fixture, after import)."""
    return dict(os.environ, PYTHONPATH=str(ROOT))


def distill(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill_tui", *args],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def user_catalog() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().user_catalog_file


# ---- 19.11: a catalog of 10,000 models -----------------------------------------------------
def many_models(n: int) -> dict:
    """The bundled catalog's first model copied under ``n`` ids and file names of their own."""
    bundled = json.loads((ROOT / "catalog" / "model-catalog.json").read_text())
    template = bundled["models"][0]
    models = []
    for i in range(n):
        m = copy.deepcopy(template)
        m["id"], m["name"] = f"user-{i:05d}", f"User model {i}"
        for c in m["components"]:  # (catalog v3: quants or one file per component)
            for f in c.get("quants") or [c["file"]]:
                f["file"] = f"user/{i:05d}/{f['file']}"
                f.pop("sha256", None)
                f.pop("mirrors", None)
        models.append(m)
    return {"catalogVersion": bundled["catalogVersion"], "models": models}


def test_a_catalog_over_the_limit_is_refused_with_one_line(isolated_dirs):
    path = user_catalog()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(many_models(MAX_MODELS + 1)))
    out = distill("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    warning = [line for line in out.stderr.splitlines() if "models" in line]
    assert len(warning) == 1, out.stderr
    assert f"has {MAX_MODELS + 1} models; distill accepts at most {MAX_MODELS}" in warning[0]
    assert str(path) in warning[0] and "moved aside" in warning[0]
    # the bundled catalog is used; the user's file is kept beside, not deleted
    assert [m["id"] for m in json.loads(out.stdout)["models"]] == BUNDLED_IDS
    kept = list(path.parent.glob("model-catalog.json.corrupt-*"))
    assert len(kept) == 1 and len(json.loads(kept[0].read_text())["models"]) == MAX_MODELS + 1


def test_a_catalog_at_the_limit_is_used(isolated_dirs):
    path = user_catalog()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(many_models(MAX_MODELS)))
    out = distill("models", "list")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.count("Setup Required") == MAX_MODELS


def test_a_catalog_file_over_32_mb_is_refused_before_it_is_read(isolated_dirs):
    path = user_catalog()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:  # two models and 32 MB of spaces: valid JSON, absurd size
        fh.write(json.dumps(many_models(2)))
        fh.write(" " * 32_000_001)
    out = distill("models", "list", "--json")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "distill reads catalogs of at most 32 MB" in out.stderr
    assert [m["id"] for m in json.loads(out.stdout)["models"]] == BUNDLED_IDS


def test_readme_documents_the_limit():
    from distill_tui import catalog

    assert catalog.MAX_MODELS == MAX_MODELS
    readme = (ROOT / "README.md").read_text()
    assert f"{MAX_MODELS:,} models" in readme or f"{MAX_MODELS} models" in readme


# ---- 22.4: the resume hint of a partial that is not the selected quant ----------------------
@pytest.fixture
def hc(fake_hub, isolated_dirs):
    return build_hub_catalog(fake_hub, user_catalog(), sizes={TE_Q3: SIZE})


def interrupted_q3_partial(fake_hub) -> int:
    """`distill models download flux2-klein-4b --text-encoder Q3_K_M --only text-encoder`,
    stopped (SIGTERM) a third of the way: a resumable partial of a quant nobody selected."""
    from distill_tui.downloads.sidecar import Sidecar, sidecar_path

    fake_hub.rate = 300_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill_tui", "models", "download", M4]
        + ["--text-encoder", "Q3_K_M", "--only", "text-encoder", "--connections", "2"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    side = sidecar_path(models_dir() / TE_Q3)
    deadline = time.monotonic() + 30
    done = 0
    while time.monotonic() < deadline:
        sc = Sidecar.load(side)
        if sc is not None and sc.done.covered() >= SIZE // 3:
            done = sc.done.covered()
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert done, "the download never made progress"
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=20)
    fake_hub.rate = None
    assert not (models_dir() / TE_Q3).exists()
    return done


def gguf_files() -> list[str]:
    d = models_dir()
    return sorted(
        p.relative_to(d).as_posix() for p in d.rglob("*") if p.suffix in (".gguf", ".safetensors")
    )


def test_status_hint_resumes_exactly_the_partial(hc, fake_hub):
    interrupted_q3_partial(fake_hub)
    from distill_tui.context import CoreContext

    sel = CoreContext.build().settings.selection(M4)
    assert sel.text_encoder_quant != "Q3_K_M"  # not the selected quant
    st = distill("models", "status")
    assert st.returncode == 0, st.stderr
    line = next(x for x in st.stdout.splitlines() if TE_Q3 in x)
    m = re.search(r"\(resume: (\S*distill) (models download [^)]*)\)", line)
    assert m, line
    command, hint = m.group(1), m.group(2)
    assert hint == f"models download {M4} --text-encoder Q3_K_M --only text-encoder"
    # following the hint, as typed (the distill a new shell runs), resumes that partial and
    # downloads nothing else
    out = subprocess.run(
        [*shlex.split(command), *shlex.split(hint)],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert gguf_files() == [TE_Q3]
    assert (models_dir() / TE_Q3).read_bytes() == hc.payload(TE_Q3)
    assert json.loads(distill("models", "status", "--json").stdout)["downloads"] == []
    # a resume, not a second download from byte 0
    got = sum(r.body_bytes for r in fake_hub.cdn_requests("Q3_K_M.gguf"))
    assert got < 2 * SIZE


async def test_tui_partial_row_d_resumes_that_partial(hc, fake_hub):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.screens.models import ModelManagerScreen

    interrupted_q3_partial(fake_hub)
    app = DistillApp(hc.context(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        scr = app.screen
        assert isinstance(scr, ModelManagerScreen)
        row = None
        for _ in range(40):
            found = scr.focused_row()
            if found is not None and found.key == TE_Q3:
                row = found
                break
            await pilot.press("down")
        assert row is not None
        for _ in range(100):  # the partial is found by a look at the disk (once a second)
            if row.state == "paused":
                break
            await pilot.pause(0.05)
        text = " ".join(line.plain for line in row._lines(120))
        assert "partial" in text and "d resume" in text, text
        # the card header says so too (a collapsed card shows no rows)
        card = scr.focused_card()
        assert card is not None
        header = card.title_widget.render()
        assert "1 partial (d on its row resumes)" in str(header), header
        await pilot.press("d")
        await app.downloads.wait(TE_Q3)
        for _ in range(5):
            await pilot.pause()
        assert row.state == "done"
    assert gguf_files() == [TE_Q3]
    assert (models_dir() / TE_Q3).read_bytes() == hc.payload(TE_Q3)


# ---- 22.3: the Model Directory never moves under another process's download ---------------
def detached_q3_download(fake_hub) -> int:
    """`distill models download … --detach` against a slow loopback Hub; returns its pid once
    it holds the file's lock."""
    fake_hub.rate = 100_000  # ~40 s for the 4 MiB file: still running while the test acts
    out = distill(
        "models", "download", M4, "--text-encoder", "Q3_K_M", "--only", "text-encoder",
        "--detach", timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = json.loads(distill("models", "status", "--json").stdout)
        if any(d["pid"] == pid for d in st["downloads"]):
            return pid
        time.sleep(0.1)
    raise AssertionError("the detached download never took its lock")


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True)
        if ps.stdout.strip().startswith(b"Z"):
            return
        time.sleep(0.05)


async def test_model_dir_change_refused_while_a_detached_download_runs(hc, fake_hub, tmp_path):
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from tests.test_settings_screen import enter_dir, open_settings, status

    pid = detached_q3_download(fake_hub)
    try:
        core = hc.context()
        before = core.settings.settings.model_base_path
        old = core.inventory.models_dir
        app = DistillApp(core, display_settings=STILL)
        async with app.run_test(size=(120, 40)) as pilot:
            await open_settings(pilot)
            await enter_dir(pilot, "#models-dir", str(tmp_path / "new"))
            for _ in range(50):
                if f"pid {pid}" in status(app, "#models-dir-status"):
                    break
                await pilot.pause(0.05)
            text = status(app, "#models-dir-status")
            assert f"pid {pid}" in text and TE_Q3 in text, text
            assert core.settings.settings.model_base_path == before
            assert core.inventory.models_dir == old
            assert not (tmp_path / "new").exists()
    finally:
        stop(pid)


def start_lock_holder(target: Path) -> subprocess.Popen:
    """A second process that takes the real download lock of ``target`` (as a download does)
    and holds it until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from distill_tui.downloads.lock import "
            "DestLock; from distill_tui.downloads.sidecar import lock_path; "
            f"lock = DestLock(lock_path(Path({str(target)!r}))); "
            "assert lock.try_acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        cwd=ROOT,
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


async def test_move_them_refused_when_another_process_takes_a_lock_meanwhile(hc, tmp_path):
    """The dialog is open (a downloaded file to move) when another distill process starts a
    download there: "Move them" is refused, naming it; nothing moves."""
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.screens.models_dir_modal import ModelsDirModal
    from tests.test_settings_screen import enter_dir, open_settings, put_vae, status

    core = hc.context()
    vae_path = put_vae(core)
    before = core.settings.settings.model_base_path
    target = core.inventory.abs_path(TE_Q3)
    holder = None
    try:
        app = DistillApp(core, display_settings=STILL)
        async with app.run_test(size=(120, 40)) as pilot:
            await open_settings(pilot)
            await enter_dir(pilot, "#models-dir", str(tmp_path / "moved"))
            assert isinstance(app.screen, ModelsDirModal)
            holder = start_lock_holder(target)
            await pilot.press("m")
            for _ in range(50):
                if f"pid {holder.pid}" in status(app, "#models-dir-status"):
                    break
                await pilot.pause(0.05)
            assert f"pid {holder.pid}" in status(app, "#models-dir-status")
            assert vae_path.is_file()
            assert not [p for p in (tmp_path / "moved").rglob("*") if p.is_file()]
            assert core.settings.settings.model_base_path == before
    finally:
        if holder is not None:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=10)


# ---- 21.4: the Model Manager with a large catalog -----------------------------------------
async def test_a_large_catalog_mounts_cards_in_order_and_builds_rows_on_demand(isolated_dirs):
    """More models than a screen shows: the cards near the viewport are mounted, in catalog
    order (tests/test_models_window.py: the window); only an opened card has rows, and they
    show the facts from their first frame (a downloaded VAE reads done). Opening a card not
    mounted yet works."""
    from distill_tui.app import DistillApp
    from distill_tui.context import CoreContext
    from distill_tui.display import STILL
    from distill_tui.screens.models import ModelManagerScreen
    from distill_tui.widgets.model_card import ModelCard

    n = 40
    path = user_catalog()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(many_models(n)))
    core = CoreContext.build()
    last = core.catalog.models[-1]
    vae = core.inventory.abs_path(last.vae.file)
    vae.parent.mkdir(parents=True, exist_ok=True)
    with open(vae, "wb") as fh:
        fh.truncate(last.vae.size)
    core.inventory.record(last.vae.file, last.vae.size, None)
    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        scr = app.screen
        assert isinstance(scr, ModelManagerScreen)
        assert n > scr.FIRST_CARDS
        scr.show_model(last.id)  # the last card, maybe not mounted yet
        for _ in range(100):
            shown = scr.focused_card()
            if shown is not None and shown.model.id == last.id:
                break
            await pilot.pause(0.05)
        card = scr.focused_card()
        assert card is not None and card.model.id == last.id and not card.collapsed
        assert card.built and card.vae_row is not None and card.vae_row.state == "done"
        ids = [m.id for m in core.catalog.models]
        shown = [c.model.id for c in scr.query(ModelCard)]
        assert shown == ids[ids.index(shown[0]) :][: len(shown)] and shown[-1] == last.id
        assert sum(c.built for c in scr.cards) == 2  # the first (expanded) card and the last
        # space on a collapsed header builds that card's rows
        await pilot.press("up")
        other = scr.focused_card()
        assert other is not None and other.collapsed and not other.built
        await pilot.press("space")
        await pilot.pause()
        assert other.built and not other.collapsed
        assert len(other.rows) == 11 and all(r.state == "missing" for r in other.rows)
