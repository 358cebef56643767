"""One recipe (issue 20): every generation parameter and engine knob is one ``recipe.PARAMS``
row, and every surface reads it.

* ``distill generate --reuse ID`` and the Gallery's ``r`` on a record holding engine knobs,
  LoRAs, an init image, reference images and a batch build the same recipe, and the engine
  receives the same requests (the engine client is the boundary: its ``generate`` is
  recorded, nothing runs);
* a table test walks ``PARAMS``: a CLI flag, a form field (or hidden), a PNG label, and
  record -> Recipe -> record is identity;
* a grep: a knob's other spellings (its flag, its settings key, its JSON key, its label) live
  in recipe.py, the engine protocol and the child only;
* ``distill compare -o SHEET`` never replaces a FIFO, a device or an existing file (issue
  19.1), as ``distill generate -o``.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from distill_tui.engine.client import EngineClient
from distill_tui.engine.protocol import ImageEvent, Timings
from distill_tui.outputs import History, HistoryRecord, format_parameters
from distill_tui.recipe import KNOBS, PARAMS, Recipe, knob_values
from tests.gen_helpers import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT, ready_core, wait_for
from tests.test_engine_knobs import write_tiny_lora

ROOT = Path(__file__).resolve().parent.parent


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), colour).save(path)
    return path


def _record(core, tmp_path: Path) -> HistoryRecord:
    """A record of an img2img + edit + LoRA batch made with non-default engine knobs."""
    lora_dir = core.settings.lora_dir
    write_tiny_lora(lora_dir / "tinystyle.safetensors")
    init = _png(tmp_path / "in" / "start.png", (200, 10, 10))
    ref = _png(tmp_path / "in" / "ref.png", (10, 200, 10))
    made = _png(core.settings.outputs_dir / "made.png", (1, 2, 3))
    params = {
        "prompt": "a red fox, oil",
        "negative_prompt": "blurry",
        "width": 64,
        "height": 80,
        "steps": 3,
        "cfg_scale": 1.5,
        "sampler": "heun",
        "scheduler": "karras",
        "seed": 77,
        "batch_count": 2,
        "ref_images": [str(ref)],
        "init_image": str(init),
        "strength": 0.4,
        "loras": [{"name": "tinystyle", "path": "x", "weight": 0.6}],
        "vae_tiling": True,
        "flash_attn": False,
        "offload_to_cpu": True,
        "keep_clip_on_cpu": True,
        "keep_vae_on_cpu": False,
        "n_threads": 1,
        # the engine's own knobs (issue 20.4): advanced fields, restored like every row
        "cache_mode": "easycache",
        "cache_threshold": 0.3,
        "flow_shift": 2.0,
        "max_vram": 4.0,
        "diffusion_conv_direct": True,
        "model_id": MODEL_ID,
        "diffusion_quant": DIFFUSION_QUANT,
        "text_encoder_quant": TEXT_ENCODER_QUANT,
    }
    rec = HistoryRecord(
        model_id=MODEL_ID,
        diffusion_quant=DIFFUSION_QUANT,
        text_encoder_quant=TEXT_ENCODER_QUANT,
        params=params,
        seed=77,
        images=[str(made)],
    )
    History(core.paths.history_file).add(rec)
    return rec


class _Recorder:
    """EngineClient.generate, recorded: the requests the engine would receive."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def __call__(self, client, load, gen):  # noqa: ANN001
        self.calls.append((load, gen))
        img = ImageEvent(path="/nonexistent.png", seed=gen.seed, width=64, height=64, index=0)
        return SimpleNamespace(
            images=[img], paths=[img.path], seed=gen.seed, timings=Timings(), wall=0.0,
            history_id=None,
        )  # fmt: skip


def _comparable(load, gen) -> tuple[dict, dict]:
    skip = {"id", "preview", "preview_interval", "output_dir", "output_file", "output_overwrite"}
    return load.model_dump(), gen.model_dump(exclude=skip)


def _recipe_of(load, gen) -> Recipe:
    return Recipe.from_record({**gen.model_dump(), **knob_values(load)})


@pytest.mark.slow
async def test_cli_reuse_and_gallery_r_build_the_same_recipe_and_requests(
    tiny_models, tmp_path, monkeypatch
):
    from distill_tui.app import DistillApp
    from distill_tui.cli import main
    from distill_tui.display import STILL

    core = ready_core(tiny_models)  # settings: flash on, threads 2, no tiling
    rec = _record(core, tmp_path)
    want = Recipe.from_record(rec.params, rec.seed)
    recorder = _Recorder()

    async def generate(client, load, gen):  # noqa: ANN001
        return await recorder(client, load, gen)

    monkeypatch.setattr(EngineClient, "generate", generate)

    argv = ["generate", "--reuse", rec.id[:8], "--quiet"]
    assert await asyncio.to_thread(main, argv) == 0
    cli_load, cli_gen = recorder.calls[-1]
    assert _recipe_of(cli_load, cli_gen) == want  # knobs, LoRAs, init, strength, refs, batch

    app = DistillApp(core, image_renderer="halfcell", display_settings=STILL)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: getattr(app.screen, "selected", None) is not None, 10)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.query("#reuse-line"), 10)
        await pilot.pause(0.2)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(recorder.calls) == 2, 20)
        job = app.generation.job
        await wait_for(pilot, lambda: not job.running, 10)
    tui_load, tui_gen = recorder.calls[-1]
    assert _recipe_of(tui_load, tui_gen) == want
    assert job.params.recipe() == want  # the recipe the Gallery's r built
    assert _comparable(tui_load, tui_gen) == _comparable(cli_load, cli_gen)


# ---- the table ------------------------------------------------------------------------


def _sample() -> Recipe:
    """A value unlike the default in every row."""
    values = {}
    for p in PARAMS:
        if p.kind == "bool":
            values[p.name] = not p.default
        elif p.kind == "int":
            values[p.name] = 3 if p.name != "width" else 80
        elif p.kind == "float":
            values[p.name] = 0.5
        elif p.kind == "choice":
            values[p.name] = p.choices[1]
        elif p.kind == "paths":
            values[p.name] = ("/pics/a.png",)
        elif p.kind == "path":
            values[p.name] = "/pics/start.png"
        elif p.kind == "loras":
            values[p.name] = (("style", 0.5),)
        else:
            values[p.name] = f"some {p.name}"
    return Recipe(values)


def test_every_param_has_a_flag_a_form_field_a_png_label_and_a_round_trip():
    from distill_tui.cli import build_parser
    from distill_tui.widgets.generate_form import FIELDS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    flags = {s for a in sub.choices["generate"]._actions for s in a.option_strings}
    dests = {a.dest for a in sub.choices["generate"]._actions}
    sample = _sample()
    text = format_parameters({**sample.record(), "model_id": MODEL_ID})
    for p in PARAMS:
        assert p.flag in flags or (not p.flag and p.name in dests), p.name
        assert p.form == "hidden" or p.form_id in FIELDS or p.form_id == "prompt", p.name
        if p.png:
            assert f"{p.label}: " in text, (p.name, text)
        one = Recipe({p.name: sample[p.name]})
        assert Recipe.from_record(one.record()) == one, p.name
        assert Recipe.from_record(one.record()).record() == one.record(), p.name
    assert Recipe.from_record(sample.record()) == sample
    # names are unique and each knob's --json key is declared with it
    assert len({p.name for p in PARAMS}) == len(PARAMS)
    assert len({p.flag for p in PARAMS if p.flag}) == len([p for p in PARAMS if p.flag])
    assert {p.key for p in KNOBS} <= set(sample.json())


#: the files that spell a knob otherwise than by its one name: the table itself, the engine
#: protocol and the child (the wire); everything else reads the rows (the settings' keys are
#: the rows' names, bounds' labels, memory_model's words and the fit column's are the rows')
ALLOWED = {
    "distill_tui/recipe.py",
    "distill_tui/engine/protocol.py",
    "distill_tui/engine/child.py",
}


def test_a_knobs_other_spellings_live_in_the_recipe_the_protocol_and_the_child():
    words: set[str] = set()
    for p in KNOBS:
        words |= {p.flag, p.flag[2:], p.key, p.label, p.form_label, p.setting or ""}
        words.discard(p.name)  # the one name (wire, record, attribute) is read everywhere
    # the distinctive ones: a flag, a snake/camel name, a label of several words
    words = {w for w in words if re.search(r"[-_ ]|[a-z][A-Z]", w)}
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")
    hits: dict[str, list[str]] = {}
    for path in sorted((ROOT / "distill_tui").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = pattern.search(line)
            if m and rel not in ALLOWED:
                hits.setdefault(rel, []).append(f"{n}: {m.group(0)!r}: {line.strip()}")
    assert not hits, hits


# ---- compare -o ---------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_sheet_never_replaces_a_fifo_a_device_or_a_file(tiny_models, tmp_path):
    from tests.test_generate_cli import distill

    core = ready_core(tiny_models)
    fifo = tmp_path / "sheet.png"
    os.mkfifo(fifo)
    base = ("compare", "a fox", "--seed", "1", "--steps", "1")
    r = distill(*base, "-o", str(fifo), timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "not a regular file" in r.stderr and "comparing" not in r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    link = tmp_path / "null.png"
    link.symlink_to("/dev/null")
    r = distill(*base, "-o", str(link), timeout=60)
    assert r.returncode != 0 and "not a regular file" in r.stderr
    kept = tmp_path / "kept.png"
    kept.write_bytes(b"mine")
    r = distill(*base, "-o", str(kept), timeout=60)
    assert r.returncode != 0 and "--overwrite" in r.stderr
    assert kept.read_bytes() == b"mine"
    assert not History(core.paths.history_file).records()  # nothing ran


# ---- the PNG: A1111's "Model hash" and the batch ---------------------------------------------


@pytest.mark.slow
def test_png_names_the_diffusion_files_hash_and_the_batch(tiny_models, tmp_path):
    """A1111's ``Model hash`` (the first 10 hex of the checkpoint's sha256): the diffusion
    file's, from the inventory (issue 23.9); ``Batch size`` for a batch. The real engine."""
    from distill_tui.outputs import parse_parameters, read_parameters
    from tests.test_generate_cli import distill

    core = ready_core(tiny_models)
    q = core.catalog.require(MODEL_ID).diffusion.get(DIFFUSION_QUANT)
    path = core.inventory.abs_path(q.file)
    sha = "0123456789abcdef" * 4
    core.inventory.record(q.file, path.stat().st_size, sha)
    out = tmp_path / "fox.png"
    r = distill("generate", "a fox", "--steps", "1", "--batch", "2", "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    first = Path(r.stdout.split()[0])
    params = parse_parameters(read_parameters(first) or "")
    assert params["Model hash"] == sha[:10]
    assert params["Batch size"] == "2"
    rec = History(core.paths.history_file).records()[0]
    assert rec.params["model_hash"] == sha[:10]
    assert Recipe.from_record(rec.params)["batch_count"] == 2


def test_reuse_of_a_record_whose_lora_is_gone_names_the_record(tiny_models, tmp_path, capsys):
    """The record's LoRAs come back with it; one that is no longer in the LoRA folder is one
    line naming the record (not a --lora nobody typed), before the engine starts."""
    from distill_tui.cli import main

    core = ready_core(tiny_models)
    rec = _record(core, tmp_path)
    (core.settings.lora_dir / "tinystyle.safetensors").unlink()
    capsys.readouterr()
    assert main(["generate", "--reuse", rec.id[:8]]) == 1
    err = capsys.readouterr().err
    assert f"record {rec.id[:12]}'s loras: " in err and "tinystyle" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


async def test_compare_takes_the_knob_flags_from_the_table(tiny_models, monkeypatch):
    """``distill compare`` has the engine knob flags of ``PARAMS`` too, and each cell's
    requests carry them (one precedence: flags over the settings)."""
    from distill_tui.cli import main

    ready_core(tiny_models)  # settings: flash on, threads 2
    recorder = _Recorder()

    async def generate(client, load, gen):  # noqa: ANN001
        return await recorder(client, load, gen)

    monkeypatch.setattr(EngineClient, "generate", generate)
    argv = ["compare", "a fox", "--seed", "1", "--no-flash-attn", "--threads", "1"]
    argv += ["--vae-tiling", "--cache-mode", "easycache"]
    await asyncio.to_thread(main, argv)
    assert recorder.calls
    for load, gen in recorder.calls:
        assert (load.flash_attn, load.n_threads) == (False, 1)
        assert (gen.vae_tiling, gen.cache_mode, gen.seed) == (True, "easycache", 1)


async def test_flow_shift_auto_on_the_command_line(tiny_models, tmp_path, monkeypatch, capsys):
    """``--flow-shift auto`` is the engine's default (None): over a reused record's 2.0 it
    sends None; a word that is neither a number nor auto is one argparse line."""
    from distill_tui.cli import main

    core = ready_core(tiny_models)
    rec = _record(core, tmp_path)  # flow shift 2.0
    recorder = _Recorder()

    async def generate(client, load, gen):  # noqa: ANN001
        return await recorder(client, load, gen)

    monkeypatch.setattr(EngineClient, "generate", generate)
    argv = ["generate", "--reuse", rec.id[:8], "--quiet"]
    assert await asyncio.to_thread(main, argv) == 0
    assert recorder.calls[-1][1].flow_shift == 2.0
    assert await asyncio.to_thread(main, [*argv, "--flow-shift", "auto"]) == 0
    assert recorder.calls[-1][1].flow_shift is None
    assert await asyncio.to_thread(main, [*argv, "--flow-shift", "3"]) == 0
    assert recorder.calls[-1][1].flow_shift == 3.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["generate", "a fox", "--flow-shift", "much"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--flow-shift" in err and "auto" in err and "Traceback" not in err
    assert len(recorder.calls) == 3


def test_the_childs_record_of_a_request_is_the_recipes_record(tmp_path):
    """The engine child records (PNG ``distill`` chunk, history) the advanced rows of a
    request as ``Recipe.record()`` spells them: every such row, nothing hand-listed; a request
    from an older client (no load-side knobs) records what it sent; the engine's own knobs,
    img2img and LoRAs only when set."""
    from distill_tui.engine.child import knob_params
    from distill_tui.resolver import ActivePaths

    write_tiny_lora(tmp_path / "style.safetensors")
    sample = _sample().replace(height=64, steps=3, batch_count=2)  # within the bounds
    paths = ActivePaths(MODEL_ID, DIFFUSION_QUANT, TEXT_ENCODER_QUANT, Path(), Path(), Path())
    load, gen = sample.to_requests(paths, str(tmp_path), tmp_path)
    sent = gen.model_copy(update=knob_values(load))  # as the engine client sends it
    advanced = [p.name for p in PARAMS if p.form != "main"]
    assert knob_params(sent) == {n: sample.record()[n] for n in advanced}
    # an older client: no load-side knobs in the request
    assert set(knob_params(gen)) == {
        n for n in advanced if n in {p.name for p in PARAMS if p.side == "generate"}
    }
    # the defaults: the settings' knobs always, the rest only when set
    plain = Recipe({})
    load, gen = plain.to_requests(paths, str(tmp_path), tmp_path)
    got = knob_params(gen.model_copy(update=knob_values(load)))
    assert set(got) == {p.name for p in PARAMS if p.form != "main" and p.setting}, got
