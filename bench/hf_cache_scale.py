"""F3 (the Model Manager) with a Hugging Face cache repo of N snapshot folders (issue 19.22).

A file of the bundled catalog's FLUX.2 Klein 4B (the first with a sha256) is laid out in a throwaway HF
cache as the hf client does it (refs/main -> snapshots/<commit>/<file> -> blobs/<sha256>, the
blob a sparse file of the catalog's size), in a repo that also holds N other snapshot folders.
Measured, headless (Textual Pilot), everything in a temp dir, offline:

* ``hint_all``: ``localreuse.hint`` over every file of the catalog (what the screen looks up);
* ``f3_up``: F3 pressed -> the Model Manager is the screen and the event loop answers;
* ``f3_hint``: F3 pressed -> the cached quant's row reads "found in the HF cache".

usage: python bench/hf_cache_scale.py [N ...]        (default: 0 10000)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def setup(tmp: Path) -> None:
    for var, sub in (("XDG_CONFIG_HOME", "c"), ("XDG_DATA_HOME", "d"), ("XDG_CACHE_HOME", "k")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(tmp / sub)
    os.environ["HOME"] = str(tmp)
    os.environ["HF_HUB_CACHE"] = str(tmp / "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_TOKEN_PATH"] = str(tmp / "no-token")
    os.environ["DISTILL_FAKE_DEVICES"] = "[]"
    os.environ["DISTILL_FAKE_BUILD"] = "cpu"


def lay_out(cache: Path, f, n: int) -> None:
    from distill_tui.downloads.localreuse import resolve_parts

    parts = resolve_parts(f.download_url)
    assert parts is not None
    repo, _rev, path = parts
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    blob = repo_dir / "blobs" / f.sha256
    blob.parent.mkdir(parents=True)
    with open(blob, "wb") as fh:
        fh.truncate(f.size)  # sparse: only the size and the name are looked at
    link = repo_dir / "snapshots" / COMMIT / path
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    fd = os.open(repo_dir / "snapshots", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n):
            os.mkdir(f"{i:040x}", dir_fd=fd)
    finally:
        os.close(fd)


async def f3(core, key: str) -> tuple[float, float]:
    from distill_tui.app import DistillApp
    from distill_tui.display import STILL
    from distill_tui.screens.models import ModelManagerScreen

    app = DistillApp(core, display_settings=STILL)
    async with app.run_test(size=(100, 30)) as pilot:
        t0 = time.monotonic()
        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)
        up = time.monotonic() - t0
        while True:
            rows = app.screen.rows_for(key)
            if rows and rows[0].found:
                break
            if time.monotonic() - t0 > 600:
                raise SystemExit("the hint never came")
            await pilot.pause(0.02)
        return up, time.monotonic() - t0


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hf-cache-scale-") as d:
        tmp = Path(d)
        setup(tmp)
        from huggingface_hub import constants  # computed at its import: set for each run

        constants.HF_HUB_CACHE = str(tmp / "hf")
        from distill_tui.context import CoreContext
        from distill_tui.downloads import localreuse as lr

        core = CoreContext.build()
        model = core.catalog.require("flux2-klein-4b")
        f = next(x for _c, _q, x in model.files() if x.sha256 and not x.size_estimated)
        lay_out(tmp / "hf", f, n)
        files = [x for m in core.catalog.models for _c, _q, x in m.files()]
        t0 = time.monotonic()
        found = [lr.hint(x) for x in files]
        hint_all = time.monotonic() - t0
        assert found.count("the HF cache") >= 1
        up, hint = asyncio.run(f3(core, f.file))
        return {
            "snapshots": n,
            "catalog_files": len(files),
            "hint_all_s": round(hint_all, 3),
            "f3_up_s": round(up, 3),
            "f3_hint_s": round(hint, 3),
        }


def main(argv: list[str]) -> int:
    for n in [int(a) for a in argv] or [0, 10_000]:
        print(json.dumps(run(n)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
