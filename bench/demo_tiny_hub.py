"""The new-user walkthrough, offline: a loopback Hub that serves the tiny synthetic Klein set
under the REAL catalog's repo paths for FLUX.2 Klein 4B Q4_K_S, Q3_K_M and the (gated) VAE.

    .venv/bin/python -m bench.demo_tiny_hub /tmp/distill-walk [--rate-mb 2] [--open-vae]

Writes a user catalog into <home>/config/distill/ (the bundled one, with those three files'
sizes and sha256 set to the tiny files and every URL on the loopback Hub) and prints the
``export`` lines to paste before ``distill``; serves until Ctrl-C. Without ``HF_TOKEN`` the VAE
answers 401 GatedRepo like black-forest-labs/FLUX.2-dev; the printed token opens it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from distill_tui.resources import bundled_catalog_path
    from tests import tinymodels
    from tests.fakehub import FakeHub

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("--hub-port", type=int, default=28080)
    ap.add_argument("--cdn-port", type=int, default=28081)
    ap.add_argument("--rate-mb", type=float, default=None, help="MB/s per connection")
    ap.add_argument("--open-vae", action="store_true", help="do not gate the VAE repo")
    args = ap.parse_args(argv)
    home = args.home.resolve()
    cfg = home / "config" / "distill"
    cfg.mkdir(parents=True, exist_ok=True)
    tiny = tinymodels.make_set(home / "tiny-src", "fast")

    hub = FakeHub(rate=args.rate_mb * 1e6 if args.rate_mb else None)
    hub.hub_port, hub.cdn_port = args.hub_port, args.cdn_port
    endpoint = f"http://127.0.0.1:{args.hub_port}"
    raw = json.loads(bundled_catalog_path().read_text())
    raw["catalogVersion"] += 1000  # newer than the bundled one: kept as is
    four = raw["models"][0]
    picks = {
        ("diffusion", "Q4_K_S"): tiny["diffusion"],
        ("textEncoder", "Q3_K_M"): tiny["text_encoder"],
    }
    for model in raw["models"]:
        for section in ("diffusion", "textEncoder"):
            for q in model[section]["quants"]:
                q["downloadUrl"] = q["downloadUrl"].replace("https://huggingface.co", endpoint)
        model["vae"]["downloadUrl"] = model["vae"]["downloadUrl"].replace(
            "https://huggingface.co", endpoint
        )
    for (section, qid), src in picks.items():
        q = next(q for q in four[section]["quants"] if q["id"] == qid)
        _serve(hub, q, Path(src))
    _serve(hub, four["vae"], Path(tiny["vae"]), gated=not args.open_vae)
    raw["models"][1]["vae"] = four["vae"]  # shared file, same entry
    (cfg / "model-catalog.json").write_text(json.dumps(raw, indent=2))
    hub.start(args.hub_port, args.cdn_port)
    for var, sub in (
        ("CONFIG", "config"),
        ("DATA", "data"),
        ("CACHE", "cache"),
        ("STATE", "state"),
    ):
        print(f"export XDG_{var}_HOME={home / sub}")
    print(f"# HF_TOKEN for the gated VAE: export HF_TOKEN={hub.valid_token}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


def _serve(hub, entry: dict, src: Path, gated: bool = False) -> None:
    data = src.read_bytes()
    entry["size"] = len(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    repo, path = entry["downloadUrl"].split("/", 3)[3].split("/resolve/main/")
    hub.add_file(repo, path, src, gated=gated)


if __name__ == "__main__":
    raise SystemExit(main())
