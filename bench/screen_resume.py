"""CPU of showing a screen again (F5 then F2, ten times), in-process with Textual's Pilot.

    .venv/bin/python bench/screen_resume.py

Issue 22.13 ("F5 takes ~330 ms on every visit"): the first two visits build the screens; the
later ones were mostly Textual re-styling the whole screen on resume (screens/base.py now skips
that when nothing a restyle depends on changed). Prints the process time of each F5 visit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

T = tempfile.mkdtemp()
for var, sub in (
    ("XDG_CONFIG_HOME", "c"),
    ("XDG_DATA_HOME", "d"),
    ("XDG_CACHE_HOME", "k"),
    ("XDG_STATE_HOME", "s"),
):
    os.environ[var] = f"{T}/{sub}"
os.environ["HOME"] = T
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_snapshots_generate import make_app  # noqa: E402


async def main() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        times = []
        for _ in range(10):
            t = time.process_time()
            await pilot.press("f5")
            await pilot.pause()
            times.append(time.process_time() - t)
            await pilot.press("f2")
            await pilot.pause()
        print("F5 visits, CPU ms:", [round(1000 * x) for x in times])


if __name__ == "__main__":
    asyncio.run(main())
