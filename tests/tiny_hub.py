"""The tiny synthetic Klein set on the loopback fake Hub, under the REAL catalog's repo paths.

A new user's walkthrough without the network: the bundled catalog is copied into the user
catalog with ``catalogVersion`` bumped (so distill keeps it as is), the picked files' size and
sha256 set to the tiny files' and every URL on the loopback Hub. The Hub serves

* the picked diffusion quant (default Q4_K_S) at ``unsloth/FLUX.2-klein-4B-GGUF``,
* the picked text encoder (default Q3_K_M) at ``unsloth/Qwen3-4B-GGUF``,
* the VAE at its first source, the ungated ``Comfy-Org/flux2-dev``
  ``split_files/vae/flux2-vae.safetensors`` (``vae_primary=False``: a 404 there instead),
* and the same VAE bytes at every ``mirrors`` URL of the catalog (BFL's ``FLUX.2-dev``
  ``vae/diffusion_pytorch_model.safetensors``), gated by default like the real repo.

Optional extra models (catalog v3 entries taken from the bundled catalog):

* ``zimage``: :func:`tests.tinymodels.make_zimage_set`'s files as ``z-image-turbo``: the DiT
  (sd.cpp's fixed 6B shape, a SPARSE 1.6 GB file; served with ``sendfile``, never read into
  memory) at ``leejet/Z-Image-Turbo-GGUF``, the 2560-wide Qwen3 at ``unsloth/Qwen3-4B-GGUF``
  (the text encoder Klein 4B/9B list too: every model's entry for that file gets the tiny
  bytes' size and sha256, so it stays one shared file) and the FLUX.1 VAE at
  ``Comfy-Org/z_image_turbo``;
* ``upscaler``: :mod:`tests.tiny_esrgan`'s x4 ``.pth`` as ``realesrgan-x4plus`` at
  ``LykosAI/Upscalers`` ``RealESRGAN/RealESRGAN_x4plus.pth``.

Every other catalog file answers 404 (or 401 RepoNotFound for repos that serve nothing).

Library use: :func:`serve_tiny_set` on a started :class:`~tests.fakehub.FakeHub`, then
:func:`write_user_catalog`. Standalone (the plain-install smoke, manual walkthroughs)::

    python -m tests.tiny_hub HOME [--hub-port 0] [--cdn-port 0] [--vae-404] [--open-mirror]
                                  [--zimage] [--upscaler]

writes the tiny set and ``HOME/config/distill/model-catalog.json``, prints ONE JSON line
(``hub``, ``cdn``, ``catalog``, ``token``, ``files``, ``env``: the XDG variables) and serves
until SIGTERM/SIGINT. Needs numpy, gguf and safetensors (the test extra) for the tiny set;
the Hub itself is stdlib only.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python tests/tiny_hub.py` as well as `-m tests.tiny_hub`
    sys.path.insert(0, str(ROOT))

from tests.catalog_raw import bundled_v2, bundled_v3  # noqa: E402
from tests.fakehub import FakeHub, HubFile  # noqa: E402

HF = "https://huggingface.co"
BUNDLED_CATALOG = ROOT / "catalog" / "model-catalog.json"
MODEL_ID = "flux2-klein-4b"
DIFFUSION_QUANT = "Q4_K_S"
TEXT_ENCODER_QUANT = "Q3_K_M"
ZIMAGE_ID = "z-image-turbo"
#: Z-Image's picks: its recommended quants. The text encoder is NOT Klein's pick (Q3_K_M):
#: Z-Image needs a 2560-wide Qwen3, the tiny Klein DiT a 32-wide one; the Q4_K_M file is
#: still the one Klein 4B/9B list (shared: one entry, the same tiny bytes, in every model)
ZIMAGE_DIFFUSION_QUANT = "Q4_K"
ZIMAGE_TEXT_ENCODER_QUANT = "Q4_K_M"
UPSCALER_ID = "realesrgan-x4plus"
#: a file in the VAE's first repo when ``vae_primary=False``: the repo exists, the VAE is 404
PLACEHOLDER = "README.md"


def repo_path(url: str) -> tuple[str, str]:
    """``https://host/<owner>/<name>/resolve/<rev>/<path>`` -> (``owner/name``, ``path``)."""
    rest = url.split("://", 1)[1].split("/", 1)[1]
    repo, tail = rest.split("/resolve/", 1)
    return repo, tail.split("/", 1)[1]


def _rehost(url: str, endpoint: str) -> str:
    return endpoint + url[len(HF) :] if url.startswith(HF + "/") else url


def _stamp(entry: dict[str, Any], src: Path | HubFile) -> None:
    """Give ``entry`` the served bytes' size and sha256 (read in blocks: a sparse file's holes
    are never held in memory)."""
    if isinstance(src, HubFile):
        entry["size"], entry["sha256"] = src.size, src.sha256
    else:
        h = hashlib.sha256()
        with open(src, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
        entry["size"], entry["sha256"] = src.stat().st_size, h.hexdigest()
    entry.pop("sizeEstimated", None)


def _file_entries(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file entry of a raw model, v2 (``diffusion``/``textEncoder``/``vae``) or v3
    (``components``)."""
    out: list[dict[str, Any]] = []
    if "components" in model:
        for comp in model["components"]:
            out += comp.get("quants", [])
            if "file" in comp:
                out.append(comp["file"])
        return out
    for section in ("diffusion", "textEncoder"):
        if section in model:
            out += model[section]["quants"]
    if "vae" in model:
        out.append(model["vae"])
    return out


def _v3_entry(model: dict[str, Any], role: str, qid: str | None = None) -> dict[str, Any]:
    comp = next((c for c in model["components"] if c["role"] == role), None)
    if comp is None:
        raise KeyError(f"{model['id']} has no {role} component")
    if qid is None:
        return comp["file"]
    q = next((q for q in comp.get("quants", []) if q["id"] == qid), None)
    if q is None:
        raise KeyError(f"{model['id']} has no {role} quant {qid!r}")
    return q


def _serve_v3(
    hub: FakeHub,
    raw: dict[str, Any],
    model_id: str,
    picks: dict[tuple[str, str | None], Path],
) -> list[dict[str, Any]]:
    """Add the bundled v3 model ``model_id`` to ``raw`` with ``picks`` ((role, quant | None)
    -> tiny file) served at their catalog URLs; return the stamped entries."""
    model = next((m for m in bundled_v3()["models"] if m["id"] == model_id), None)
    if model is None:
        raise KeyError(f"{model_id!r} is not in the bundled catalog")
    model = copy.deepcopy(model)
    stamped = []
    for (role, qid), src in picks.items():
        entry = _v3_entry(model, role, qid)
        served = hub.add_file(*repo_path(entry["downloadUrl"]), src)
        _stamp(entry, served)
        # the tiny bytes are at no pinned commit (the fake Hub ignores the revision anyway)
        entry.pop("revision", None)
        stamped.append(entry)
    raw["models"] = [m for m in raw["models"] if m["id"] != model_id] + [model]
    return stamped


def serve_tiny_set(
    hub: FakeHub,
    tiny: dict[str, str | Path],
    *,
    catalog: dict[str, Any] | None = None,
    endpoint: str | None = None,
    model_id: str = MODEL_ID,
    diffusion: str = DIFFUSION_QUANT,
    text_encoder: str = TEXT_ENCODER_QUANT,
    vae_primary: bool = True,
    gated_mirror: bool = True,
    bump: int = 1000,
    zimage: dict[str, str | Path] | None = None,
    upscaler: str | Path | None = None,
) -> dict[str, Any]:
    """Add the tiny files to ``hub`` under ``catalog``'s paths; return the user catalog (JSON).

    ``tiny``: :func:`tests.tinymodels.make_set`'s paths (``diffusion``, ``text_encoder``,
    ``vae``). ``catalog``: the raw catalog to start from (default: the bundled one).
    ``endpoint``: where the catalog's URLs point (default ``hub.url``: the Hub must know its
    port, i.e. be started or have ``hub_port`` set). ``vae_primary=False``: the VAE's first
    source answers 404 EntryNotFound (its repo exists), so only the mirrors serve it.
    ``gated_mirror``: the mirror repos answer 401 GatedRepo without the Hub's token.
    ``zimage``: :func:`tests.tinymodels.make_zimage_set`'s paths: ``z-image-turbo`` is added
    (its Q4_K DiT, Q4_K_M text encoder and VAE served). ``upscaler``: a tiny ESRGAN file
    (:mod:`tests.tiny_esrgan`): ``realesrgan-x4plus`` is added and its ``.pth`` served.
    """
    raw = copy.deepcopy(catalog) if catalog is not None else bundled_v2()
    raw["catalogVersion"] = int(raw["catalogVersion"]) + bump  # newer than bundled: kept as is
    endpoint = (endpoint or hub.url).rstrip("/")
    model = next((m for m in raw["models"] if m["id"] == model_id), None)
    if model is None:
        raise KeyError(f"{model_id!r} is not in the catalog")
    picks = {
        ("diffusion", diffusion): Path(tiny["diffusion"]),
        ("textEncoder", text_encoder): Path(tiny["text_encoder"]),
    }
    stamped: list[dict[str, Any]] = []
    for (section, qid), src in picks.items():
        q = next((q for q in model[section]["quants"] if q["id"] == qid), None)
        if q is None:
            raise KeyError(f"{model_id} has no {section} quant {qid!r}")
        _stamp(q, src)
        hub.add_file(*repo_path(q["downloadUrl"]), src)
        stamped.append(q)
    vae = model["vae"]
    vae_src = Path(tiny["vae"])
    _stamp(vae, vae_src)
    repo, path = repo_path(vae["downloadUrl"])
    if vae_primary:
        hub.add_file(repo, path, vae_src)
    else:
        hub.add_file(repo, PLACEHOLDER, b"# placeholder: the repo exists, the VAE is 404\n")
    for url in vae.get("mirrors", []):
        m_repo, m_path = repo_path(url)
        hub.add_file(m_repo, m_path, vae_src, gated=gated_mirror)
    # the VAE is one shared file: every model that lists the same file gets the same entry
    for other in raw["models"]:
        if other is not model and other.get("vae", {}).get("file") == vae["file"]:
            other["vae"] = copy.deepcopy(vae)
    if zimage is not None:
        stamped += _serve_v3(
            hub,
            raw,
            ZIMAGE_ID,
            {
                ("diffusion", ZIMAGE_DIFFUSION_QUANT): Path(zimage["diffusion"]),
                ("textEncoder", ZIMAGE_TEXT_ENCODER_QUANT): Path(zimage["text_encoder"]),
                ("vae", None): Path(zimage["vae"]),
            },
        )
    if upscaler is not None:
        stamped += _serve_v3(hub, raw, UPSCALER_ID, {("upscaler", None): Path(upscaler)})
    # a shared file (Qwen3-4B's quants are Klein's and Z-Image's) is one file: every entry
    # that names it gets the served bytes' size, sha256 and URL (the catalog refuses two shas)
    for entry in stamped:
        for m in raw["models"]:
            for other in _file_entries(m):
                if other is not entry and other["file"] == entry["file"]:
                    other.update(
                        {k: entry[k] for k in ("size", "sha256", "downloadUrl")},
                    )
                    other.pop("sizeEstimated", None)
                    other.pop("revision", None)
    for m in raw["models"]:
        for entry in _file_entries(m):
            entry["downloadUrl"] = _rehost(entry["downloadUrl"], endpoint)
            if "mirrors" in entry:
                entry["mirrors"] = [_rehost(u, endpoint) for u in entry["mirrors"]]
    return raw


def write_user_catalog(config_dir: Path, catalog: dict[str, Any]) -> Path:
    """Write ``catalog`` as distill's user catalog in ``config_dir`` (``$XDG_CONFIG_HOME/distill``)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    out = config_dir / "model-catalog.json"
    out.write_text(json.dumps(catalog, indent=2) + "\n")
    return out


def xdg_env(home: Path) -> dict[str, str]:
    """The XDG variables that put every distill path under ``home``."""
    return {f"XDG_{v.upper()}_HOME": str(home / v) for v in ("config", "data", "cache", "state")}


def start(
    home: Path,
    *,
    hub_port: int = 0,
    cdn_port: int = 0,
    rate: float | None = None,
    tiny_set: str = "fast",
    tiny_dir: Path | None = None,
    vae_primary: bool = True,
    gated_mirror: bool = True,
    zimage: bool = False,
    upscaler: bool = False,
) -> tuple[FakeHub, dict[str, Any]]:
    """Make the tiny set, start a Hub for it and write the user catalog under ``home``.

    Returns the running Hub (``stop()`` it) and a description (what ``main`` prints)."""
    from tests import tinymodels  # numpy, gguf, safetensors: only here

    home = home.resolve()
    src = tiny_dir or home / "tiny-src"
    tiny = tinymodels.make_set(src, tiny_set)
    files: dict[str, Path] = dict(tiny)
    zset = tinymodels.make_zimage_set(src) if zimage else None
    if zset is not None:
        files.update({f"zimage_{k}": v for k, v in zset.items()})
    esrgan = None
    if upscaler:
        from tests import tiny_esrgan

        esrgan = files["upscaler"] = tiny_esrgan.write_pth(src / "RealESRGAN_x4plus.pth")
    hub = FakeHub(root=home / "hub", rate=rate)
    hub.start(hub_port, cdn_port)
    try:
        raw = serve_tiny_set(
            hub,
            tiny,
            vae_primary=vae_primary,
            gated_mirror=gated_mirror,
            zimage=zset,
            upscaler=esrgan,
        )
        env = xdg_env(home)
        catalog = write_user_catalog(Path(env["XDG_CONFIG_HOME"]) / "distill", raw)
    except BaseException:
        hub.stop()
        raise
    info = {
        "hub": hub.url,
        "cdn": hub.cdn_url,
        "catalog": str(catalog),
        "token": hub.valid_token,
        "files": {k: str(v) for k, v in files.items()},
        "env": env,
    }
    return hub, info


def serve_forever(hub: FakeHub, *, exit_with_parent: bool = False) -> None:
    """Block until SIGINT or SIGTERM (or, with ``exit_with_parent``, until the process that
    started this one is gone: a driver killed with SIGKILL leaves no Hub behind), then stop."""

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    parent = os.getppid()
    try:
        while not exit_with_parent or os.getppid() == parent:
            time.sleep(1.0 if exit_with_parent else 3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.tiny_hub", description=__doc__.splitlines()[0]
    )
    ap.add_argument("home", type=Path, help="XDG dirs, the tiny set and the Hub's blobs go here")
    ap.add_argument("--hub-port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--cdn-port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--rate-mb", type=float, default=None, help="MB/s per connection")
    ap.add_argument("--set", default="fast", choices=("fast", "slow", "edit"))
    ap.add_argument("--tiny-dir", type=Path, default=None, help="where to write the tiny set")
    ap.add_argument(
        "--vae-404", action="store_true", help="the VAE's first source answers 404 (mirror only)"
    )
    ap.add_argument("--open-mirror", action="store_true", help="do not gate the VAE mirror")
    ap.add_argument("--zimage", action="store_true", help="also serve a tiny z-image-turbo")
    ap.add_argument("--upscaler", action="store_true", help="also serve realesrgan-x4plus")
    ap.add_argument("--log", type=Path, default=None, help="one JSON line per request")
    ap.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process is gone"
    )
    a = ap.parse_args(argv)
    hub, info = start(
        a.home,
        hub_port=a.hub_port,
        cdn_port=a.cdn_port,
        rate=a.rate_mb * 1e6 if a.rate_mb else None,
        tiny_set=a.set,
        tiny_dir=a.tiny_dir,
        vae_primary=not a.vae_404,
        gated_mirror=not a.open_mirror,
        zimage=a.zimage,
        upscaler=a.upscaler,
    )
    hub.log_path = a.log
    print(json.dumps(info), flush=True)
    serve_forever(hub, exit_with_parent=a.exit_with_parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
