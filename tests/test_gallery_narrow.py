"""Issue 22.13: the Gallery at 80 columns keeps a Quants column, so the cells of a compare
(same prompt, seed and size, other quants) do not look identical. Pilot at 80x24."""

from __future__ import annotations

from textual.widgets import DataTable

from distill_tui.outputs import History, HistoryRecord
from tests.test_snapshots_generate import MODEL_ID, make_app


async def test_gallery_at_80_columns_tells_compare_cells_apart():
    app = make_app()
    h = History(app.core.paths.history_file)
    pairs = [("Q4_K_S", "Q4_K_M"), ("Q8_0", "Q4_K_M"), ("Q4_K_S", "Q8_0")]
    for i, (d, t) in enumerate(pairs):
        h.add(
            HistoryRecord(
                created=f"2026-01-02T03:0{i}:00+00:00",
                model_id=MODEL_ID,
                diffusion_quant=d,
                text_encoder_quant=t,
                params={"prompt": "a lighthouse", "width": 1024, "height": 1024, "steps": 4},
                seed=7,
                images=[],
                timings={"total": 2.0},
            )
        )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        table = pilot.app.screen.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Quants" in labels, labels
        rows = [tuple(str(x) for x in table.get_row_at(i)) for i in range(table.row_count)]
        assert len(set(rows)) == 3, rows  # the three cells differ on screen
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        assert widths <= 80, widths  # nothing cut off at the right
        for d, t in pairs:
            assert any(d in " ".join(r) and t in " ".join(r) for r in rows), rows
