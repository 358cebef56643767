"""Make a throwaway distill home whose active model is the tiny synthetic FLUX.2 Klein set.

    .venv/bin/python -m bench.demo_home /tmp/distill-demo [--set fast|slow]

Prints the ``export XDG_...=...`` lines to paste before running ``distill`` (tmux / xterm
demos, the image-paint benchmark). The tiny files stand in for the catalog's
``flux2-klein-4b`` Q4_K_S / Q4_K_M / VAE files (recorded in the inventory and selected, as a
finished download leaves them); they produce 64x64 noise-like images in well under a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("--set", default="fast", choices=("fast", "slow"))
    args = ap.parse_args(argv)
    home = args.home.resolve()
    env = {
        "XDG_CONFIG_HOME": home / "config",
        "XDG_DATA_HOME": home / "data",
        "XDG_CACHE_HOME": home / "cache",
        "XDG_STATE_HOME": home / "state",
    }
    for k, v in env.items():
        v.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(v)

    from distill_tui.context import CoreContext
    from tests import tinymodels
    from tests.gen_helpers import install_tiny

    tiny = tinymodels.make_set(home / "tiny-src", args.set)
    core = CoreContext.build()
    install_tiny(core, tiny)
    assert core.resolver.is_model_ready(), core.resolver.missing()
    for k, v in env.items():
        print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
