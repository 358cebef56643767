"""One progress and ETA for the whole set (issue 22.11): the CLI's overall line (not a
terminal) and bar (a terminal), the Model Manager card header. Real loopback Hub."""

from __future__ import annotations

import re

from distill_tui.cli import main
from tests.test_hostile_downloads import M4

SET_LINE = re.compile(
    r"set (\d+)% · (\S+ \S+) of (\S+ \S+) · (\d) of 3 files(?: · \S+ \S+/s)? · ETA (\S+)"
)


def test_cli_non_tty_prints_one_line_for_the_whole_set(hub_catalog, fake_hub, capsys, monkeypatch):
    import distill_tui.cli.downloads as dl
    from distill_tui.formatting import human_size

    monkeypatch.setattr(dl, "PROGRESS_EVERY", 0.3)
    fake_hub.rate = 20_000  # bytes/s per connection: ~10 s for the set
    assert main(["models", "download", M4, "--connections", "1"]) == 0
    cap = capsys.readouterr()
    err = cap.err
    lines = [m for x in err.splitlines() if (m := SET_LINE.search(x))]
    assert len(lines) >= 2, err
    keys = re.findall(r"^  ok .*\((\S+)\)$", cap.out, re.M)
    assert len(keys) == 3, cap.out
    # one total for the set (the three files' bytes), not per file
    assert {m.group(3) for m in lines} == {
        human_size(sum(len(hub_catalog.payload(k)) for k in keys))
    }
    pct = [int(m.group(1)) for m in lines]
    assert pct == sorted(pct) and pct[0] < 100  # it moves forward
    assert any(m.group(5) != "--:--" for m in lines), err  # an ETA for the rest of the set
    assert {int(m.group(4)) for m in lines} - {0}, err  # files finish within the set


# ---- the Model Manager's card header ---------------------------------------------------------
async def test_card_header_shows_one_progress_and_eta_for_the_set(tmp_path) -> None:
    import asyncio

    from distill_tui.widgets.model_card import ModelCard
    from tests.fakehub import FakeHub
    from tests.test_models_screen import make_app, make_core, screen

    with FakeHub(tmp_path / "hub") as hub:
        core = make_core(hub, size=96 * 1024)
        hub.rate = 30_000  # bytes/s per connection: ~10 s for the set
        app = make_app(core, connections=1)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("f3")
            await pilot.pause()
            card = screen(app).query_one(ModelCard)
            await pilot.press("d")  # the recommended set, from the card header
            seen: list[str] = []
            for _ in range(400):
                await asyncio.sleep(0.05)
                text = card.title_widget.label.plain
                m = re.search(r"set (\d+)% · ETA (\S+)", text)
                if m and (not seen or seen[-1] != m.group(0)):
                    seen.append(m.group(0))
                if card.ready:
                    break
            assert card.ready
            pct = [int(re.search(r"(\d+)%", s).group(1)) for s in seen]
            assert len(set(pct)) >= 3, seen  # one figure moving through the three files
            assert pct == sorted(pct)
            assert any(not s.endswith("--:--") for s in seen), seen  # an ETA for the set
            for _ in range(5):
                await pilot.pause()
            assert "ETA" not in card.title_widget.label.plain  # gone once the set is done


async def test_shared_vae_downloaded_for_another_model_is_said_so(tmp_path) -> None:
    """The 9B card does not call the shared VAE '1 queued' while 4B downloads it."""
    import asyncio
    import copy

    from distill_tui.catalog import Catalog
    from distill_tui.widgets.model_card import ModelCard
    from tests.fakehub import FakeHub
    from tests.loopback_catalog import serve_catalog
    from tests.test_models_screen import make_app, make_core, screen

    with FakeHub(tmp_path / "hub") as hub:
        core = make_core(hub, size=64 * 1024)
        raw = serve_catalog(hub, size=64 * 1024)
        other = copy.deepcopy(raw["models"][0])
        other.update(id="flux2-klein-9b", name="FLUX.2 Klein 9B")
        raw["models"].append(other)
        core.catalog = Catalog.model_validate(raw)
        core.resolver.catalog = core.catalog
        hub.rate = 30_000
        app = make_app(core, connections=1)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("f3")
            await pilot.pause()
            cards = {c.model.id: c for c in screen(app).query(ModelCard)}
            await pilot.press("d")  # 4B's set (the first card's header)
            said = ""
            for _ in range(200):
                await asyncio.sleep(0.05)
                said = cards["flux2-klein-9b"].title_widget.label.plain
                if "downloading for" in said:
                    break
            assert "downloading for FLUX.2 Klein 4B" in said, said
            assert "queued" not in said and "ETA" not in said, said
            for key in [e.key for e in app.downloads.events()]:
                await app.downloads.wait(key)
