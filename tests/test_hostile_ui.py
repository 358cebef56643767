"""Hostile input reaching the screen (issue 11): escape injection from a catalog or a stored
prompt, a torn history file, a Generate screen after a failed save, doctor with an unknown
active model, a seed beyond the engine's range. Each case is listed in tests/HOSTILE.md."""

from __future__ import annotations

import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from distill_tui.app import DistillApp
from distill_tui.cli import main as cli_main
from distill_tui.display import STILL
from distill_tui.outputs import History, HistoryRecord
from distill_tui.textsafe import escape_markup, has_control, visible
from tests.catalog_raw import bundled_v2
from tests.gen_helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"

# What an attacker puts in a catalog or a prompt: a window title, a clipboard write (OSC 52),
# a C1 CSI (0x9b, one byte on an 8-bit terminal), a bell, and markup that broke Textual.
TITLE = "\x1b]0;pwned\x07"
OSC52 = "\x1b]52;c;cHduZWQ=\x07"
C1_CSI = "\x9b31m"
HOSTILE = f"{TITLE}{OSC52}{C1_CSI}\r[/][@click=app.quit]x[$error]y"
PAYLOADS = (b"\x1b]0;pwned", b"\x1b]52;", b"\xc2\x9b31m", b"]0;pwned\x07")


def hostile_catalog(app_paths) -> dict:
    """The bundled catalog plus one model whose every free-text field is hostile."""
    raw = bundled_v2()
    evil = json.loads(json.dumps(raw["models"][0]))
    evil["id"] = "evil-model"
    evil["name"] = f"Evil {HOSTILE}"
    evil["description"] = f"desc {HOSTILE}"
    evil["license"] = {"name": f"lic {HOSTILE}", "note": f"note {HOSTILE}"}
    evil["textEncoder"]["name"] = f"Qwen {HOSTILE}"
    q = evil["diffusion"]["quants"][0]
    q["label"] = f"Q {HOSTILE}"
    q["description"] = f"qd {HOSTILE}"
    q["id"] = f"Q{TITLE}"
    evil["recommended"].pop("diffusionQuant", None)
    for sec in ("diffusion", "textEncoder"):
        for qq in evil[sec]["quants"]:
            qq["file"] = "evil/" + qq["file"].rsplit("/", 1)[-1]
    evil["vae"]["file"] = "evil/ae.safetensors"
    raw["models"].append(evil)
    app_paths.config_dir.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(raw), "utf-8")
    return raw


def hostile_history(app_paths, images: list[str] | None = None) -> None:
    h = History(app_paths.history_file)
    h.add(
        HistoryRecord(
            model_id=f"m{TITLE}",
            diffusion_quant=f"Q{OSC52}",
            text_encoder_quant="[/]",
            params={"prompt": f"a cat {HOSTILE}", "width": 64, "height": 64},
            seed=3,
            images=images or [str(app_paths.data_dir / f"gone{TITLE}.png")],
        )
    )


def screen_text(app) -> str:
    """Every character the compositor would send for the current screen (all layers)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def assert_no_controls(text: str) -> None:
    bad = sorted({f"{ord(c):#04x}" for c in text if has_control(c) and c != "\n"})
    assert not bad, f"control characters reached the screen: {bad}"


# ---- the helper ------------------------------------------------------------------------


def test_visible_shows_every_control_character_and_nothing_else():
    assert visible("plain ÄÖ 日本 🙂 [b] \\") == "plain ÄÖ 日本 🙂 [b] \\"
    assert visible("\x1b]0;t\x07") == "\\x1b]0;t\\x07"
    assert visible("a\x9bb\x7fc\x00") == "a\\x9bb\\x7fc\\x00"
    assert visible("l1\nl2\tx\r") == "l1\\nl2\\tx\\r"
    assert visible("l1\nl2\tx\r", multiline=True) == "l1\nl2\tx\\r"
    assert visible("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert visible(b"caf\xc3".decode("utf-8", "surrogateescape")) == "caf\\xc3"
    once = visible(HOSTILE)
    assert visible(once) == once and not has_control(once)


def test_escape_markup_survives_textual_markup():
    from textual.content import Content

    for s in ("[/]", "[$error]x", "[B]x", "[ on red]y", "[@click=app.quit]z", "\\[b]", "end\\"):
        c = Content.from_markup(f"[b]{escape_markup(s)}[/b] tail")
        assert c.plain.replace("\u200b", "") == f"{s} tail", s


# ---- defect 3: escape injection -------------------------------------------------------


def _pty_env(tmp_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS="120")
    env.pop("NO_COLOR", None)
    return env


def run_in_pty(args: list[str], env: dict, keys: list[tuple[float, bytes]], timeout: float):
    """Run ``args`` on a pty (120x40); send ``keys`` (delay, bytes); return all output bytes."""
    master, slave = pty.openpty()
    import fcntl

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    end = time.monotonic() + timeout
    pending = list(keys)
    next_at = time.monotonic() + (pending[0][0] if pending else 0)
    try:
        while time.monotonic() < end:
            if pending and time.monotonic() >= next_at:
                os.write(master, pending.pop(0)[1])
                next_at = time.monotonic() + (pending[0][0] if pending else 0)
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None and not pending:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        os.close(master)
    return bytes(out), proc.returncode


def test_models_list_on_a_pty_sends_no_control_byte(app_paths, tmp_path):
    hostile_catalog(app_paths)
    out, rc = run_in_pty(
        [sys.executable, "-m", "distill_tui", "models", "list"], _pty_env(tmp_path), [], 60
    )
    assert rc == 0, out[-2000:]
    assert b"Evil" in out and b"evil-model" in out
    # `models list` draws nothing itself: no ESC, BEL or C1 byte may appear at all
    text = out.decode("utf-8", "surrogateescape")
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, text[-1500:]
    assert "\\x1b]0;pwned\\x07" in text  # shown, visibly


def test_cli_error_lines_show_outside_text_visibly(app_paths, capsys):
    hostile_catalog(app_paths)
    rc = cli_main(["models", "use", "evil-model", "--diffusion", f"X{TITLE}"])
    err = capsys.readouterr().err
    assert rc != 0 and "\x1b" not in err and "\x07" not in err
    assert "\\x1b]0;pwned" in err and err.count("\n") == 1


async def test_gallery_renders_hostile_prompt_without_control_characters(app_paths):
    hostile_history(app_paths)
    from tests.test_snapshots_generate import fake_ready_core

    app = DistillApp(fake_ready_core(), image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: getattr(app.screen, "records", None), 5)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "a cat" in text
        assert_no_controls(text)
        assert "\\x1b]0;pwned" in text  # shown, visibly
        await pilot.press("delete")  # the confirmation quotes the prompt too
        await pilot.pause(0.2)
        assert_no_controls(screen_text(app))


async def test_model_manager_renders_hostile_catalog(app_paths):
    hostile_catalog(app_paths)
    from textual.widgets._toast import Toast

    from distill_tui.context import CoreContext
    from distill_tui.widgets.model_card import ModelCard

    app = DistillApp(CoreContext.build(), image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 60), notifications=True, tooltips=True) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.screen.query(ModelCard), 10)
        card = app.screen.query_one("#card-evil-model", ModelCard)
        card.collapsed = False
        card.scroll_visible(animate=False)
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "Evil" in text and "Qwen" in text and "desc" in text
        assert_no_controls(text)
        # the command palette offers "Download recommended set for <name>"
        await pilot.press("ctrl+p")
        await pilot.pause(0.5)
        assert_no_controls(screen_text(app))
        await pilot.press(*"evil")
        await pilot.pause(0.5)
        text = screen_text(app)
        assert "recommended set for Evil" in text
        assert_no_controls(text)
        await pilot.press("escape")
        # the Generate screen's model selector lists it too, with a notification on top
        await pilot.press("f2")
        app.notify(f"server said {HOSTILE}", title=f"t {HOSTILE}")
        await pilot.pause(0.3)
        toasts = [t.render() for t in app.screen.query(Toast)]
        assert any("server said" in t.plain for t in toasts)
        assert_no_controls("".join(t.plain for t in toasts))
        app.screen.query_one("#model-select").focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "Evil" in text, text
        assert "[@click" in text and "\\[" not in text  # shown as typed, not as markup
        assert_no_controls(text)


@pytest.mark.slow
def test_tui_on_a_pty_never_sends_the_injected_sequences(app_paths, tmp_path):
    """The real TUI on a pty: Generate, Gallery (hostile prompt) and Model Manager (hostile
    catalog) drawn, then quit; the injected OSC/CSI payloads never appear in the output."""
    hostile_catalog(app_paths)
    hostile_history(app_paths)
    keys = [(4.0, b"\x1bOS"), (2.0, b"\x1bOR"), (2.0, b"\x10"), (1.0, b"evil"), (1.5, b"\x11")]
    out, _rc = run_in_pty(
        [sys.executable, "-m", "distill_tui", "--image-renderer", "halfcell"],
        _pty_env(tmp_path),
        keys,
        60,
    )
    assert b"Evil" in out or b"evil" in out, out[-3000:]
    for payload in PAYLOADS:
        assert payload not in out, payload


# ---- defect 4: torn history -----------------------------------------------------------


def _record(prompt: str) -> HistoryRecord:
    return HistoryRecord(
        model_id="flux2-klein-4b",
        diffusion_quant="Q4_K_S",
        text_encoder_quant="Q4_K_M",
        params={"prompt": prompt, "width": 64, "height": 64},
        seed=1,
        images=["/nonexistent/x.png"],
    )


def write_torn_history(path: Path) -> None:
    good1 = _record("first").model_dump_json().encode()
    good2 = _record("third").model_dump_json().encode()
    torn = _record("zweite Grüße").model_dump_json().encode("utf-8")
    torn = torn[: torn.index("ü".encode()) + 1]  # cut inside the two bytes of "ü"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good1 + b"\n" + torn + b"\n" + good2 + b"\n")


def test_history_skips_an_invalid_utf8_line_and_reports_it(app_paths):
    write_torn_history(app_paths.history_file)
    h = History(app_paths.history_file)
    assert [r.params["prompt"] for r in h.records()] == ["third", "first"]
    assert len(h.warnings) == 1 and "line 2" in h.warnings[0]


async def test_gallery_survives_a_torn_history(app_paths):
    write_torn_history(app_paths.history_file)
    from tests.test_snapshots_generate import fake_ready_core

    app = DistillApp(fake_ready_core(), image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause(0.3)
        assert app.is_running and app.screen.id != "_default"
        assert [r.params["prompt"] for r in app.screen.records] == ["third", "first"]
        status = str(app.screen.query_one("#gallery-status").render())
        assert "2 generations" in status and "line 2" in status
        assert "skipped" in status


def test_history_append_after_a_torn_tail_keeps_the_new_record(app_paths):
    """A record cut by a crash (no newline at the end) must not swallow the next one."""
    path = app_paths.history_file
    path.parent.mkdir(parents=True, exist_ok=True)
    whole = _record("first").model_dump_json().encode()
    path.write_bytes(whole + b"\n" + whole[:40])  # a torn last record, no newline
    h = History(path)
    h.add(_record("after the crash"))
    assert [r.params["prompt"] for r in h.records()] == ["after the crash", "first"]
    assert path.read_bytes().endswith(b"}\n")


def test_history_add_is_one_write_of_the_whole_line_and_synced(app_paths, monkeypatch):
    import distill_tui.outputs as outputs

    writes: list[bytes] = []
    synced: list[int] = []
    real_write, real_fsync = os.write, os.fsync

    def spy_write(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    def spy_fsync(fd):
        synced.append(fd)
        return real_fsync(fd)

    monkeypatch.setattr(outputs.os, "write", spy_write)
    monkeypatch.setattr(outputs.os, "fsync", spy_fsync)
    History(app_paths.history_file).add(_record("x" * 5000 + " ünïcode"))
    assert len(writes) == 1 and writes[0].endswith(b"}\n")
    assert synced


# ---- defect 6: Generate screen usable after a failed save ------------------------------


async def test_generate_screen_usable_after_output_dir_cannot_be_created(app_paths, tmp_path):
    from textual.widgets import TextArea

    from tests.test_generate_ui import FakeEngine, batch_files
    from tests.test_snapshots_generate import fake_ready_core

    core = fake_ready_core()
    files = batch_files(core, 1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    core.settings.update(output_dir=str(blocker / "sub"))  # mkdir -> ENOTDIR, even as root
    engines: list[FakeEngine] = []

    def factory(app):
        engines.append(FakeEngine(app, files))
        return engines[-1]

    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=factory
    )
    failures: list[tuple[str, str]] = []
    real_report = app.report_failure
    app.report_failure = lambda t, m: (failures.append((t, m)), real_report(t, m))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "a cat"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: failures, 5)
        await pilot.pause(0.2)
        svc = app.generation
        assert not svc.running, svc.job and svc.job.phase
        assert svc.job is not None and svc.job.phase == "failed"
        assert "a-file" in (svc.job.error or "") or "directory" in (svc.job.error or "")
        phase = str(app.screen.query_one("#gen-phase").render())
        assert "failed" in phase and "starting" not in phase
        assert app.screen.check_action("generate", ()) is True
        # fix the setting: the next ctrl+g runs
        core.settings.update(output_dir=str(tmp_path / "out"))
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: svc.job is not None and svc.job.phase == "done", 5)
        assert engines and engines[-1].requests


async def test_generate_screen_usable_after_any_unexpected_failure(app_paths):
    from textual.widgets import TextArea

    from tests.test_generate_ui import FakeEngine, batch_files
    from tests.test_snapshots_generate import fake_ready_core

    core = fake_ready_core()
    files = batch_files(core, 1)

    class Exploding(FakeEngine):
        calls = 0

        async def generate(self, load, gen):
            Exploding.calls += 1
            if Exploding.calls == 1:
                raise RuntimeError("engine pipe broke")
            return await super().generate(load, gen)

    app = DistillApp(
        core,
        image_renderer="halfcell",
        display_settings=STILL,
        engine_factory=lambda a: Exploding(a, files),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.query_one("#prompt", TextArea).text = "a cat"
        await pilot.press("ctrl+g")
        svc = app.generation
        await wait_for(pilot, lambda: svc.job is not None and not svc.running, 5)
        assert svc.job.phase == "failed" and "engine pipe broke" in (svc.job.error or "")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: svc.job is not None and svc.job.phase == "done", 5)


# ---- smaller ones: doctor with an unknown active model, --seed beyond range ----------


def test_doctor_with_an_active_model_not_in_the_catalog(app_paths, capsys, monkeypatch):
    from distill_tui.cli import doctor

    monkeypatch.setattr(doctor, "engine_info", lambda: {"ok": False, "error": "not probed"})
    app_paths.config_dir.mkdir(parents=True, exist_ok=True)
    app_paths.settings_file.write_text(json.dumps({"active_model_id": f"gone{TITLE}"}))
    rc = cli_main(["doctor"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Traceback" not in out.err
    row = next(line for line in out.out.splitlines() if line.startswith("model ready"))
    assert "not in the catalog" in row
    assert "\x1b" not in out.out + out.err


@pytest.mark.parametrize(
    ("seed", "why"),
    [(str(2**70), "too large"), (str(2**63), "too large"), ("-5", "≥ 0")],
)
def test_generate_refuses_a_seed_outside_the_engine_range(app_paths, capsys, seed, why):
    from tests.test_snapshots_generate import fake_ready_core

    fake_ready_core()
    rc = cli_main(["generate", "a cat", f"--seed={seed}"])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and "seed" in err and why in err, err


def test_seed_rule_is_shared_by_the_form_and_the_cli():
    from distill_tui.engine.protocol import MAX_SEED, seed_problem
    from distill_tui.generation import check_seed

    assert seed_problem(MAX_SEED) is None and seed_problem(-1) is None
    assert seed_problem(MAX_SEED + 1) and seed_problem(-2)
    assert seed_problem(MAX_SEED, batch_count=2)  # image 1 would use MAX_SEED + 1
    assert check_seed(str(MAX_SEED)) is None
    assert check_seed(str(MAX_SEED + 1)) == seed_problem(MAX_SEED + 1)


# ---- the download commands print outside names too -------------------------------------


def test_verify_and_clean_show_hostile_file_names_visibly(app_paths, capsys):
    """An inventory key from a hand-edited installed.json and a leftover whose name is not
    UTF-8 (read back with surrogateescape: printing it raised UnicodeEncodeError)."""
    from distill_tui.context import CoreContext

    core = CoreContext.build()
    core.inventory.record(f"evil{TITLE}.gguf", 3, None)  # recorded, not on disk
    models = core.inventory.models_dir
    (models / "sub").mkdir(parents=True, exist_ok=True)
    os.close(os.open(bytes(models / "sub") + b"/caf\xc3\x1b]0;x\x07.part", os.O_CREAT, 0o644))
    # a key with control characters is no path of ours (issue 19.5): ignored, said visibly
    assert cli_main(["models", "verify"]) == 0
    out = capsys.readouterr()
    assert "ignored" in out.err and "\\x1b]0;pwned\\x07" in out.err
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err
    assert cli_main(["models", "clean"]) == 0
    out = capsys.readouterr()
    assert "removed sub/caf\\xc3\\x1b]0;x\\x07.part" in out.out, out
    assert "\x1b" not in out.out + out.err
