"""Model Manager (F3) driven by keys against the fake Hub: real DownloadManager, real files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill_tui.app import DistillApp
from distill_tui.catalog import Catalog
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.downloads import DownloadManager
from distill_tui.inventory import Inventory
from distill_tui.paths import AppPaths
from distill_tui.resolver import Resolver
from distill_tui.screens.confirm import ConfirmModal
from distill_tui.screens.models import ModelManagerScreen
from distill_tui.settings import SettingsStore
from distill_tui.widgets.file_row import FileRow
from distill_tui.widgets.model_card import ModelCard
from distill_tui.widgets.quant_radio_set import QuantRadioSet
from tests.fakehub import FakeHub
from tests.loopback_catalog import VAE_REPO, serve_catalog

SIZE = 96 * 1024


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    h = FakeHub(tmp_path / "hub")
    with h:
        yield h


def make_core(hub: FakeHub, **kw) -> CoreContext:
    paths = AppPaths.from_env()
    settings = SettingsStore(paths)
    settings.load()
    catalog = Catalog.model_validate(serve_catalog(hub, **kw))
    inventory = Inventory(settings.models_dir).load()
    return CoreContext(paths, settings, catalog, inventory, Resolver(catalog, settings, inventory))


def make_app(core: CoreContext, **dm_kw) -> DistillApp:
    def factory(app: DistillApp) -> DownloadManager:
        opts = {"token": None, "connections": 2, "retries": 1, "backoff": 0.05}
        opts.update(dm_kw)
        return DownloadManager(core.catalog, core.settings, core.inventory, **opts)

    return DistillApp(core, downloads_factory=factory, display_settings=STILL)


def screen(app: DistillApp) -> ModelManagerScreen:
    assert isinstance(app.screen, ModelManagerScreen)
    return app.screen


async def focus_row(pilot, label: str) -> None:
    """Walk with the arrow keys until the row labelled ``label`` has the cursor."""
    app = pilot.app
    for _ in range(30):
        row = screen(app).focused_row()
        if row is not None and getattr(row, "label", None) == label:
            return
        if row is not None and getattr(getattr(row, "quant", None), "label", None) == label:
            return
        await pilot.press("down")
    raise AssertionError(f"row {label} never got the cursor (focused: {app.focused})")


async def settle(pilot, key: str) -> None:
    await pilot.app.downloads.wait(key)
    for _ in range(5):
        await pilot.pause()


def saved_settings(core: CoreContext) -> dict:
    return json.loads(core.paths.settings_file.read_text())


async def test_download_select_and_ready(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    model = core.catalog.models[0]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        card = scr.query_one(ModelCard)
        assert not card.ready and card.has_class("-setup-required")

        # Q3_K_S: d on the focused row; the service auto-selects the first downloaded quant
        await focus_row(pilot, "Q3_K_S")
        row = scr.focused_row()
        assert row is not None and row.disabled and row.state == "missing"
        await pilot.press("d")
        await settle(pilot, row.key)
        assert row.state == "done" and not row.disabled
        assert "Downloaded ✓" in str(row.render())
        assert core.inventory.is_present(row.key)

        # Q4_K_S, then choose it with enter: settings.json changes on disk at once
        await focus_row(pilot, "Q4_K_S")
        q4 = scr.focused_row()
        await pilot.press("d")
        await settle(pilot, q4.key)
        assert q4.state == "done" and not q4.disabled
        before = saved_settings(core)["model_quant_selections"][model.id]["diffusionQuant"]
        assert before == "Q3_K_S"
        await pilot.press("enter")
        await pilot.pause()
        assert (
            saved_settings(core)["model_quant_selections"][model.id]["diffusionQuant"] == "Q4_K_S"
        )
        assert q4.value

        # text encoder + VAE by keys -> Ready
        await focus_row(pilot, "Q3_K_M")
        te = scr.focused_row()
        await pilot.press("d")
        await settle(pilot, te.key)
        await focus_row(pilot, "flux2-vae.safetensors")
        vae = scr.focused_row()
        assert isinstance(vae, FileRow)
        await pilot.press("d")
        await settle(pilot, vae.key)
        assert core.resolver.is_model_ready(model.id)
        assert card.ready and card.has_class("-ready")
        assert "Ready" in card.title_widget.label.plain
        sel = saved_settings(core)["model_quant_selections"][model.id]
        assert sel == {"diffusionQuant": "Q4_K_S", "textEncoderQuant": "Q3_K_M"}


async def test_disabled_radio_explains(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "Q4_K_S")
        await pilot.press("enter")
        await pilot.pause()
        assert core.settings.selection("flux2-klein-4b").diffusion_quant is None
        assert any("not on disk" in str(n.message) for n in app._notifications)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_cancel_keeps_resumable_partial(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE, sizes={"Q4_K_S": 4 * 1024 * 1024})
    hub.rate = 256 * 1024  # per connection: a download that takes ~8 s
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "Q4_K_S")
        row = screen(app).focused_row()
        await pilot.press("d")
        dm = app.downloads
        await wait_for(lambda: (ev := dm.status(row.key)) is not None and ev.bytes_done > 0)
        await pilot.pause()
        assert row.state == "downloading"
        assert "x cancel" in str(row.render())
        await pilot.press("x")
        final = await dm.wait(row.key)
        for _ in range(3):
            await pilot.pause()
        assert final.state == "cancelled" and final.resumable
        assert row.state == "cancelled"
        assert "partial kept" in str(row.render())
        part = core.inventory.abs_path(row.key).with_name(Path(row.key).name + ".part")
        assert part.exists() and part.stat().st_size > 0
        assert not core.inventory.is_present(row.key)


async def test_download_survives_leaving_the_screen(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE, sizes={"Q4_K_S": 2 * 1024 * 1024})
    hub.rate = 256 * 1024
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "Q4_K_S")
        row = screen(app).focused_row()
        key = row.key
        await pilot.press("d")
        dm = app.downloads
        await wait_for(lambda: (ev := dm.status(key)) is not None and ev.bytes_done > 0)
        first = dm.status(key)
        await pilot.press("f2")  # Generate
        await pilot.pause()
        assert not isinstance(app.screen, ModelManagerScreen)
        await asyncio.sleep(0.6)
        during = dm.status(key)
        assert during.state == "downloading" and during.bytes_done > first.bytes_done
        # collapse the card and switch tabs meanwhile: still the same download
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        card = scr.query_one(ModelCard)
        card.collapsed = True
        await pilot.pause()
        # a collapsed card still says that one of its files is downloading
        assert "⇣ 1 downloading" in card.title_widget.label.plain
        await asyncio.sleep(0.3)
        card.collapsed = False
        await pilot.pause()
        back = dm.status(key)
        assert back.state == "downloading" and back.bytes_done >= during.bytes_done
        # the row shows live progress of that same download
        await asyncio.sleep(0.3)
        await pilot.pause()
        assert row.state == "downloading" and row.event.bytes_done >= during.bytes_done
        # not restarted: no CDN request ever asked for the file from byte 0 twice
        starts = [r.range for r in hub.cdn_requests() if r.method == "GET"]
        assert (
            len([r for r in starts if r in (None, "bytes=0-") or (r or "").startswith("bytes=0-")])
            <= 1
        )
        final = await dm.wait(key)
        assert final.state == "done"


async def test_gated_vae_error_in_row(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE, gated_vae=True)
    app = make_app(core)
    failures: list[tuple[str, str]] = []
    app.report_failure = lambda title, msg: failures.append((title, msg))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "flux2-vae.safetensors")
        row = screen(app).focused_row()
        await pilot.press("d")
        await settle(pilot, row.key)
        assert row.state == "failed"
        text = str(row.render())
        flat = " ".join(text.split())
        # the license page is on huggingface.co, never on the Hub the download used (a
        # mirror under HF_ENDPOINT); the step that works in a running TUI (issue 13.7)
        assert f"https://huggingface.co/{VAE_REPO}" in flat
        assert f"{hub.url}/{VAE_REPO}" not in flat
        assert "no Hugging Face token" in flat
        assert "`hf auth login` in another shell, then press r" in flat
        assert "r retry" in text
        assert len(failures) == 1 and "hf auth login" in failures[0][1]
        # retry fails again: reported again (a new failure), once
        await pilot.press("r")
        await settle(pilot, row.key)
        assert len(failures) == 2


async def test_remove_with_confirmation_and_refuse_active(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        scr = screen(app)
        for label in ("Q3_K_S", "Q4_K_S"):
            await focus_row(pilot, label)
            await pilot.press("d")
            await settle(pilot, scr.focused_row().key)
        # Q3_K_S became the selection of the active model: refuse, and say why
        q4 = scr.focused_row()
        await pilot.press("up")
        q3 = scr.focused_row()
        assert q3.quant.label == "Q3_K_S" and q3.value
        await pilot.press("delete")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert core.inventory.is_present(q3.key)
        assert any(
            "active" in str(n.message) and "Select another" in str(n.message)
            for n in app._notifications
        )
        # Q4_K_S: confirmation; "n" keeps it, "y" removes it
        await pilot.press("down")
        assert scr.focused_row() is q4
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert core.inventory.is_present(q4.key)
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        for _ in range(3):
            await pilot.pause()
        assert not core.inventory.abs_path(q4.key).exists()
        assert core.inventory.get(q4.key) is None
        assert q4.state == "missing" and q4.disabled


async def test_remove_clears_selection_of_inactive_model(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    core.settings.update(active_model_id="other-model")
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        scr = screen(app)
        if scr.query_one(ModelCard).collapsed:
            await pilot.press("space")  # space on a card header opens it
            await pilot.pause()
        assert not scr.query_one(ModelCard).collapsed
        await focus_row(pilot, "Q3_K_S")
        await pilot.press("d")
        await settle(pilot, scr.focused_row().key)
        assert core.settings.selection("flux2-klein-4b").diffusion_quant == "Q3_K_S"
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert core.settings.selection("flux2-klein-4b").diffusion_quant is None


async def test_header_d_downloads_recommended_set(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        assert isinstance(app.focused, type(scr.query_one(ModelCard).title_widget))
        await pilot.press("d")
        await wait_for(lambda: len(app.downloads.events()) == 3)  # after the Hub preflight
        keys = {ev.key for ev in app.downloads.events()}
        assert keys == {
            "diffusion/flux-2-klein-4b-Q4_K_S.gguf",
            "text_encoder/Qwen3-4B-Q4_K_M.gguf",
            "vae/flux2-vae.safetensors",
        }
        for key in keys:
            await app.downloads.wait(key)
        for _ in range(5):
            await pilot.pause()
        assert scr.query_one(ModelCard).ready


async def test_palette_commands(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        titles = [c.title for c in app.get_system_commands(screen(app))]
        assert "Download recommended set for FLUX.2 Klein 4B" in titles
        assert "Open models folder path" in titles
        assert "Compare quants" not in titles  # the Generate screen's own


async def test_tab_navigation_between_sections(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await pilot.press("tab")
        assert isinstance(app.focused, QuantRadioSet) and app.focused.component == "diffusion"
        await pilot.press("tab")
        assert isinstance(app.focused, QuantRadioSet) and app.focused.component == "textEncoder"
        await pilot.press("tab")
        assert isinstance(app.focused, FileRow)
        await pilot.press("up")
        assert isinstance(app.focused, QuantRadioSet)
        assert app.focused.highlighted.quant.label == "Q4_K_M"  # entered from below: last row


async def test_category_tabs_filter_and_keep_downloads(hub: FakeHub) -> None:
    core = make_core(hub, size=SIZE, sizes={"Q4_K_S": 2 * 1024 * 1024})
    hub.rate = 256 * 1024
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        scr = screen(app)
        await focus_row(pilot, "Q4_K_S")
        key = scr.focused_row().key
        await pilot.press("d")
        await wait_for(lambda: (ev := app.downloads.status(key)) is not None and ev.bytes_done > 0)
        tabs = scr.query_one("#model-tabs")
        tabs.focus()
        await pilot.press("right")  # Image Generation
        await pilot.pause()
        assert tabs.active == "tab-image-generation"
        assert scr.query_one(ModelCard).display
        await pilot.press("right")  # the disabled future categories are skipped
        await pilot.pause()
        assert tabs.active in ("tab-all", "tab-image-generation")
        assert app.downloads.status(key).state in ("downloading", "verifying", "done")
        assert len([e for e in app.downloads.events() if e.key == key]) == 1


def test_progress_messages_coalesce() -> None:
    from distill_tui.downloads import DownloadEvent, DownloadState

    def ev(state: DownloadState, done: int, key: str = "a") -> DownloadEvent:
        return DownloadEvent(key, "m", "diffusion", "Q", state, done, 100, 1.0, 1.0)

    msg = ModelManagerScreen.DownloadProgress
    older = msg(ev(DownloadState.DOWNLOADING, 10))
    assert older.can_replace(msg(ev(DownloadState.DOWNLOADING, 20)))
    assert not older.can_replace(msg(ev(DownloadState.DOWNLOADING, 20, key="b")))
    assert not older.can_replace(msg(ev(DownloadState.FAILED, 20)))  # final states stay
    assert not msg(ev(DownloadState.DONE, 100)).can_replace(msg(ev(DownloadState.QUEUED, 0)))


def footer_keys(app: DistillApp) -> list[str]:
    from textual.widgets._footer import FooterKey

    from distill_tui.widgets.footer import DistillFooter

    footer = app.screen.query_one(DistillFooter)
    return [k.description for k in footer.query(FooterKey) if not k.disabled]


async def test_footer_follows_the_focused_row_without_needless_rebuilds(hub: FakeHub) -> None:
    """The footer shows d/x/r/del only where they act; moving between rows whose keys are
    the same keeps its widgets (no rebuild), a row with other keys gets a new footer."""
    from textual.widgets._footer import FooterKey

    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        await focus_row(pilot, "Q3_K_S")
        row = scr.focused_row()
        await pilot.press("d")
        await settle(pilot, row.key)
        assert "Remove" in footer_keys(app) and "Download" not in footer_keys(app)
        await focus_row(pilot, "Q4_K_S")  # not downloaded: d, no del
        await pilot.pause()
        keys = footer_keys(app)
        assert "Download" in keys and "Remove" not in keys
        before = list(app.screen.query(FooterKey))
        await focus_row(pilot, "Q3_K_M")  # another section, same keys as Q4_K_S
        await pilot.pause()
        assert list(app.screen.query(FooterKey)) == before, "footer rebuilt for identical keys"
        assert footer_keys(app) == keys


async def test_help_is_one_modal_refilled_for_each_screen(hub: FakeHub) -> None:
    from textual.widgets import Static

    from distill_tui.screens.help import HelpModal

    core = make_core(hub, size=SIZE)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        first = app.screen
        assert isinstance(first, HelpModal)
        title = str(first.query_one("#help-title", Static).render())
        keys = [(r.section, r.key, r.description) for r in first.rows]
        assert "Model Manager" in title
        assert ("This screen", "d", "Download") in keys
        assert ("Everywhere", "f2", "Generate") in keys
        assert keys.index(("This screen", "d", "Download")) < keys.index(
            ("Everywhere", "f2", "Generate")
        ), "the screen's own keys come first"
        assert not any(
            d in ("Scroll Home", "Page Down", "Copy selected text") for _s, _k, d in keys
        )
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ModelManagerScreen)
        await pilot.press("f2")
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen is first
        title = str(first.query_one("#help-title", Static).render())
        descs = [r.description for r in first.rows]
        assert "Generate" in title and "Model Manager" not in title
        assert "Retry" not in descs and "Stop" in descs
        await pilot.press("f1")  # f1 again closes it
        await pilot.pause()
        assert not isinstance(app.screen, HelpModal)


async def test_rows_under_a_modal_wait_and_catch_up_on_resume(hub: FakeHub) -> None:
    """With help open the progress of a running download does not repaint the screen below
    (that re-composites the modal's backdrop); on esc the row shows the latest progress."""
    from distill_tui.screens.help import HelpModal

    core = make_core(hub, size=SIZE, sizes={"Q4_K_S": 2 * 1024 * 1024})
    hub.rate = 256 * 1024
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus_row(pilot, "Q4_K_S")
        row = screen(app).focused_row()
        await pilot.press("d")
        dm = app.downloads
        await wait_for(lambda: (ev := dm.status(row.key)) is not None and ev.bytes_done > 0)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        shown = row.event
        await wait_for(lambda: dm.status(row.key).bytes_done > shown.bytes_done + 256 * 1024)
        await pilot.pause()
        assert row.event is shown, "the row below the modal was updated"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.pause()
        assert row.event is not shown and row.event.bytes_done > shown.bytes_done
        final = await dm.wait(row.key)
        assert final.state == "done"


async def test_header_d_with_a_gated_vae_moves_no_byte(hub: FakeHub) -> None:
    """d on a card header asks the Hub about the whole set first: the gated VAE stops it
    before the diffusion model and the text encoder start (their rows stay as they were)."""
    core = make_core(hub, size=SIZE, gated_vae=True)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        scr = screen(app)
        card = scr.query_one(ModelCard)
        await pilot.press("d")
        await wait_for(lambda: card.vae_row.state == "failed")
        await pilot.pause()
        assert "HF_TOKEN" in str(card.vae_row.render())
        assert all(r.state == "missing" for r in card.rows if r is not card.vae_row)
        assert not [r for r in hub.cdn_requests() if r.method == "GET"], "bytes moved"
        assert {ev.key for ev in app.downloads.events()} == {card.vae_row.key}
