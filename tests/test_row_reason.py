"""Issue 22.13: a row that failed keeps its whole reason on the row once the toast is gone (a
404 ended as "✗ Failed · r retry" with no reason). A row's height followed its state alone:
a failure after a failure (r, then the same file failing again before the screen saw the
states between: progress messages coalesce) kept the height of the first reason, and a longer
reason was cut off. Pilot against the loopback Hub."""

from __future__ import annotations

import dataclasses

from tests.fakehub import FakeHub, Fault
from tests.test_models_screen import focus_row, make_app, make_core, screen, settle


async def test_404_row_keeps_its_reason(tmp_path) -> None:
    with FakeHub(tmp_path / "hub") as hub:
        core = make_core(hub, size=64 * 1024)
        for server in ("hub", "cdn"):
            hub.faults.append(
                Fault("status", server=server, status=404, path="Q3_K_S.gguf", times=None)
            )
        app = make_app(core)
        async with app.run_test(size=(80, 40)) as pilot:
            await pilot.press("f3")
            await focus_row(pilot, "Q3_K_S")
            scr = screen(app)
            row = scr.focused_row()
            await pilot.press("d")
            await settle(pilot, row.key)
            app.clear_notifications()  # the toast is gone
            await pilot.pause()
            assert row.state == "failed"
            assert "404" in " ".join(str(row.render()).split())
            assert row.size.height == len(row._lines(row.content_size.width))

            # the same file fails again with a longer reason, the states between coalesced
            first = row.event
            longer = dataclasses.replace(
                first,
                error="flux-2-klein-4b-Q3_K_S.gguf not found (404) " + "and more words " * 12,
            )
            scr.post_message(scr.DownloadProgress(longer))
            for _ in range(3):
                await pilot.pause()
            lines = row._lines(row.content_size.width)
            assert len(lines) > 2
            assert row.size.height == len(lines), (row.size.height, len(lines))
