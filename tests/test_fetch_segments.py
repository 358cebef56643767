"""The segmented fetcher itself against the real loopback fake Hub: the stall watchdog, tail
splitting and adaptive connections. No mocks: real sockets, real Range requests.

Timing: every test is bounded by ``asyncio.wait_for`` (a regression fails instead of hanging)
and its assertions are on what the Hub saw (requests, ranges, cut connections), not on speed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from distill_tui.downloads.fetch import FetchConfig, Fetcher, Progress
from distill_tui.downloads.hub import head, new_client
from tests.fakehub import FakeHub, Fault
from tests.hub_fixtures import payload_bytes

REPO = "test/Fetch-GGUF"
MiB = 1 << 20


async def fetch(
    hub: FakeHub,
    dest: Path,
    data: bytes,
    *,
    read_timeout: float = 10.0,
    bound: float = 20.0,
    **cfg: object,
) -> tuple[Fetcher, float]:
    """Download ``data`` (served by ``hub``) with a Fetcher; (the fetcher, seconds)."""
    name = dest.name
    hub.add_file(REPO, name, data)
    kw: dict = {"backoff": 0.05, "max_backoff": 0.2, "flush_interval": 0.2}
    kw.update(cfg)
    config = FetchConfig(**kw)
    client = new_client(read_timeout, config.connections)
    try:
        url = hub.resolve_url(REPO, name)
        meta = await head(client, url, None, backoff=0.05)
        sha = hashlib.sha256(data).hexdigest()
        f = Fetcher(
            client,
            dest,
            meta,
            expected_sha=sha,
            token=None,
            cfg=config,
            refresh=lambda: head(client, url, None, backoff=0.05),
            progress=Progress(meta.size),
            label=name,
        )
        t0 = time.monotonic()
        assert await asyncio.wait_for(f.run(), bound) == sha
        secs = time.monotonic() - t0
    finally:
        await client.aclose()
    assert dest.read_bytes() == data
    return f, secs


def cdn_gets(hub: FakeHub) -> list:
    return [r for r in hub.requests if r.server == "cdn" and r.method == "GET"]


def starts(hub: FakeHub) -> list[int]:
    return [int(r.range.split("=")[1].split("-")[0]) for r in cdn_gets(hub) if r.range]


# ---- stall watchdog -----------------------------------------------------------------------
async def test_watchdog_cuts_a_trickling_connection(fake_hub, tmp_path):
    """One byte every 0.1 s never trips a read timeout (10 s here): only the watchdog (below
    1 KiB/s for 1 s) cuts it, and the piece resumes on a fresh connection at the byte reached."""
    data = payload_bytes("trickle", 2 * MiB + 123)
    fake_hub.faults.append(
        Fault("trickle", method="GET", after=100_000, interval=0.1, seconds=60, times=1)
    )
    f, secs = await fetch(
        fake_hub,
        tmp_path / "m" / "trickle.gguf",
        data,
        connections=2,
        max_connections=2,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        stall_timeout=1.0,
    )
    assert f.stalls == 1
    cut = [r for r in cdn_gets(fake_hub) if r.fault == "trickle"]
    assert len(cut) == 1 and 100_000 < cut[0].body_bytes < 100_000 + 60
    # the retry asked for the rest of that piece from exactly where the trickle got to
    a = int(cut[0].range.split("=")[1].split("-")[0])
    assert a + cut[0].body_bytes in starts(fake_hub)
    assert fake_hub.bytes_served() == len(data)  # nothing fetched twice
    assert secs < 15


async def test_watchdog_cuts_a_silent_connection_before_the_read_timeout(fake_hub, tmp_path):
    data = payload_bytes("silent", MiB)
    fake_hub.faults.append(Fault("stall", method="GET", after=0, seconds=60, times=1))
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "silent.gguf",
        data,
        read_timeout=60.0,  # httpx would wait a minute
        bound=15.0,
        connections=2,
        max_connections=2,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        stall_timeout=1.0,
    )
    assert f.stalls == 1
    assert fake_hub.bytes_served() == len(data)


async def test_watchdog_leaves_slow_but_steady_connections_alone(fake_hub, tmp_path):
    fake_hub.rate = 400_000  # per connection: far above the 1 KiB/s floor
    data = payload_bytes("steady", MiB)
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "steady.gguf",
        data,
        connections=2,
        max_connections=2,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        stall_timeout=0.5,
    )
    assert f.stalls == 0
    assert all(r.fault is None for r in cdn_gets(fake_hub))
    assert fake_hub.bytes_served() == len(data)


# ---- tail splitting -----------------------------------------------------------------------
async def test_idle_worker_splits_the_piece_with_most_bytes_left(fake_hub, tmp_path):
    """Pieces [0,2) [2,4) [4,5) MiB on 3 connections; the connections of the last two stall
    at their first byte. The worker that finishes [0,2) must take the upper half of [2,4)
    (2 MiB left beats 1 MiB left) instead of going idle, then keep splitting."""
    data = payload_bytes("tail", 5 * MiB)
    for start in (2 * MiB, 4 * MiB):
        fake_hub.faults.append(
            Fault("stall", method="GET", range=f"bytes={start}-", after=0, seconds=2.0)
        )
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "tail.gguf",
        data,
        connections=3,
        max_connections=3,
        min_piece=2 * MiB,
        max_piece=2 * MiB,
        steal_min=256 * 1024,
        stall_timeout=30.0,
    )
    s = starts(fake_hub)
    assert set(s[:3]) == {0, 2 * MiB, 4 * MiB}
    assert s[3] == 3 * MiB, s  # the first split: the middle of the piece with most bytes left
    assert len(s) > 5  # and it kept splitting what was left
    # the stalled connections resumed only what was not split off: nothing fetched twice
    assert fake_hub.bytes_served() == len(data)
    assert f.stalls == 0


async def test_no_split_below_steal_min(fake_hub, tmp_path):
    """A piece with less than ``steal_min`` left is not split: the idle worker retires."""
    data = payload_bytes("nosplit", 3 * MiB)
    fake_hub.faults.append(
        Fault("stall", method="GET", range=f"bytes={2 * MiB}-", after=0, seconds=1.0)
    )
    await fetch(
        fake_hub,
        tmp_path / "m" / "nosplit.gguf",
        data,
        connections=2,
        max_connections=2,
        min_piece=2 * MiB,
        max_piece=2 * MiB,
        steal_min=4 * MiB,
        stall_timeout=30.0,
    )
    assert sorted(set(starts(fake_hub))) == [0, 2 * MiB]


# ---- adaptive connections -----------------------------------------------------------------
async def test_capped_connections_open_more_workers(fake_hub, tmp_path):
    """Each connection is capped (a CDN): doubling the connections doubles the rate, so the
    fetcher goes from 2 to max_connections=4 and keeps them."""
    fake_hub.rate = 2_000_000
    data = payload_bytes("capped", 8 * MiB)
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "capped.gguf",
        data,
        connections=2,
        max_connections=4,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        probe_window=0.3,
    )
    assert f.peak_workers == 4
    assert f.retired == 0
    assert fake_hub.bytes_served() == len(data)


async def test_link_limited_extra_workers_retire(fake_hub, tmp_path):
    """The link (all connections together) is the limit: more connections bring nothing, so
    the extra ones retire after their current piece."""
    fake_hub.total_rate = 4_000_000
    data = payload_bytes("link", 12 * MiB)
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "link.gguf",
        data,
        connections=2,
        max_connections=4,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        probe_window=0.5,  # +-1 chunk of 64 KiB at 4 MB/s is ~3% of a window
    )
    assert f.peak_workers == 4
    assert f.retired == 2
    assert fake_hub.bytes_served() == len(data)


async def test_single_connection_stays_single(fake_hub, tmp_path):
    fake_hub.rate = 2_000_000
    data = payload_bytes("single", 2 * MiB)
    f, _ = await fetch(
        fake_hub,
        tmp_path / "m" / "single.gguf",
        data,
        connections=1,
        min_piece=256 * 1024,
        max_piece=256 * 1024,
        probe_window=0.1,
    )
    assert f.peak_workers == 1


async def test_retired_connections_are_tried_again_when_the_link_changes(fake_hub, tmp_path):
    """First the link is the limit (the extra connections retire); then the server caps each
    connection instead: the next probe (``reprobe``) opens them again and keeps them."""
    fake_hub.total_rate = 4_000_000
    data = payload_bytes("reprobe", 16 * MiB)

    async def flip() -> None:
        while f_box.get("f") is None or f_box["f"].retired < 2:
            await asyncio.sleep(0.02)
        fake_hub.total_rate = None
        fake_hub.rate = 2_000_000  # per connection now: more connections, more bytes

    f_box: dict = {}
    orig_init = Fetcher.__init__

    def spy_init(self, *a, **kw):  # the test needs the fetcher while it runs
        orig_init(self, *a, **kw)
        f_box["f"] = self

    Fetcher.__init__ = spy_init  # type: ignore[method-assign]
    try:
        flipper = asyncio.create_task(flip())
        f, _ = await fetch(
            fake_hub,
            tmp_path / "m" / "reprobe.gguf",
            data,
            bound=30.0,
            connections=2,
            max_connections=4,
            min_piece=256 * 1024,
            max_piece=256 * 1024,
            probe_window=0.5,
            reprobe=0.3,
        )
    finally:
        Fetcher.__init__ = orig_init  # type: ignore[method-assign]
    assert flipper.done()
    assert f.retired == 2  # the first probe: no gain on a shared link
    assert f.scale_ups == 2  # the second probe opened them again...
    assert f.workers == 0 and f.retired == 2  # ...and kept them (no second retirement)
    assert fake_hub.bytes_served() == len(data)


def _left_to_hash(
    plan, size, first: int, later: int, rate=25e6, hash_rate=800e6, later_at=0.075, dt=0.002
):
    """Simulate equal-rate connections (``first`` at 0 s, ``later`` more at ``later_at``, as
    adaptive scaling opens them) taking pieces lowest first and, when none is pending,
    splitting the in-flight piece with the most bytes left (``Fetcher._next_slot``'s rule),
    and a hasher (``hash_rate``: sha256 on this box) following the contiguous written prefix.
    Returns the bytes the hasher still has to read when the last byte lands."""
    pending = list(plan)[::-1]
    ranges: list[list[int]] = []  # [start, reached, end] of every piece and split
    inflight: list[list[int]] = []

    def take() -> None:
        if pending:
            a, b = pending.pop()
            piece = [a, a, b]
        else:
            if not inflight:
                return
            big = max(inflight, key=lambda r: r[2] - r[1])
            if big[2] - big[1] < 2 * MiB:
                return
            mid = big[1] + (big[2] - big[1]) // 2
            piece, big[2] = [mid, mid, big[2]], mid
        ranges.append(piece)
        inflight.append(piece)

    for _ in range(first):
        take()
    t, opened, hashed = 0.0, False, 0.0
    while inflight or not opened:
        if not opened and t >= later_at:
            opened = True
            for _ in range(later):
                take()
        for piece in list(inflight):
            piece[1] = min(piece[2], piece[1] + int(rate * dt))
            if piece[1] == piece[2]:
                inflight.remove(piece)
                take()
        t += dt
        prefix = 0
        for a, reached, _ in sorted(ranges):
            if a > prefix:
                break
            prefix = max(prefix, reached)
        if inflight:
            hashed = min(prefix, hashed + hash_rate * dt)
    return size - hashed


def test_pieces_finish_in_order_so_little_is_left_to_hash():
    """The hasher follows the contiguous prefix: what is written beyond it when the last byte
    lands is hashed after the download. With equal per-connection caps (a CDN), the plan keeps
    that small: the first round is staggered, the last pieces shrink."""
    from distill_tui.downloads.fetch import FetchConfig
    from distill_tui.downloads.pieces import plan_pieces

    cfg = FetchConfig()  # 8 connections (16 with adaptive scaling), pieces 1-32 MiB
    size = 1 << 30
    ps = plan_pieces([(0, size)], cfg)
    assert all(ps[i][1] == ps[i + 1][0] for i in range(len(ps) - 1)) and ps[-1][1] == size
    sizes = [b - a for a, b in ps]
    assert sizes[:16] == sorted(sizes[:16]) and sizes[0] == 2 * MiB and sizes[15] == 32 * MiB
    assert max(sizes) == 32 * MiB and sum(sizes[-16:]) <= 16 * MiB
    # 8 connections, 8 more opened 75 ms later: ~50 MiB left, not the ~460 MiB of a plan
    # that only shrank toward the end (nor the ~250 MiB of one that only staggered)
    assert _left_to_hash(ps, size, 8, 8) < 80 * MiB
    assert _left_to_hash(ps, size, 16, 0) < 80 * MiB
    assert (
        _left_to_hash(plan_pieces([(0, size)], FetchConfig(connections=4)), size, 4, 4) < 80 * MiB
    )
    # a resumed file: only the gaps, each cut the same way, nothing outside them
    gaps = [(0, 3 * MiB), (100 * MiB, 164 * MiB)]
    ps = plan_pieces(gaps, cfg)
    assert sum(b - a for a, b in ps) == 67 * MiB
    assert all(any(ga <= a and b <= gb for ga, gb in gaps) for a, b in ps)
