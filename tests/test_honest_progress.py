"""Honest progress (issue 13.3): speed over a window of seconds, no spike at resume, an ETA that
is steady on a steady link and hidden while unknown, "retrying (HTTP 503, attempt k of N, next
in s)", "stalled", final errors that name the status ("press r" in the TUI, "rerun" in the
CLI), and the bell / OSC 9 when a long download ends off-screen (13.2).

The rate window and the words are tested with an injected clock; everything else against the
loopback fake Hub (tests/fakehub.py) with its rate caps and faults.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from distill_tui.downloads import DownloadEvent, DownloadState
from distill_tui.downloads.errors import for_surface
from distill_tui.downloads.finish import FinishWatch
from distill_tui.downloads.rate import MAX_ETA, RateWindow, Retry, eta_for, fmt_eta
from tests.fakehub import Fault

M4 = "flux2-klein-4b"
DIFF = (M4, "diffusion", "Q4_K_S")
VAE = (M4, "vae", None)
DIFF_SIZE = 3_407_872
RETRYING = re.compile(
    r"^retrying \(HTTP 503, attempt (\d+) of (\d+), (next in \d+ s|trying now)( as asked)?\)$"
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def big(fake_hub, isolated_dirs):
    """The 2-model catalog with payloads of 1.5-3.4 MiB."""
    from distill_tui.paths import AppPaths
    from tests.hub_fixtures import build_hub_catalog

    sizes = {
        "diffusion/flux-2-klein-4b-Q4_K_S.gguf": DIFF_SIZE,
        "text_encoders/Qwen3-4B-Q3_K_M.gguf": 2_097_152 + 12_345,
        "vae/flux2-vae.safetensors": 1_572_864 + 1,
    }
    return build_hub_catalog(fake_hub, AppPaths.from_env().user_catalog_file, sizes=sizes)


def sane(ev: DownloadEvent) -> None:
    """No event ever carries an absurd number."""
    assert ev.eta is None or 0 <= ev.eta <= MAX_ETA, ev
    assert ev.speed >= 0
    if ev.state != DownloadState.DOWNLOADING:
        assert ev.speed == 0.0 and ev.eta is None, ev


# ---- the rate window and the words (injected clock) ------------------------------------------
def test_rate_window_averages_bursts_without_decaying_to_zero_between_them():
    clock = Clock()
    rw = RateWindow(6.0, clock=clock)
    got = 0
    rates = []
    for tick in range(200):  # 20 s of 0.1 s ticks; a 1 MB burst every 2 s
        clock.t += 0.1
        if tick % 20 == 0:
            got += 1_000_000
        rw.add(got)
        if clock.t - 1000.0 >= 7.0:
            rates.append(rw.rate())
    # 0.5 MB/s on average: never 0 between bursts, never the burst itself (10 MB/s)
    assert all(r is not None and 0.4e6 <= r <= 0.65e6 for r in rates), (min(rates), max(rates))


def test_rate_window_is_unknown_first_ignores_connecting_and_reads_zero_after_a_window():
    clock = Clock()
    rw = RateWindow(5.0, min_span=1.0, clock=clock)
    for _ in range(30):  # 3 s connecting: nothing received
        clock.t += 0.1
        rw.add(0)
        assert rw.rate() is None
    assert rw.idle() == pytest.approx(3.0)
    got = 0
    for i in range(20):  # 2 s at 100 kB/s
        clock.t += 0.1
        got += 10_000
        rw.add(got)
        if i < 8:  # less than min_span since the last look before the first byte
            assert rw.rate() is None
    assert rw.rate() == pytest.approx(100_000, rel=0.02)  # the 3 s of connecting do not count
    assert rw.idle() == 0.0
    for _ in range(60):  # 6 s of nothing: the window empties
        clock.t += 0.1
        rw.add(got)
    assert rw.rate() == 0.0 and rw.idle() == pytest.approx(6.0)


def test_eta_is_hidden_while_unknown_and_never_absurd():
    assert eta_for(1_000_000, None) is None
    assert eta_for(1_000_000, 0.0) is None
    assert eta_for(10**15, 1.0) is None  # 31 years: hidden, never "37289488:16:04"
    assert eta_for(1_000_000, 100_000) == pytest.approx(10.0)
    assert eta_for(0, None) == 0.0
    assert fmt_eta(None) is None and fmt_eta(MAX_ETA + 1) is None
    assert fmt_eta(65) == "1:05" and fmt_eta(3725) == "1:02:05"
    from distill_tui.formatting import eta_text as row_eta

    assert row_eta(134_243_158_564) == "--:--"


def test_retry_words():
    r = Retry("HTTP 503", 3, 7, at=104.0, status=503)
    assert r.text(now=100.0) == "retrying (HTTP 503, attempt 3 of 7, next in 4 s)"
    assert r.text(now=103.8) == "retrying (HTTP 503, attempt 3 of 7, trying now)"
    assert r.text(now=100.0, short=True) == "retry 3/7 (HTTP 503), next in 4 s"
    asked = Retry("HTTP 429", 1, 7, at=130.0, status=429, asked=True)
    assert asked.text(now=100.0) == "retrying (HTTP 429, attempt 1 of 7, next in 30 s as asked)"


def test_final_errors_say_press_r_in_the_tui_and_rerun_in_the_cli():
    msg = "x.gguf: the download server answered HTTP 503 (7 times); rerun to resume"
    assert for_surface(msg, "cli") == msg
    assert for_surface(msg, "tui") == (
        "x.gguf: the download server answered HTTP 503 (7 times); press r to resume"
    )
    assert for_surface("free some space and rerun to resume", "tui") == (
        "free some space and press r to resume"
    )
    assert for_surface("accept the license, then rerun", "tui").endswith("then press r")


def test_finish_watch_speaks_once_a_long_batch_ends():
    clock = Clock()
    w = FinishWatch(after=30.0, clock=clock)

    def ev(key: str, state: DownloadState) -> DownloadEvent:
        return DownloadEvent(key, M4, "diffusion", "Q4_K_S", state, 0, 10, 0.0, None)

    assert w.event(ev("a/x.gguf", DownloadState.QUEUED)) is None
    assert w.event(ev("b/y.gguf", DownloadState.QUEUED)) is None
    clock.t += 40
    assert w.event(ev("a/x.gguf", DownloadState.DONE)) is None  # y is still running
    assert w.event(ev("b/y.gguf", DownloadState.DONE)) == "distill: 2 downloads finished"
    # a short one: no bell
    w.event(ev("a/x.gguf", DownloadState.DOWNLOADING))
    clock.t += 5
    assert w.event(ev("a/x.gguf", DownloadState.DONE)) is None
    # stopped by the person: no news
    w.event(ev("a/x.gguf", DownloadState.DOWNLOADING))
    clock.t += 60
    assert w.event(ev("a/x.gguf", DownloadState.CANCELLED)) is None
    w.event(ev("a/x.gguf", DownloadState.DOWNLOADING))
    clock.t += 60
    assert w.event(ev("a/x.gguf", DownloadState.FAILED)) == "distill: download failed (x.gguf)"


def test_row_says_why_nothing_moves_and_hides_an_unknown_eta():
    from distill_tui.widgets.file_status import status_line

    def row(width: int, **kw) -> str:
        base = {"speed": 0.0, "eta": None}
        base.update(kw)
        ev = DownloadEvent(
            "k", M4, "diffusion", "Q4_K_S", DownloadState.DOWNLOADING, 400, 1000, **base
        )
        return status_line("downloading", ev, width=width).plain

    r = Retry("HTTP 503", 3, 7, at=time.monotonic() + 4.2, status=503)
    retrying = row(90, retry=r, activity=r.text())
    assert "retrying (HTTP 503, attempt 3 of 7, next in 4 s) · x cancel" in retrying
    assert "━" in retrying and "ETA" not in retrying and "/s" not in retrying
    assert "retry 3/7 (HTTP 503), next in" in row(50, retry=r, activity=r.text())
    stalled = row(66, stalled=12.3, activity="stalled (no data for 12 s)")
    assert "40% stalled (no data for 12 s) · x cancel" in stalled
    assert "512 KB/s ETA 1:13 · x cancel" in row(66, speed=512_000.0, eta=73.0)
    unknown = row(66)  # no rate yet: no "ETA --:--", no "0 B/s"
    assert "ETA" not in unknown and "B/s" not in unknown and "40%" in unknown


# ---- against the fake Hub ------------------------------------------------------------------
async def test_resume_shows_no_speed_spike_and_a_pause_no_absurd_eta(big, fake_hub):
    """Before: the first tick after a resume counted the partial's bytes as received in 0.1 s
    (14 MB/s on a 0.5 MB/s link, 29x)."""
    cap = 500_000
    fake_hub.total_rate = cap  # the link: all connections together
    mgr = big.manager(connections=4)
    seen: list[tuple[float, DownloadEvent]] = []
    mgr.subscribe(lambda e: seen.append((time.monotonic(), e)))
    try:
        key = mgr.enqueue(*DIFF)
        while (mgr.status(key).bytes_done or 0) < DIFF_SIZE * 0.4:
            await asyncio.sleep(0.05)
        assert mgr.cancel(key)
        stopped = await mgr.wait(key)
        assert stopped.state == DownloadState.CANCELLED and stopped.resumable
        assert stopped.speed == 0.0 and stopped.eta is None  # no "0 B/s ETA 37289488:16:04"
        n0 = len(seen)
        mgr.enqueue(*DIFF)
        final = await asyncio.wait_for(mgr.wait(key), 30)
    finally:
        await mgr.aclose()
    assert final.state == DownloadState.DONE
    for _, e in seen:
        sane(e)
    resumed = [e for _, e in seen[n0:] if e.state == DownloadState.DOWNLOADING]
    assert resumed[0].bytes_done >= DIFF_SIZE * 0.35  # it did resume
    speeds = [e.speed for e in resumed]
    assert max(speeds) <= 1.5 * cap, f"speed spike at resume: {max(speeds) / cap:.1f}x the cap"
    assert max(speeds) >= 0.5 * cap  # and it measured the link


async def test_eta_is_steady_on_a_capped_link(big, fake_hub):
    """Every ETA after the first 2 s is within +-30% of the time the download really took
    from then (before: 0.86-1.39x on this link; the EWMA swung with every burst)."""
    fake_hub.total_rate = 450_000  # ~7.5 s
    mgr = big.manager(connections=4)
    seen: list[tuple[float, DownloadEvent]] = []
    mgr.subscribe(lambda e: seen.append((time.monotonic(), e)))
    try:
        key = mgr.enqueue(*DIFF)
        final = await asyncio.wait_for(mgr.wait(key), 30)
    finally:
        await mgr.aclose()
    assert final.state == DownloadState.DONE
    moving = [(t, e) for t, e in seen if e.state == DownloadState.DOWNLOADING]
    t0, t_end = moving[0][0], moving[-1][0]
    ratios = []
    for t, e in moving:
        sane(e)
        left = t_end - t
        if t - t0 < 0.9:
            assert e.eta is None  # no rate yet: no ETA (not a guess from the first burst)
        if t - t0 >= 2.0 and left >= 1.0:
            assert e.eta is not None
            ratios.append(e.eta / left)
    assert len(ratios) >= 20
    assert min(ratios) >= 0.7 and max(ratios) <= 1.3, (min(ratios), max(ratios))


async def test_persistent_503_says_retrying_and_the_final_error_names_it(big, fake_hub):
    fake_hub.faults.append(Fault("status", status=503, times=None, method="GET"))
    mgr = big.manager(connections=1, retries=2, fetch_overrides={"backoff": 0.6, "max_backoff": 2})
    seen: list[DownloadEvent] = []
    mgr.subscribe(seen.append)
    try:
        res = await asyncio.wait_for(mgr.download_plan([DIFF]), 30)
    finally:
        await mgr.aclose()
    ev = res[0]
    assert ev.state == DownloadState.FAILED and ev.error_kind == "network" and ev.resumable
    words = [e.activity for e in seen if e.activity]
    assert words, "no event said retrying"
    for w in words:
        m = RETRYING.match(w)
        assert m, w
        assert m.group(2) == "3" and 1 <= int(m.group(1)) <= 2
    assert any("next in" in w for w in words)
    assert {e.retry.attempt for e in seen if e.retry} == {1, 2}
    assert all(e.eta is None for e in seen if e.retry)
    assert ev.retry is None and ev.activity is None  # a final event is no longer retrying
    # the final words name the status; the CLI says rerun, the TUI press r
    assert "HTTP 503" in ev.error and "rerun" in ev.error
    from distill_tui.widgets.file_status import error_text

    f = big.context().catalog.require(M4).diffusion.get("Q4_K_S")
    tui = error_text(ev, f)
    assert "HTTP 503" in tui and "press r" in tui and "rerun" not in tui


async def test_hub_503_during_the_check_says_retrying(big, fake_hub):
    fake_hub.faults.append(Fault("status", server="hub", status=503, times=2))
    mgr = big.manager(backoff=0.6)
    seen: list[DownloadEvent] = []
    mgr.subscribe(seen.append)
    try:
        res = await asyncio.wait_for(mgr.download_plan([VAE]), 30)
    finally:
        await mgr.aclose()
    assert res[0].state == DownloadState.DONE
    words = [e.activity for e in seen if e.activity]
    assert any(RETRYING.match(w) and "attempt 1 of 5" in w for w in words), words
    assert any(RETRYING.match(w) and "attempt 2 of 5" in w for w in words), words


async def test_a_stall_says_stalled(big, fake_hub):
    # one connection, the server goes silent for 2.5 s after 200 kB (the watchdog is slower)
    fake_hub.faults.append(Fault("stall", after=200_000, seconds=2.5, times=1, method="GET"))
    fake_hub.total_rate = 1_000_000
    mgr = big.manager(connections=1, stall_timeout=10.0, stalled_after=0.8)
    seen: list[DownloadEvent] = []
    mgr.subscribe(seen.append)
    try:
        res = await asyncio.wait_for(mgr.download_plan([VAE]), 30)
    finally:
        await mgr.aclose()
    assert res[0].state == DownloadState.DONE
    stalled = [e for e in seen if e.stalled is not None]
    assert stalled, "no event said stalled"
    for e in stalled:
        assert re.fullmatch(r"stalled \(no data for \d+ s\)", e.activity or ""), e.activity
        assert e.speed == 0.0 and e.eta is None
    assert max(e.stalled for e in stalled) >= 1.5
    # and it moved again after the stall
    last = seen.index(stalled[-1])
    assert any(e.state == DownloadState.DOWNLOADING and e.speed > 0 for e in seen[last:])


def test_cli_plain_output_says_retrying_and_keeps_rerun(hub_catalog, fake_hub, capsys):
    from distill_tui.cli import main

    fake_hub.faults.append(Fault("status", status=503, times=2, method="GET"))
    assert main(["models", "download", M4, "--connections", "1"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "retrying (HTTP 503, attempt" in ln]
    assert lines, err
    assert "attempt 1 of 7" in lines[0]
    assert len(lines) <= 2  # once per attempt, not with every tick of "next in"


def test_cli_final_error_keeps_rerun_and_names_the_status(hub_catalog, fake_hub, capsys):
    from distill_tui.cli import main

    fake_hub.faults.append(Fault("status", server="hub", status=503, times=None))
    rc = main(["models", "download", M4, "--connections", "1"])
    out = capsys.readouterr().err  # failure reasons: stderr (issue 23.5)
    assert rc == 1
    assert "HTTP 503" in out and "rerun" in out and "press r" not in out


# ---- the TUI -------------------------------------------------------------------------------
async def test_model_manager_row_says_retrying_then_press_r(fake_hub, tmp_path: Path):
    from tests.test_models_screen import focus_row, make_app, make_core, screen

    core = make_core(fake_hub, size=96 * 1024)
    fake_hub.faults.append(Fault("status", status=503, times=None, method="GET"))
    app = make_app(core, connections=1, retries=2, backoff=0.6)
    failures: list[tuple[str, str]] = []
    app.report_failure = lambda title, msg: failures.append((title, msg))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "flux2-vae.safetensors")
        row = screen(app).focused_row()
        await pilot.press("d")
        shown: list[str] = []
        dm = app.downloads
        for _ in range(200):
            await asyncio.sleep(0.05)
            await pilot.pause()
            text = " ".join(str(row.render()).split())
            if "retrying (HTTP 503, attempt" in text:
                shown.append(text)
            ev = dm.status(row.key)
            if ev is not None and ev.finished:
                break
        assert shown, "the row never said retrying"
        assert re.search(
            r"retrying \(HTTP 503, attempt [12] of 3, (next in \d+ s|trying now)", shown[0]
        )
        assert "x cancel" in shown[0]
        await dm.wait(row.key)
        for _ in range(3):
            await pilot.pause()
        assert row.state == "failed"
        flat = " ".join(str(row.render()).split())
        assert "HTTP 503" in flat and "press r" in flat and "rerun" not in flat
        assert failures and "press r" in failures[-1][1] and "rerun" not in failures[-1][1]


async def test_long_download_rings_when_the_person_is_elsewhere(fake_hub):
    from tests.test_models_screen import make_app, make_core

    core = make_core(fake_hub, size=96 * 1024)
    app = make_app(core)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        dm = app.downloads
        app.download_watch.after = 0.0  # every batch counts as long here
        # on the Generate screen (not the Model Manager): a finished download rings
        key = dm.enqueue(*VAE)
        await dm.wait(key)
        for _ in range(3):
            await pilot.pause()
        assert bells == [1]
        assert any("download finished" in n.message for n in app._notifications)
        # watching the Model Manager with the terminal focused: no bell
        await pilot.press("f3")
        await pilot.pause()
        key = dm.enqueue(M4, "diffusion", "Q4_K_S")
        await dm.wait(key)
        for _ in range(3):
            await pilot.pause()
        assert bells == [1]
        # the same screen, but the terminal lost focus (another window): it rings
        app.app_focus = False
        key = dm.enqueue(M4, "textEncoder", "Q3_K_M")
        await dm.wait(key)
        for _ in range(3):
            await pilot.pause()
        assert bells == [1, 1]


def test_a_cancelled_row_offers_resume_only_when_a_partial_was_kept():
    """Cancelled while still queued, nothing was kept: d downloads it, there is nothing to
    resume (seen in the walkthrough: "cancelled · d resume" on a file never started)."""
    from distill_tui.widgets.file_status import status_line

    def row(done: int) -> str:
        ev = DownloadEvent(
            "k", M4, "diffusion", "Q4_K_S", DownloadState.CANCELLED, done, 1000, 0.0, None
        )
        return status_line("cancelled", ev, width=80).plain

    assert row(0) == "cancelled · d download"
    assert row(400) == "cancelled at 40%, partial kept · d resume"
