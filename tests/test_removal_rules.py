"""Removing files: the same rules through the TUI (del in the Model Manager) and the CLI
(`distill models remove`), from distill_tui/removal.py. Real files from the loopback Hub."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from distill_tui.app import DistillApp
from distill_tui.cli import main
from distill_tui.display import STILL
from distill_tui.downloads.lock import DestLock
from distill_tui.downloads.sidecar import lock_path
from distill_tui.screens.confirm import ConfirmModal

M4, M9 = "flux2-klein-4b", "flux2-klein-9b"
VAE = "vae/flux2-vae.safetensors"


def models_dir() -> Path:
    from distill_tui.paths import AppPaths

    return AppPaths.from_env().default_models_dir


def both_models_downloaded() -> None:
    """The CLI downloads both sets (a subprocess: the async tests run inside a loop)."""
    from tests.test_cli_models import distill

    for args in (("models", "download", M4), ("models", "download", M9, "--no-vae")):
        out = distill(*args)
        assert out.returncode == 0, out.stderr


async def focus(pilot, pred, tries: int = 40) -> None:
    scr = pilot.app.screen
    for _ in range(tries):
        row = scr.focused_row()
        if row is not None and pred(row):
            return
        await pilot.press("down")
    raise AssertionError("row not found")


def test_cli_keeps_a_shared_vae_unless_forced(hub_catalog, capsys):
    both_models_downloaded()
    capsys.readouterr()
    assert main(["models", "remove", M4, "--vae", "--yes"]) == 1
    out = capsys.readouterr().out
    assert "kept vae/flux2-vae.safetensors: also used by FLUX.2 Klein 9B" in out
    assert (models_dir() / VAE).exists()
    assert main(["models", "remove", M4, "--vae", "--yes", "--force"]) == 0
    assert not (models_dir() / VAE).exists()


async def test_tui_removes_a_shared_vae_only_after_naming_who_needs_it(hub_catalog):
    both_models_downloaded()
    app = DistillApp(hub_catalog.context(), display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await focus(pilot, lambda r: r.key == VAE)
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "FLUX.2 Klein 9B will not be Ready" in body
        await pilot.press("n")
        await pilot.pause()
        assert (models_dir() / VAE).exists()
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not (models_dir() / VAE).exists()


def test_cli_skips_a_file_another_process_is_downloading(hub_catalog, capsys):
    both_models_downloaded()
    rel = "diffusion/flux-2-klein-9b-Q4_K_S.gguf"
    lock = DestLock(lock_path(models_dir() / rel))
    assert lock.try_acquire()  # "another process" holds the download lock
    try:
        capsys.readouterr()
        assert main(["models", "remove", M9, "--diffusion", "Q4_K_S", "--yes"]) == 1
        assert "being downloaded by another distill process" in capsys.readouterr().out
        assert (models_dir() / rel).exists()
    finally:
        lock.release()


async def test_tui_skips_a_file_another_process_is_downloading(hub_catalog):
    both_models_downloaded()
    rel = "diffusion/flux-2-klein-9b-Q4_K_S.gguf"
    core = hub_catalog.context()
    core.settings.update(active_model_id=M4)
    app = DistillApp(core, display_settings=STILL)
    lock = DestLock(lock_path(models_dir() / rel))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("f3")
        scr = app.screen
        nine = next(c for c in scr.cards if c.model.id == M9)
        nine.collapsed = False
        await pilot.pause()
        assert lock.try_acquire()
        try:
            await focus(pilot, lambda r: r.key == rel, tries=60)
            await pilot.press("delete")
            await pilot.pause()
            await pilot.press("y")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert (models_dir() / rel).exists()
            assert any("being downloaded" in str(n.message) for n in app._notifications)
        finally:
            lock.release()
