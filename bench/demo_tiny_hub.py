"""The new-user walkthrough, offline: a loopback Hub that serves the tiny synthetic Klein set
under the REAL catalog's repo paths for FLUX.2 Klein 4B Q4_K_S, Q3_K_M and the VAE.

    .venv/bin/python -m bench.demo_tiny_hub /tmp/distill-walk [--rate-mb 2] [--vae-404]
                                                             [--open-mirror]

Writes a user catalog into <home>/config/distill/ (the bundled one, with those three files'
sizes and sha256 set to the tiny files and every URL on the loopback Hub) and prints the
``export`` lines to paste before ``distill``; serves until Ctrl-C. The VAE comes from the
ungated Comfy-Org/flux2-dev path like on the real Hub; its mirror, BFL's FLUX.2-dev, is gated
(401 GatedRepo without ``HF_TOKEN``; the printed token opens it). ``--vae-404`` makes the first
source answer 404, so the VAE can only come from the mirror. The work is done by
:mod:`tests.tiny_hub` (shared with the plain-install smoke, ``tests/smoke/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from tests import tiny_hub

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("--hub-port", type=int, default=28080)
    ap.add_argument("--cdn-port", type=int, default=28081)
    ap.add_argument("--rate-mb", type=float, default=None, help="MB/s per connection")
    ap.add_argument("--vae-404", action="store_true", help="the VAE's first source answers 404")
    ap.add_argument("--open-mirror", action="store_true", help="do not gate the VAE mirror")
    args = ap.parse_args(argv)
    hub, info = tiny_hub.start(
        args.home,
        hub_port=args.hub_port,
        cdn_port=args.cdn_port,
        rate=args.rate_mb * 1e6 if args.rate_mb else None,
        vae_primary=not args.vae_404,
        gated_mirror=not args.open_mirror,
    )
    for var, value in info["env"].items():
        print(f"export {var}={value}")
    print(f"# HF_TOKEN for the gated VAE mirror: export HF_TOKEN={info['token']}", flush=True)
    tiny_hub.serve_forever(hub)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
