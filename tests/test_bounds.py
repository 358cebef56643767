"""One bound per generation input (issue 19.12 and its NITs; issue 20 section 3): the same
out-of-range value gets the same decision and the same words from ``distill generate``,
``distill compare``, the Generate form and the settings, and never reaches the engine (the
protocol refuses it too, in the same words, as the last guard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from textual.widgets import Input, Static, TextArea

from distill_tui import bounds
from distill_tui.app import DistillApp
from distill_tui.cli import main
from distill_tui.display import STILL
from distill_tui.engine import client as engine_client
from distill_tui.engine.protocol import GenerateRequest, LoadRequest, dumps
from distill_tui.settings import SettingsStore
from tests.conftest import ROOT
from tests.gen_helpers import ready_core

BIG_PROMPT = "a cat " * 6999 + "a cat!"  # 42,000 bytes: the engine died of SIGSEGV at ~26,000
TOO_MANY_THREADS = 100_000  # SIGSEGV in the engine

#: (bound name, CLI flag, CLI text, the value, the form field) - each value out of range
CASES = [
    ("width", "--width", "8000", 8000, "width"),
    ("height", "--height", "72", 72, "height"),
    ("steps", "--steps", "500", 500, "steps"),
    ("cfg_scale", "--cfg", "inf", float("inf"), "cfg"),
    ("cfg_scale", "--cfg", "nan", float("nan"), "cfg"),
    ("n_threads", "--threads", str(TOO_MANY_THREADS), TOO_MANY_THREADS, "threads"),
    ("batch_count", "--batch", "17", 17, "batch"),
    ("negative_prompt", "--negative", BIG_PROMPT, BIG_PROMPT, "negative-prompt"),
]
IDS = [f"{c[0]}={c[2][:8]}" for c in CASES]


def reason(name: str, value) -> str:
    why = bounds.problem(name, value)
    assert why, (name, value)
    return why


@pytest.fixture
def no_engine(monkeypatch):
    """Any engine start fails the test: a refused value never reaches it."""
    started: list[str] = []

    async def start(self):
        started.append("start")
        raise AssertionError("the engine must not be started")

    monkeypatch.setattr(engine_client.EngineClient, "start", start)
    return started


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_the_table_words():
    """The words every surface shows (README "Bounds")."""
    assert bounds.problem("width", 8000) == "between 64 and 4096"
    assert bounds.problem("height", 72) == "a multiple of 16 (try 64 or 80)"
    assert bounds.problem("steps", 500) == "between 1 and 200"
    assert bounds.problem("cfg_scale", float("inf")) == "between 0 and 50"
    assert bounds.problem("n_threads", TOO_MANY_THREADS).startswith("-1 (auto) or between 1 and")
    assert bounds.problem("n_threads", -1) is None
    assert bounds.problem("n_threads", bounds.max_threads()) is None
    assert "too long: 42,000 bytes" in bounds.problem("prompt", BIG_PROMPT)
    assert bounds.problem("prompt", "é" * 4000) is None  # 8,000 bytes: the limit
    assert bounds.problem("prompt", "é" * 4001) is not None


@pytest.mark.parametrize(("name", "flag", "text", "value", "field"), CASES, ids=IDS)
def test_generate_and_compare_refuse_with_the_same_words(
    tiny_ready_model, no_engine, capsys, name, flag, text, value, field
):
    why = reason(name, value)
    rc, err = run_cli(capsys, "generate", "a cat", flag, text)
    assert rc == 1, err
    assert f"{flag} " in err and why in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if name != "batch_count":  # compare makes one image per cell
        rc, err = run_cli(capsys, "compare", "a cat", "--seed", "1", flag, text)
        assert rc == 1, err
        assert f"{flag} " in err and why in err, err
    assert no_engine == []


def test_prompt_too_long_is_refused_by_generate_and_compare(tiny_ready_model, no_engine, capsys):
    why = reason("prompt", BIG_PROMPT)
    for cmd in ("generate", "compare"):
        rc, err = run_cli(capsys, cmd, BIG_PROMPT)
        assert rc == 1 and why in err, err
        assert BIG_PROMPT[:200] not in err  # the prompt is named by its size, not echoed
    assert no_engine == []


#: valid values of the form's fields (each case then spoils one)
GOOD = {"width": "64", "height": "64", "steps": "2", "cfg": "1", "threads": "", "batch": "1"}
GOOD["negative-prompt"] = ""


class NoEngine:
    calls = 0

    def __call__(self, app):
        NoEngine.calls += 1
        raise AssertionError("the engine must not be used")


async def test_the_form_refuses_with_the_same_words(tiny_models):
    core = ready_core(tiny_models)
    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=NoEngine()
    )
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen.form
        app.screen.query_one("#prompt", TextArea).text = "a fox"
        for name, _flag, text, value, field in CASES:
            for good_field, good in GOOD.items():
                form.set_value(good_field, good)
            form.set_value(field, text)
            await pilot.press("ctrl+g")
            await pilot.pause()
            errors = str(app.screen.query_one("#form-errors", Static).render())
            label = bounds.BOUNDS[name].label
            assert f"{label}: {reason(name, value)}" in errors, (field, errors)
            assert app.generation.job is None
        # the prompt itself
        for good_field, good in GOOD.items():
            form.set_value(good_field, good)
        app.screen.query_one("#prompt", TextArea).text = BIG_PROMPT
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert f"Prompt: {reason('prompt', BIG_PROMPT)}" in errors
        assert app.generation.job is None and NoEngine.calls == 0


async def test_the_forms_inline_check_says_the_same(tiny_models):
    """A field turns invalid as it is typed, with the same line."""
    core = ready_core(tiny_models)
    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=NoEngine()
    )
    async with app.run_test(size=(120, 40)) as pilot:
        cfg = app.screen.query_one("#cfg", Input)
        cfg.value = "inf"
        await pilot.pause()
        result = cfg.validate(cfg.value)
        assert result is not None and not result.is_valid
        assert result.failure_descriptions == [f"CFG: {reason('cfg_scale', float('inf'))}"]


@pytest.mark.parametrize(
    ("key", "value", "name"),
    [
        ("width", 8000, "width"),
        ("height", 72, "height"),
        ("steps", 500, "steps"),
        ("threads", TOO_MANY_THREADS, "n_threads"),
        ("batch_count", 17, "batch_count"),
        ("negative_prompt", BIG_PROMPT, "negative_prompt"),
    ],
    ids=["width", "height", "steps", "threads", "batch", "negative"],
)
def test_settings_refuse_with_the_same_words(app_paths, key, value, name):
    """A generation default out of range in settings.json is refused (the file set aside,
    as for any invalid value) with the table's words; it never becomes a request."""
    app_paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.settings_file.write_text(json.dumps({"generation": {key: value}}), "utf-8")
    store = SettingsStore(app_paths)
    settings = store.load()
    assert getattr(settings.generation, key) != value
    assert len(store.warnings) == 1 and reason(name, value) in store.warnings[0]


def test_settings_refuse_cfg_inf(app_paths):
    """JSON has no inf: a value the settings are given in code (the Settings screen)."""
    from pydantic import ValidationError

    from distill_tui.settings import GenerationDefaults

    with pytest.raises(ValidationError) as e:
        GenerationDefaults(cfg_scale=float("inf"))
    assert reason("cfg_scale", float("inf")) in str(e.value)


@pytest.mark.parametrize(("name", "flag", "text", "value", "field"), CASES, ids=IDS)
def test_the_protocol_refuses_in_the_same_words(name, flag, text, value, field):
    """The last guard: a request that reaches the protocol with the value is invalid."""
    from pydantic import ValidationError

    kwargs = {"batch_count": 1, "prompt": "a cat", name: value}
    with pytest.raises(ValidationError) as e:
        if name == "n_threads":
            LoadRequest(diffusion_model_path="d", llm_path="l", vae_path="v", n_threads=value)
        else:
            GenerateRequest(**kwargs)
    assert reason(name, value) in str(e.value)


def test_the_real_child_refuses_an_out_of_range_request():
    """A client that skips every check still cannot make the engine run it: the child's
    parse refuses the line with the table's words (the library never sees it)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill_tui.engine.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert json.loads(proc.stdout.readline())["type"] == "ready"
        for field, value in (("width", 8000), ("prompt", "x" * 1_000_000)):
            line = json.loads(dumps(GenerateRequest(prompt="a cat")))
            line[field] = value
            proc.stdin.write(json.dumps(line) + "\n")
            proc.stdin.flush()
            ev = json.loads(proc.stdout.readline())
            assert ev["type"] == "error" and ev["kind"] == "bad_request", ev
            assert reason(field, value) in ev["message"], ev
        proc.stdin.write(json.dumps({"v": 1, "type": "shutdown"}) + "\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_the_longest_prompt_runs_even_with_a_small_stack(tiny_ready_model, tmp_path):
    """The limit has its margin: the longest prompt accepted, as one run of the characters
    sd.cpp's recursive regex eats one by one (the worst case), generates for real even when
    the shell's soft stack limit is 2 MB (the child raises its own; it died at 8 KB before)."""
    prompt = "x" * bounds.MAX_PROMPT_BYTES
    out = tmp_path / "long.png"
    argv = [sys.executable, "-m", "distill_tui", "generate", prompt, "--steps", "1", "-o", str(out)]
    argv += ["--width", "64", "--height", "64"]
    p = subprocess.run(
        ["bash", "-c", 'ulimit -S -s 2048 && exec "$@"', "bash", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.is_file()


async def test_the_settings_screen_says_the_same():
    """The Settings screen's generation defaults: typed out of range, the same words, and
    nothing saved."""
    from tests.test_settings_screen import make_app, open_settings, status

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        store = app.screen.core.settings
        for wid, text, name, value in (
            ("#gen-width", "8000", "width", 8000),
            ("#gen-height", "72", "height", 72),
            ("#gen-steps", "500", "steps", 500),
        ):
            app.screen.query_one(wid, Input).value = text
            await pilot.pause()
            assert reason(name, value) in status(app, "#gen-status"), wid
        assert store.settings.generation.width is None
        assert store.settings.generation.steps is None


def test_reuse_of_a_record_out_of_range_names_the_record(tiny_ready_model, no_engine, capsys):
    """``--reuse`` of a record whose width is out of range (a copied or crafted history):
    the same words, naming the record rather than a flag nobody typed."""
    from distill_tui.outputs import History, HistoryRecord
    from tests.engine_fixtures import TINY_MODEL_ID, TINY_QUANT

    rec = HistoryRecord(
        model_id=TINY_MODEL_ID,
        diffusion_quant=TINY_QUANT,
        text_encoder_quant=TINY_QUANT,
        params={"prompt": "a cat", "width": 8000, "height": 64, "steps": 2, "cfg_scale": 1.0},
        seed=3,
        images=[],
    )
    History(tiny_ready_model.paths.history_file).add(rec)
    rc, err = run_cli(capsys, "generate", "--reuse", "last")
    assert rc == 1, err
    assert f"record {rec.id[:12]}'s width 8000: {reason('width', 8000)}" in err, err
    # a flag typed over it is named as the flag
    rc, err = run_cli(capsys, "generate", "--reuse", "last", "--width", "4097")
    assert rc == 1 and "--width 4097: between 64 and 4096" in err, err
    assert no_engine == []


async def test_gallery_reuse_of_a_record_out_of_range_says_the_same(tiny_models):
    """The Gallery's ``r`` on the record ``--reuse`` refuses (issue 20: one reuse mapping):
    the form shows the record's width and refuses it in the same words; nothing starts."""
    from distill_tui.outputs import History, HistoryRecord
    from tests.gen_helpers import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT, wait_for

    core = ready_core(tiny_models)
    rec = HistoryRecord(
        model_id=MODEL_ID,
        diffusion_quant=DIFFUSION_QUANT,
        text_encoder_quant=TEXT_ENCODER_QUANT,
        params={"prompt": "a cat", "width": 8000, "height": 64, "steps": 2, "cfg_scale": 1.0},
        seed=3,
        images=[],
    )
    History(core.paths.history_file).add(rec)
    app = DistillApp(
        core, image_renderer="halfcell", display_settings=STILL, engine_factory=NoEngine()
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: getattr(app.screen, "selected", None) is not None, 10)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.query("#reuse-line"), 10)
        await pilot.pause(0.2)
        await pilot.press("ctrl+g")
        await pilot.pause()
        errors = str(app.screen.query_one("#form-errors", Static).render())
        assert f"Width: {reason('width', 8000)}" in errors, errors
        assert app.generation.job is None and NoEngine.calls == 0
