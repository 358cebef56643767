"""Serve the loopback test catalog on fixed ports for manual runs and the TUI benches.

    .venv/bin/python -m bench.loopback_hub --config-dir "$XDG_CONFIG_HOME/distill" \
        --size-mb 40 --rate-mb 4

writes ``model-catalog.json`` (the loopback catalog: FLUX.2 Klein 4B, two quants per
section, the VAE) into the config dir, then serves it until Ctrl-C. ``--gated-vae`` makes the
VAE repo answer 401 GatedRepo like black-forest-labs/FLUX.2-dev without a token.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tests.fakehub import FakeHub
from tests.loopback_catalog import serve_catalog


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loopback_hub")
    p.add_argument("--config-dir", type=Path, required=True)
    p.add_argument("--hub-port", type=int, default=18080)
    p.add_argument("--cdn-port", type=int, default=18081)
    p.add_argument("--size-mb", type=float, default=40.0)
    p.add_argument("--vae-mb", type=float, default=None)
    p.add_argument("--rate-mb", type=float, default=None, help="MB/s per connection")
    p.add_argument("--gated-vae", action="store_true")
    args = p.parse_args(argv)
    hub = FakeHub(rate=args.rate_mb * 1e6 if args.rate_mb else None)
    hub.start(args.hub_port, args.cdn_port)
    size = int(args.size_mb * 1e6)
    sizes = {"vae": int(args.vae_mb * 1e6)} if args.vae_mb else None
    catalog = serve_catalog(hub, size, sizes=sizes, gated_vae=args.gated_vae)
    args.config_dir.mkdir(parents=True, exist_ok=True)
    (args.config_dir / "model-catalog.json").write_text(json.dumps(catalog, indent=2))
    print(
        f"hub {hub.url} cdn {hub.cdn_url} catalog {args.config_dir / 'model-catalog.json'}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
