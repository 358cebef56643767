"""How a download is cut into Range requests, and how many connections it may use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distill_tui.downloads.fetch import FetchConfig


def max_connections(cfg: FetchConfig) -> int:
    """The most connections adaptive segmentation may open (``FetchConfig.max_connections``;
    0: 2 x connections, at most 16; never fewer than ``connections``; 1 stays 1)."""
    if cfg.connections <= 1:
        return cfg.connections
    cap = cfg.max_connections or min(16, 2 * cfg.connections)
    return max(cfg.connections, cap)


def plan_pieces(gaps: list[tuple[int, int]], cfg: FetchConfig) -> list[tuple[int, int]]:
    """Cut the missing ranges into pieces that finish in the order of their offsets.

    The hasher follows the contiguous written prefix, so whatever lies written beyond it when
    the last byte lands is hashed after the download, serially; the prefix waits for the
    lowest piece still in flight. So pieces must complete lowest first, and little may be in
    flight at the end:

    - The first round - one piece per connection the fetcher may ever open - is staggered:
      the k-th of n pieces is (k + 1) / n of the usual size (at least min_piece). Connections started together
      (the first ones, and those adaptive scaling opens later) would otherwise stay in lock
      step, each round ending with all of them done at once and the lowest piece of the
      round the last to finish. Staggered, they keep a fraction of a piece apart for good.
    - Then the usual size (the whole file / (4 x connections), within [min_piece, max_piece]:
      few requests, one idle round trip each) ...
    - ... until the bytes still to come no longer fill a round of the most connections; from
      there each piece is what is left / that many connections, down to min_piece. Shrinking
      by 1/n of what is left, each piece still ends after the one before it on staggered
      connections, and the last ones are small.

    Both halves are needed: shrinking alone (the plan before) left ~400 MiB of a 1 GiB file to
    hash after the download (lock step: the largest piece of the last round sat at its lowest
    offset), staggering alone ~250 MiB (the end-game splits of ``Fetcher._next_slot`` made
    the whole last round land at once)."""
    gaps = [(a, b) for a, b in gaps if b > a]
    left = sum(b - a for a, b in gaps)
    usual = max(cfg.min_piece, min(cfg.max_piece, left // max(1, cfg.connections * 4)))
    n = max(1, max_connections(cfg))
    out: list[tuple[int, int]] = []
    for a, b in gaps:
        s = a
        while s < b:
            k = len(out)
            p = max(cfg.min_piece, min(usual, left // n))
            if k < n:  # (a configuration that pins the size, min = max, keeps it)
                p = max(cfg.min_piece, p * (k + 1) // n)
            e = min(b, s + _aligned(p))
            out.append((s, e))
            left -= e - s
            s = e
    return out


def _aligned(p: int) -> int:
    """Piece sizes in whole 64 KiB blocks (a tiny piece stays as it is)."""
    return p - p % (64 * 1024) if p >= 64 * 1024 else max(1, p)
