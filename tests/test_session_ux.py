"""Issue 22 (the SSH session, round 2): items 6, 8, 9, 10, 12 through the surfaces a person
meets — the TUI by keys (Pilot), the CLI in process, the terminal probe on a real pty."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from textual.widgets import Input, TextArea

from distill_tui import selfcmd
from distill_tui.app import DistillApp
from distill_tui.display import STILL
from distill_tui.outputs import History, HistoryRecord
from distill_tui.screens.help import HelpModal
from distill_tui.screens.quit import QuitModal
from distill_tui.widgets.image_view import ImageView
from tests.gen_helpers import wait_for
from tests.test_generate_ui import FakeEngine, batch_files
from tests.test_snapshots_generate import MODEL_ID, fake_ready_core

DATA = Path(__file__).parent / "data"


def make_app(core, files, hold: float = 0.0) -> DistillApp:
    return DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        engine_factory=lambda a: FakeEngine(a, files, hold=hold),
    )


# ---- item 9: keys -------------------------------------------------------------------------
async def test_image_keys_work_from_a_text_field_and_type_nothing(isolated_dirs):
    core = fake_ready_core()
    files = batch_files(core, 3)
    app = make_app(core, files)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "three cats"
        app.screen.query_one("#batch", Input).value = "3"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: not app.generation.running, 10)
        await pilot.pause()
        view = app.screen.query_one("#image-view", ImageView)
        assert view.index == 2
        seed = app.screen.query_one("#seed", Input)
        seed.focus()
        await pilot.pause()
        await pilot.press("alt+left")
        assert view.index == 1
        await pilot.press("alt+right", "alt+right")
        assert view.index == 0  # wraps
        assert seed.value == ""  # nothing was typed into the focused field
        # F1 names the keys as typed, never Textual's names
        await pilot.press("f1")
        await pilot.pause()
        help_modal = app.screen
        assert isinstance(help_modal, HelpModal)
        keys = [r.key for r in help_modal.rows]
        assert not any("square_bracket" in k for k in keys), keys
        assert "alt+←" in keys and "alt+→" in keys, keys


async def test_help_shows_brackets_as_typed(isolated_dirs):
    core = fake_ready_core()
    History(core.paths.history_file).add(_record(core, batch_files(core, 1)[0]))
    app = make_app(core, [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        keys = [r.key for r in app.screen.rows]
        assert "[" in keys and "]" in keys, keys


async def test_ctrl_q_during_a_generation_asks(isolated_dirs):
    core = fake_ready_core()
    files = batch_files(core, 1)
    app = make_app(core, files, hold=30)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.generation.running, 5)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, QuitModal)
        body = str(app.screen.query_one("#quit-body").render())
        assert "generation is running" in body
        assert not app.screen.query("#quit-keep")  # no downloads: nothing to keep going
        await pilot.press("escape")  # stay
        await pilot.pause()
        assert not isinstance(app.screen, QuitModal) and app.is_running
        assert app.generation.running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("s")  # stop it and quit
        await wait_for(pilot, lambda: not app.is_running, 10)


# ---- item 10: what you come back to -------------------------------------------------------
def _record(core, image: Path, prompt: str = "an old record") -> HistoryRecord:
    return HistoryRecord(
        model_id=MODEL_ID,
        diffusion_quant="Q4_K_S",
        text_encoder_quant="Q4_K_M",
        params=dict(prompt=prompt, width=64, height=64, steps=4, seed=-1, batch_count=1),
        seed=4242,
        images=[str(image)],
    )


async def test_a_restart_brings_back_the_form_and_the_last_image(isolated_dirs):
    core = fake_ready_core()
    files = batch_files(core, 1)
    app = make_app(core, files)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "a lighthouse at dusk"
        app.screen.query_one("#width", Input).value = "768"
        app.screen.query_one("#height", Input).value = "512"
        app.screen.query_one("#seed", Input).value = "99"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: not app.generation.running, 10)
    # the engine client writes history; the fake does not: as the real one would
    History(core.paths.history_file).add(_record(core, files[0], "a lighthouse at dusk"))

    again = make_app(fake_ready_core(), [])
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = again.screen
        assert screen.query_one("#prompt", TextArea).text == "a lighthouse at dusk"
        assert screen.query_one("#width", Input).value == "768"
        assert screen.query_one("#height", Input).value == "512"
        assert screen.query_one("#seed", Input).value == "99"
        view = screen.query_one("#image-view", ImageView)
        await wait_for(pilot, lambda: view.current is not None, 5)
        assert view.current.path == str(files[0])
        assert "seed 4242" in view.current.caption


async def test_a_broken_form_file_is_ignored(isolated_dirs):
    core = fake_ready_core()
    core.paths.state_dir.mkdir(parents=True, exist_ok=True)
    (core.paths.state_dir / "last-form.json").write_text('{"width": "abc"')
    app = make_app(core, [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#prompt", TextArea).text == ""
        assert "No image yet" in app.screen.query_one(ImageView).placeholder


# ---- item 12: the picture off the box -----------------------------------------------------
async def test_copy_the_scp_line_over_ssh(isolated_dirs, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.7 51000 198.51.100.4 2222")
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("LOGNAME", "ada")
    core = fake_ready_core()
    files = batch_files(core, 1)
    app = make_app(core, files)
    toasts: list[str] = []
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("ctrl+f")  # nothing to copy yet: says so
        await pilot.pause()
        assert app.clipboard == ""
        app.screen.query_one("#prompt", TextArea).text = "x"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: not app.generation.running, 10)
        await pilot.pause()
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert app.clipboard == f"scp -P 2222 ada@198.51.100.4:{files[0]} ."
        toasts = [n.message for n in app._notifications]
        assert any("Copied" in t and str(files[0]) in t for t in toasts), toasts


async def test_copy_the_path_locally_and_from_the_gallery(isolated_dirs, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    core = fake_ready_core()
    image = batch_files(core, 1)[0]
    History(core.paths.history_file).add(_record(core, image))
    app = make_app(core, [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == str(image)


# ---- item 6: the command that works -------------------------------------------------------
def _script(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("#!/bin/sh\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def test_distill_is_named_by_the_command_a_new_shell_finds(tmp_path, monkeypatch):
    mine = _script(tmp_path / "venv" / "bin", "distill")
    other = _script(tmp_path / "elsewhere", "distill")
    monkeypatch.setattr(sys, "argv", [str(mine)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert selfcmd.distill_command() == str(mine)  # not on PATH: the absolute path
    monkeypatch.setenv("PATH", f"{other.parent}:/usr/bin")
    assert selfcmd.distill_command() == str(mine)  # another installation: ours, by path
    monkeypatch.setenv("PATH", f"{mine.parent}:/usr/bin")
    assert selfcmd.distill_command() == "distill"


async def test_messages_name_the_working_command(tmp_path, isolated_dirs, monkeypatch, capsys):
    mine = _script(tmp_path / "venv" / "bin", "distill")
    monkeypatch.setattr(sys, "argv", [str(mine)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    dialog = QuitModal(["a/b.gguf"])
    app = make_app(fake_ready_core(), [])
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(dialog)
        await pilot.pause()
        body = str(dialog.query_one("#quit-body").render())
        assert f"{mine} models status" in body
        assert "`distill " not in body
        await pilot.press("escape")
        await pilot.press("f5")
        await pilot.pause()
        text = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert f"{mine} generate" in text
    from distill_tui.cli.downloads import detached_message

    assert f"{mine} models status --watch" in detached_message(1234, Path("/x.log"))


# ---- item 8: colour depth -----------------------------------------------------------------
def test_a_terminal_that_answers_the_truecolor_query_gets_truecolor(monkeypatch):
    import tests.test_image_probe as probe_tests
    from tests.test_image_probe import run_probe

    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")  # as over ssh (not the Linux console)
    monkeypatch.setattr(
        probe_tests,
        "CHILD",
        probe_tests.CHILD.replace(
            '"cell": [size.width, size.height]}',
            '"cell": [size.width, size.height], "colorterm": __import__("os").environ.get('
            '"COLORTERM"), "colour_why": image_probe.colour_depth()[1]}',
        ),
    )
    yes = run_probe(
        {
            # (answered in the order asked: the truecolor question goes out first)
            b"\x1bP+q524742": b"\x1bP1+r524742=382F382F38\x1b\\",
            b"\x1b[c": b"\x1b[?62;22c",
            b"\x1b[16t": b"\x1b[6;18;9t",
        }
    )
    assert yes["colorterm"] == "truecolor", yes
    assert "terminal answered" in yes["colour_why"]
    no = run_probe({b"\x1b[c": b"\x1b[?62;22c", b"\x1b[16t": b"\x1b[6;18;9t"})
    assert no["colorterm"] is None, no


def test_doctor_names_the_colour_depth_and_renderer(isolated_dirs, monkeypatch, capsys):
    from distill_tui.cli import main

    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr("distill_tui.cli.doctor.engine_info", lambda timeout=30.0: {})
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "colours" in out and "truecolor (COLORTERM=truecolor)" in out
    assert "image renderer" in out


# ---- item 9: F5 and esc in the footer -----------------------------------------------------
def _footer_keys(app: DistillApp) -> list[str]:
    from textual.widgets._footer import FooterKey

    return [k.key for k in app.screen.query(FooterKey)]


async def test_the_footer_shows_f5_where_it_fits_and_esc_on_settings(isolated_dirs):
    app = make_app(fake_ready_core(), [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "f5" in _footer_keys(app)
        await pilot.press("f5")
        await pilot.pause()
        assert "escape" in _footer_keys(app)  # esc goes back: said where it works
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        keys = _footer_keys(app)
        assert "f5" not in keys and "escape" in keys  # 80 columns: no room for F5
        await pilot.press("escape")
        await pilot.pause()
        assert "f5" not in _footer_keys(app)


async def test_forcing_sixel_inside_tmux_warns(isolated_dirs, monkeypatch):
    from textual.widgets import Select

    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    app = make_app(fake_ready_core(), [])
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        app.screen.query_one("#renderer", Select).value = "sixel"
        await pilot.pause()
        facts = str(app.screen.query_one("#display-facts").render())
        assert "inside tmux" in facts
        assert any("tmux" in n.message for n in app._notifications)
