"""The Settings screen (F5, issue 13.6) and gated-repo advice that works in a running TUI
(issue 13.7).

Pilot tests: the Model Directory is refused when relative, a regular file, not creatable or
not writable (with the reason on screen); a good one is saved at once, the one Inventory
follows it and so does the Model Manager's directory line; downloaded files are moved (same
filesystem) or left; never while a download runs. The output directory, connections,
generation defaults, renderer and theme save at once. The token status says where the token
comes from and never shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Input, Select, Static

from distill_tui.app import DistillApp
from distill_tui.context import CoreContext
from distill_tui.display import STILL
from distill_tui.paths import AppPaths
from tests.test_snapshots_models import StubDownloads

K4 = "flux2-klein-4b"


def screen_text(app: DistillApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def make_core(**settings: Any) -> CoreContext:
    paths = AppPaths.from_env()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    data = {"schema_version": 1, "model_base_path": "~/models", **settings}
    paths.settings_file.write_text(json.dumps(data))
    return CoreContext.build(paths)


class BusyDownloads(StubDownloads):
    """A registry with one download running."""

    def unfinished(self) -> list[tuple[str, str, str | None]]:
        return [(K4, "vae", None)]

    def key_for(self, model_id: str, component: str, quant_id: str | None = None) -> str:
        return "vae/flux2-vae.safetensors"


def make_app(core: CoreContext | None = None, *, busy: bool = False) -> DistillApp:
    core = core or make_core()
    stub = BusyDownloads([]) if busy else StubDownloads([])
    return DistillApp(core, downloads_factory=lambda app: stub, display_settings=STILL)


def put_vae(core: CoreContext) -> Path:
    vae = core.catalog.require(K4).vae
    path = core.inventory.abs_path(vae.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(vae.size)
    core.inventory.record(vae.file, vae.size, None)
    return path


def status(app: DistillApp, wid: str) -> str:
    return str(app.screen.query_one(wid, Static).render())


async def enter_dir(pilot, wid: str, text: str) -> None:
    inp = pilot.app.screen.query_one(wid, Input)
    inp.focus()
    inp.value = text
    await pilot.pause()
    await pilot.press("enter")
    for _ in range(20):
        await pilot.pause(0.02)


async def open_settings(pilot) -> None:
    await pilot.pause()
    await pilot.press("f5")
    await pilot.pause()


# ---- the Model Directory -----------------------------------------------------------------


async def test_relative_model_dir_is_refused_with_a_reason() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        before = app.core.settings.settings.model_base_path
        await enter_dir(pilot, "#models-dir", "models/here")
        text = status(app, "#models-dir-status")
        assert "relative path" in text and "absolute" in text
        assert app.core.settings.settings.model_base_path == before
        assert "relative path" in screen_text(app)


async def test_a_regular_file_or_an_unwritable_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        before = app.core.settings.settings.model_base_path
        await enter_dir(pilot, "#models-dir", str(afile))
        assert "exists and is not a directory" in status(app, "#models-dir-status")
        await enter_dir(pilot, "#models-dir", str(afile / "sub"))
        assert "cannot create" in status(app, "#models-dir-status")
        # (tests may run as root, where a mode cannot make a directory unwritable)
        monkeypatch.setattr("distill_tui.dirs.writable_problem", lambda p: "Permission denied")
        await enter_dir(pilot, "#models-dir", str(tmp_path / "locked"))
        text = status(app, "#models-dir-status")
        assert "cannot write in" in text and "Permission denied" in text
        assert app.core.settings.settings.model_base_path == before
        assert app.core.inventory.models_dir == Path.home() / "models"


async def test_a_good_model_dir_is_saved_and_the_model_manager_follows(tmp_path: Path) -> None:
    from distill_tui.downloads import DownloadManager

    app = make_app()
    core = app.core
    manager = DownloadManager(core.catalog, core.settings, core.inventory, io_thread=False)
    new = tmp_path / "big-volume" / "models"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")  # the Model Manager exists before the change
        await pilot.pause()
        line = str(app.screen.query_one("#models-dir-line", Static).render())
        assert "~/models" in line
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(new))
        assert new.is_dir()
        assert app.core.settings.settings.model_base_path == str(new)
        on_disk = json.loads(app.core.paths.settings_file.read_text())
        assert on_disk["model_base_path"] == str(new)
        assert app.core.inventory.models_dir == new
        assert "saved" in status(app, "#models-dir-status")
        await pilot.press("f3")
        await pilot.pause()
        line = str(app.screen.query_one("#models-dir-line", Static).render())
        assert str(new) in line
        # a download service built before the change holds the same inventory: it writes
        # to the new directory now (the App's own is built the same way)
        assert manager.inventory.models_dir == new
        assert manager.inventory.abs_path("vae/x") == new / "vae" / "x"
        await manager.aclose()


async def test_tilde_is_kept_and_expanded() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", "~/elsewhere/models")
        assert app.core.settings.settings.model_base_path == "~/elsewhere/models"
        assert app.core.inventory.models_dir == Path.home() / "elsewhere" / "models"


async def test_downloaded_files_are_moved_on_the_same_filesystem(tmp_path: Path) -> None:
    from distill_tui.screens.models_dir_modal import ModelsDirModal

    core = make_core()
    old_file = put_vae(core)
    vae = core.catalog.require(K4).vae
    app = make_app(core)
    new = tmp_path / "moved"
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(new))
        assert isinstance(app.screen, ModelsDirModal)
        assert "Move them" in screen_text(app)
        await pilot.press("m")
        for _ in range(20):
            await pilot.pause(0.02)
        assert not old_file.exists()
        assert (new / vae.file).is_file()
        assert core.inventory.models_dir == new
        assert core.inventory.is_present(vae.file)  # its record moved too: no re-download
        assert "moved 1 file" in status(app, "#models-dir-status")


async def test_leave_them_moves_nothing_and_cancel_keeps_the_old_dir(tmp_path: Path) -> None:
    from distill_tui.screens.models_dir_modal import ModelsDirModal

    core = make_core()
    old_file = put_vae(core)
    vae = core.catalog.require(K4).vae
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(tmp_path / "kept"))
        assert isinstance(app.screen, ModelsDirModal)
        await pilot.press("escape")  # cancel
        for _ in range(10):
            await pilot.pause(0.02)
        assert core.settings.settings.model_base_path == "~/models"
        assert app.screen.query_one("#models-dir", Input).value == "~/models"
        assert "not changed" in status(app, "#models-dir-status")
        await enter_dir(pilot, "#models-dir", str(tmp_path / "fresh"))
        await pilot.press("l")  # leave them
        for _ in range(20):
            await pilot.pause(0.02)
        assert old_file.is_file()
        assert core.inventory.models_dir == tmp_path / "fresh"
        assert not core.inventory.is_present(vae.file)
        assert "empty: F3 to download" in status(app, "#models-dir-status")


async def test_move_is_only_offered_on_the_same_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distill_tui.screens.models_dir_modal import ModelsDirModal

    core = make_core()
    old_file = put_vae(core)
    monkeypatch.setattr("distill_tui.screens.settings.same_filesystem", lambda a, b: False)
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(tmp_path / "other-fs"))
        assert isinstance(app.screen, ModelsDirModal)
        shown = " ".join(screen_text(app).split())
        assert "Move is only offered on the same filesystem" in shown
        assert "Move them (m)" not in shown
        await pilot.press("m")  # nothing
        await pilot.pause()
        assert isinstance(app.screen, ModelsDirModal)
        await pilot.press("l")
        for _ in range(20):
            await pilot.pause(0.02)
        assert old_file.is_file()
        assert core.inventory.models_dir == tmp_path / "other-fs"


async def test_no_change_while_a_download_runs(tmp_path: Path) -> None:
    app = make_app(busy=True)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.downloads.unfinished()  # (made on first use, as a download starts it)
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(tmp_path / "new"))
        text = status(app, "#models-dir-status")
        assert "download running" in text and "finished or cancelled" in text
        assert app.core.settings.settings.model_base_path == "~/models"
        assert not (tmp_path / "new").exists()


async def test_a_file_already_at_the_new_place_is_announced(tmp_path: Path) -> None:
    core = make_core()
    vae = core.catalog.require(K4).vae
    new = tmp_path / "prepared"
    (new / vae.file).parent.mkdir(parents=True)
    (new / vae.file).write_bytes(b"not verified yet")
    app = make_app(core)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#models-dir", str(new))
        assert "1 model file(s) found here: d on their rows verifies them" in status(
            app, "#models-dir-status"
        )
        assert not core.inventory.is_present(vae.file)  # verified on d, not trusted


# ---- the other fields --------------------------------------------------------------------


async def test_output_dir_is_checked_and_saved(tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        await enter_dir(pilot, "#output-dir", "pictures")
        assert "relative path" in status(app, "#output-dir-status")
        assert app.core.settings.settings.output_dir is None
        await enter_dir(pilot, "#output-dir", str(tmp_path / "pics"))
        assert app.core.settings.settings.output_dir == str(tmp_path / "pics")
        assert app.core.settings.outputs_dir == tmp_path / "pics"
        assert "new images go here" in status(app, "#output-dir-status")


async def test_connections_and_generation_defaults_save_at_once() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        store = app.core.settings
        conn = app.screen.query_one("#connections", Input)
        conn.value = "40"
        await pilot.pause()
        assert "between 1 and 32" in status(app, "#connections-status")
        assert store.settings.connections_per_file == 8
        conn.value = "12"
        await pilot.pause()
        assert store.settings.connections_per_file == 12
        assert json.loads(store.path.read_text())["connections_per_file"] == 12
        width = app.screen.query_one("#gen-width", Input)
        width.value = "100"
        await pilot.pause()
        assert "Width" in status(app, "#gen-status")
        assert store.settings.generation.width is None
        width.value = "768"
        await pilot.pause()
        assert store.settings.generation.width == 768
        app.screen.query_one("#gen-steps", Input).value = "8"
        await pilot.pause()
        assert store.settings.generation.steps == 8
        width.value = ""
        await pilot.pause()
        assert store.settings.generation.width is None  # back to the model's own
        app.screen.query_one("#gen-sampler", Select).value = "dpm++2m"
        await pilot.pause()
        assert store.settings.generation.sampler == "dpm++2m"


async def test_renderer_and_theme_save_and_apply() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        app.screen.query_one("#renderer", Select).value = "unicode"
        await pilot.pause()
        assert app.image_renderer == "unicode"
        assert app.core.settings.settings.image_renderer == "unicode"
        app.screen.query_one("#theme", Select).value = "nord"
        await pilot.pause()
        assert app.theme == "nord"
        assert app.core.settings.settings.theme == "nord"
    # the next start uses the saved theme
    again = make_app(CoreContext.build(AppPaths.from_env()))
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "nord"


async def test_settings_is_in_the_palette_and_f1() -> None:
    from distill_tui.screens.settings import SettingsScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Settings" in titles
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Settings")
        cmd.callback()
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert "Settings" in screen_text(app)


# ---- the token: where from, never its value ----------------------------------------------

SECRET = "hf_ThisIsNotARealTokenButSecret123"


def assert_secret_absent(app: DistillApp) -> None:
    shown = screen_text(app)
    assert SECRET not in shown and SECRET[:12] not in shown
    for widget in app.screen.query(Static):
        assert SECRET not in str(widget.render())


async def test_token_from_env_is_named_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    app = make_app()
    async with app.run_test(size=(120, 60)) as pilot:
        await open_settings(pilot)
        text = status(app, "#token-status")
        assert "present" in text and "HF_TOKEN environment variable" in text
        hint = " ".join(status(app, "#token-hint").split())
        assert "hf auth login in another shell" in hint
        assert "seen only after a restart" in hint
        assert_secret_absent(app)


async def test_token_from_file_is_named_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "home" / ".cache" / "huggingface" / "token"
    token_file.parent.mkdir(parents=True)
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    app = make_app()
    async with app.run_test(size=(120, 60)) as pilot:
        await open_settings(pilot)
        assert "none" in status(app, "#token-status")
        # `hf auth login` in another shell: seen within a couple of seconds, no restart
        token_file.write_text(SECRET + "\n")
        app.screen._sync_token()  # (the 2 s tick)
        await pilot.pause()
        text = status(app, "#token-status")
        assert "present" in text and "~/.cache/huggingface/token" in text
        assert "HF_TOKEN_PATH" in text
        assert_secret_absent(app)


# ---- gated advice (issue 13.7) -----------------------------------------------------------


def gated_message(url: str, token: str | None) -> str:
    from distill_tui.downloads.hub import hub_error

    resp = httpx.Response(
        401, headers={"x-error-code": "GatedRepo"}, request=httpx.Request("HEAD", url)
    )
    return str(hub_error(resp, url, token))


class Failed:
    def __init__(self, error: str, kind: str = "gated") -> None:
        self.error, self.error_kind = error, kind


@pytest.mark.parametrize(
    "host", ["https://huggingface.co", "http://127.0.0.1:8765", "https://hf-mirror.example"]
)
def test_gated_advice_links_huggingface_co_and_tells_the_two_cases_apart(host: str) -> None:
    from distill_tui.catalog import CatalogFile
    from distill_tui.widgets.file_status import error_text

    repo = "black-forest-labs/FLUX.2-dev"
    url = f"{host}/{repo}/resolve/main/vae/diffusion_pytorch_model.safetensors"
    file = CatalogFile(file="vae/ae.safetensors", size=1000, downloadUrl=url)
    no_token = error_text(Failed(gated_message(url, None)), file)
    not_approved = error_text(Failed(gated_message(url, "hf_x")), file)
    for text in (no_token, not_approved):
        assert f"https://huggingface.co/{repo}" in text
        if host != "https://huggingface.co":
            assert host not in text  # never the HF_ENDPOINT mirror
        assert "`hf auth login` in another shell, then press r" in text
        assert "re-reads the token file" in text
        assert "new HF_TOKEN environment variable needs a restart" in text
        assert "rerun" not in text and "export" not in text
    assert "no Hugging Face token" in no_token and "not approved" not in no_token
    assert "not approved" in not_approved and "no Hugging Face token" not in not_approved
    assert no_token != not_approved


def test_gated_advice_for_a_file_whose_every_source_is_gated() -> None:
    from distill_tui.catalog import CatalogFile
    from distill_tui.widgets.file_status import error_text

    a = "https://huggingface.co/org-a/repo-a/resolve/main/f.bin"
    b = "https://huggingface.co/org-b/repo-b/resolve/main/f.bin"
    err = (
        f"no source could serve f.bin (2 tried) — org-a/repo-a: {gated_message(a, None)}; "
        f"org-b/repo-b: {gated_message(b, None)}"
    )
    file = CatalogFile(file="f.bin", size=10, downloadUrl=a)
    text = error_text(Failed(err), file)
    assert "https://huggingface.co/org-a/repo-a" in text
    assert "https://huggingface.co/org-b/repo-b" in text
    assert "hf auth login" in text
    mixed = error_text(Failed(f"no source could serve f.bin — {err}", kind="sources"), file)
    assert "For the gated one" in mixed and "hf auth login" in mixed
