"""``distill upscale`` and the engine's upscale request, through the real engine child with a
tiny Real-ESRGAN x4 (``tests/tiny_esrgan.py``: the RRDBNet layout stable-diffusion.cpp loads,
written as the real ``.pth`` is - a torch zip checkpoint nesting ``params_ema``).

The CLI runs in-process (``distill_tui.cli.main``); the engine is its real child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from distill_tui.cli import main
from tests import tiny_esrgan


@pytest.fixture(scope="session")
def tiny_esrgan_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_esrgan.write_pth(tmp_path_factory.mktemp("esrgan") / "tiny-x4.pth")


@pytest.fixture(scope="session")
def tiny_esrgan_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_esrgan.write_safetensors(tmp_path_factory.mktemp("esrgan") / "tiny-x4.safetensors")


def _paths():
    from distill_tui.paths import AppPaths

    return AppPaths.from_env()


def _outputs() -> Path:
    from distill_tui.context import CoreContext

    return CoreContext.build().settings.outputs_dir


def _generated_source(tmp_path: Path, size: tuple[int, int] = (32, 24)):
    """A PNG as the engine child writes one (``save_png``: parameters + distill chunks) and
    its history record, as the client adds it after a generation."""
    from distill_tui.outputs import History, HistoryRecord, save_png

    params = {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "",
        "steps": 4,
        "sampler": "euler",
        "scheduler": "default",
        "cfg_scale": 1.0,
        "seed": 1234,
        "width": size[0],
        "height": size[1],
        "model_id": "tiny-klein",
        "diffusion_quant": "F16",
        "text_encoder_quant": "F16",
        "batch_count": 1,
    }
    img = Image.new("RGB", size, (30, 90, 200))
    for x in range(size[0] // 2):
        for y in range(size[1]):
            img.putpixel((x, y), (240, 200, 20))
    out = _outputs()
    path = save_png(img, out, params, index=0)
    rec = HistoryRecord(
        model_id="tiny-klein",
        diffusion_quant="F16",
        text_encoder_quant="F16",
        params={**params, "output_dir": str(out)},
        seed=1234,
        images=[str(path)],
    )
    History(_paths().history_file).add(rec)
    return path, rec


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["upscale", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ---- the real engine ---------------------------------------------------------------------


def test_upscale_png_4x_keeps_metadata_and_links_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    """A generated PNG -> a 4x PNG in the outputs folder that keeps the source's parameters
    (A1111 text + distill's record) plus the upscaler, and a history entry linked to it."""
    import hashlib

    from distill_tui.outputs import History, parse_parameters, read_parameters

    src, src_rec = _generated_source(tmp_path)
    code, out, err = _run(capsys, str(src), "--upscaler", str(tiny_esrgan_pth), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["version"] == 1 and len(data["paths"]) == 1
    res = Path(data["paths"][0])
    assert res.parent == _outputs() and res != src
    with Image.open(res) as im:
        assert im.size == (128, 96)  # 32x24 x4
        texts = dict(im.text)
    r = data["results"][0]
    assert (r["width"], r["height"], r["scale"]) == (128, 96, 4)
    src_sha = hashlib.sha256(src.read_bytes()).hexdigest()
    ups_sha = hashlib.sha256(tiny_esrgan_pth.read_bytes()).hexdigest()
    assert r["source"] == {"path": str(src), "sha256": src_sha, "width": 32, "height": 24}
    assert r["upscaler"]["sha256"] == ups_sha[:10] and r["upscaler"]["file"] == "tiny-x4.pth"
    # A1111 parameters: the source's, plus A1111's own postprocess fields
    before = read_parameters(src)
    assert before is not None
    after = parse_parameters(texts["parameters"])
    assert texts["parameters"].startswith(before)
    assert after["Seed"] == "1234" and after["Postprocess upscale by"] == "4"
    assert after["Postprocess upscaler"] == "tiny-x4.pth"
    # distill's record: the source's parameters + the upscale
    record = json.loads(texts["distill"])
    assert record["prompt"] == "a lighthouse at dusk" and record["seed"] == 1234
    up = record["upscale"]
    assert up["source"] == str(src) and up["source_sha256"] == src_sha
    assert up["upscaler_sha256"] == ups_sha[:10] and up["source_record"] == src_rec.id
    # the Gallery's entry: newest record, linked to its source's
    newest = History(_paths().history_file).records()[0]
    assert newest.id == r["historyId"] and newest.images == [str(res)]
    assert newest.model_id == "tiny-klein" and newest.seed == 1234
    assert newest.params["upscale"]["source_record"] == src_rec.id
    assert newest.params["upscale"]["width"] == 128
    assert newest.file(str(res)) is not None  # its bytes recorded: a delete may remove it


def test_upscale_several_to_out_dir_with_safetensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_st: Path
) -> None:
    """Two foreign images (a JPEG and an A1111-style PNG without distill's record) into
    --out-dir: the paths on stdout, one per line, each 4x; the upscaler loads once."""
    from PIL import PngImagePlugin

    a = tmp_path / "a.jpg"
    Image.new("RGB", (20, 16), (200, 10, 10)).save(a, quality=90)
    b = tmp_path / "b.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Seed: 5, Size: 16x16")
    info.add_text("workflow", '{"nodes": []}')
    Image.new("RGB", (16, 16), (0, 200, 0)).save(b, pnginfo=info)
    out_dir = tmp_path / "ups"
    code, out, err = _run(
        capsys, str(a), str(b), "--upscaler", str(tiny_esrgan_st), "--out-dir", str(out_dir)
    )
    assert code == 0, err
    lines = out.split()
    assert len(lines) == 2 and all(Path(p).parent == out_dir for p in lines)
    sizes = [Image.open(p).size for p in lines]
    assert sizes == [(80, 64), (64, 64)]
    with Image.open(lines[1]) as im:
        texts = dict(im.text)
    assert texts["workflow"] == '{"nodes": []}'  # other tools' chunks are kept
    assert texts["parameters"].startswith("a cat\nSteps: 20, Seed: 5, Size: 16x16, Postprocess")
    assert Path(lines[1]).name.split("_")[1] == "5"  # named by the source's seed
    assert err.count("loading upscaler") == 1


# ---- refusals before the engine ---------------------------------------------------------


def _bomb_png(path: Path, w: int, h: int) -> Path:
    """A tiny file whose header claims w x h pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    png += chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda d: _bomb_png(d / "bomb.png", 100_000, 100_000), "too many pixels"),
        (lambda d: _bomb_png(d / "wide.png", 5000, 10), "at most 4096 px a side"),
        (lambda d: _bomb_png(d / "big.png", 2100, 2100), "would be 8400x8400"),
        (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "not an image"),
        (lambda d: d / "missing.png", "image not found"),
        (lambda d: (os.mkfifo(d / "fifo.png"), d / "fifo.png")[1], "not a regular file"),
        (lambda d: d, "not a regular file"),
    ],
    ids=["bomb", "side", "result", "text", "missing", "fifo", "folder"],
)
def test_upscale_refuses_absurd_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path, make, expect
) -> None:
    src = make(tmp_path)
    code, out, err = _run(capsys, str(src), "--upscaler", str(tiny_esrgan_pth))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err
    assert not any(_outputs().glob("*.png"))  # nothing was written


def test_upscale_refuses_bad_upscaler_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    src = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(src)
    not_esrgan = tiny_esrgan.write_safetensors(tmp_path / "x.safetensors")
    data = not_esrgan.read_bytes().replace(b"conv_first", b"conv_xxxxx")
    not_esrgan.write_bytes(data)
    cases = [
        (["--upscaler", str(not_esrgan)], "not an ESRGAN"),
        (["--upscaler", str(tmp_path / "none.pth")], "upscaler file not found"),
        (["--upscaler", "no-such-id"], "unknown upscaler 'no-such-id'"),
        (["--upscaler", str(tiny_esrgan_pth), "--tile-size", "4096"], "--tile-size 4096"),
        ([], "upscaler"),  # none installed: says how to get one
    ]
    for extra, expect in cases:
        code, out, err = _run(capsys, str(src), *extra)
        assert code == 2 and out == "", (extra, err)
        assert err.count("\n") == 1 and expect in err, (extra, err)


def test_upscale_output_file_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    """-o follows `distill generate -o`: an existing file only with --overwrite; a device, a
    FIFO, a folder or a dangling link never; one IMAGE only; a known extension."""
    src = tmp_path / "s.png"
    Image.new("RGB", (12, 10), (9, 9, 9)).save(src)
    ups = ["--upscaler", str(tiny_esrgan_pth)]
    target = tmp_path / "out.png"
    target.write_bytes(b"mine")
    code, _out, err = _run(capsys, str(src), *ups, "-o", str(target))
    assert code == 2 and "already exists; add --overwrite" in err
    assert target.read_bytes() == b"mine"
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere" / "x.png")
    for bad, expect in [
        ("/dev/null", "character device"),
        (str(tmp_path / "pipe.png"), "FIFO"),
        (str(tmp_path / "dangling.png"), "symbolic link to nothing"),
        (str(tmp_path / "x.gif"), "cannot write '.gif'"),
    ]:
        code, out, err = _run(capsys, str(src), *ups, "-o", bad, "--overwrite")
        assert code == 2 and out == "" and expect in err, (bad, err)
    code, _out, err = _run(capsys, str(src), str(src), *ups, "-o", str(target))
    assert code == 2 and "one IMAGE" in err
    code, out, err = _run(capsys, str(src), *ups, "-o", str(target), "--overwrite")
    assert code == 0, err
    assert out.strip() == str(target)
    with Image.open(target) as im:
        assert im.size == (48, 40) and "Postprocess upscale by: 4" in im.text["parameters"]
    jpg = tmp_path / "out.jpg"  # .jpg: the parameters in EXIF UserComment, as A1111 writes
    code, out, err = _run(capsys, str(src), *ups, "-o", str(jpg))
    assert code == 0, err
    from distill_tui.outputs import read_parameters

    with Image.open(jpg) as im:
        assert im.format == "JPEG" and im.size == (48, 40)
    assert "Postprocess upscaler: tiny-x4.pth" in (read_parameters(jpg) or "")


# ---- the engine client: the generation model stays, cancel ------------------------------


def test_upscale_keeps_generation_model_and_cancels(
    tmp_path: Path, tiny_esrgan_pth: Path, tiny_models: dict[str, Path]
) -> None:
    """An upscale between two generations does not unload the model (the second load is
    reused); a cancelled upscale ends the child and the next one runs in a fresh one."""
    from distill_tui.engine.client import EngineClient, EngineError
    from distill_tui.engine.protocol import (
        GenerateRequest,
        LoadRequest,
        ProgressEvent,
        UpscaleRequest,
    )

    load = LoadRequest(
        diffusion_model_path=str(tiny_models["diffusion"]),
        llm_path=str(tiny_models["text_encoder"]),
        vae_path=str(tiny_models["vae"]),
        n_threads=2,
    )
    gen = GenerateRequest(prompt="x", width=64, height=64, steps=1, output_dir=str(tmp_path))
    big = tmp_path / "big.png"
    Image.new("RGB", (512, 512), (1, 2, 3)).save(big)
    seen: list[ProgressEvent] = []

    async def go() -> None:
        client = EngineClient(on_event=lambda ev: isinstance(ev, ProgressEvent) and seen.append(ev))
        try:
            first = await client.generate(load, gen)
            src = first.paths[0]
            up = await client.upscale(
                UpscaleRequest(
                    upscaler_path=str(tiny_esrgan_pth),
                    image=src,
                    n_threads=2,
                    output_dir=str(tmp_path / "u"),
                )
            )
            assert (up.width, up.height, up.scale) == (256, 256, 4)
            again = await client.generate(load, gen)
            assert again.loaded is not None and again.loaded.reused  # the model stayed
            # cancel: a 512x512 source is 16+ tiles; end it at the first tile
            task = asyncio.create_task(
                client.upscale(
                    UpscaleRequest(
                        upscaler_path=str(tiny_esrgan_pth),
                        image=str(big),
                        n_threads=2,
                        output_dir=str(tmp_path / "u"),
                    )
                )
            )
            for _ in range(600):
                if any(e.phase == "upscaling" for e in seen) or task.done():
                    break
                await asyncio.sleep(0.05)
            assert any(e.phase == "upscaling" and e.steps > 1 for e in seen)  # tiles
            assert await client.cancel()
            with pytest.raises(EngineError) as err:
                await task
            assert err.value.kind == "cancelled"
            small = await client.upscale(
                UpscaleRequest(
                    upscaler_path=str(tiny_esrgan_pth),
                    image=src,
                    n_threads=2,
                    output_dir=str(tmp_path / "u"),
                )
            )
            assert small.load_seconds > 0  # a fresh child loaded it again
        finally:
            await client.shutdown()

    asyncio.run(asyncio.wait_for(go(), 300))
    assert len(list((tmp_path / "u").glob("*.png"))) == 2  # the cancelled one wrote nothing


# ---- the upscaler from the catalog -------------------------------------------------------


def _install_tiny_upscaler(
    app_paths, pth: Path, model_id: str = "tiny-esrgan", extra: tuple[str, ...] = ()
) -> None:
    """A user catalog (the bundled one + a tiny upscaler model: type "upscaler", family
    "esrgan", one "upscaler" component) and its file installed as a download records it."""
    import hashlib
    import shutil

    from distill_tui.context import CoreContext
    from distill_tui.resources import bundled_catalog_path

    rel = "upscalers/tiny-x4.pth"
    data = pth.read_bytes()
    cat = json.loads(bundled_catalog_path().read_text("utf-8"))
    for mid in (model_id, *extra):
        cat["models"].append(_tiny_upscaler_entry(mid, rel, data))
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(cat), "utf-8")
    ctx = CoreContext.build(app_paths)
    dest = ctx.inventory.abs_path(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pth, dest)
    ctx.inventory.record(rel, len(data), hashlib.sha256(data).hexdigest(), "http://127.0.0.1:9/x")


def _tiny_upscaler_entry(model_id: str, rel: str, data: bytes) -> dict:
    import hashlib

    name = "Tiny ESRGAN x4" if model_id == "tiny-esrgan" else f"Tiny {model_id}"
    return {
        "id": model_id,
        "name": name,
        "type": "upscaler",
        "family": "esrgan",
        "components": [
            {
                "role": "upscaler",
                "name": name,
                "file": {
                    "file": rel,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "downloadUrl": "http://127.0.0.1:9/tiny-x4.pth",
                },
            }
        ],
    }


def test_upscale_uses_the_installed_catalog_upscaler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], app_paths, tiny_esrgan_pth: Path
) -> None:
    """No --upscaler: the first installed upscaler of the catalog (a catalog entry only, the
    tiny file under the model directory); a bundled one not downloaded says how to get it."""
    src = tmp_path / "s.png"
    Image.new("RGB", (10, 10), (5, 5, 5)).save(src)
    code, out, err = _run(capsys, str(src))
    assert code == 2 and "no upscaler is downloaded; run: distill models download" in err
    _install_tiny_upscaler(app_paths, tiny_esrgan_pth)
    code, out, err = _run(capsys, str(src), "--json")
    assert code == 0, err
    up = json.loads(out)["upscaler"]
    assert up["id"] == "tiny-esrgan" and up["name"] == "Tiny ESRGAN x4" and up["scale"] == 4
    with Image.open(json.loads(out)["paths"][0]) as im:
        assert im.size == (40, 40)
        assert "Postprocess upscaler: Tiny ESRGAN x4" in im.text["parameters"]
    code, out, err = _run(capsys, str(src), "--upscaler", "realesrgan-x4plus")
    assert code == 2 and "realesrgan-x4plus is not downloaded" in err
    code, out, err = _run(capsys, str(src), "--upscaler", "tiny-esrgan", "-q")
    assert code == 0 and out.count("\n") == 1 and err == ""


def test_upscale_uses_the_active_upscaler_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], app_paths, tiny_esrgan_pth: Path
) -> None:
    """Two installed upscalers: the `active_upscaler_id` setting (the Upscalers tab's `a`)
    picks the one `distill upscale` uses; --upscaler ID overrides it."""
    from distill_tui.context import CoreContext

    _install_tiny_upscaler(app_paths, tiny_esrgan_pth, extra=("tiny-b",))
    CoreContext.build(app_paths).settings.update(active_upscaler_id="tiny-b")
    src = tmp_path / "s.png"
    Image.new("RGB", (6, 6)).save(src)
    code, out, err = _run(capsys, str(src), "--json")
    assert code == 0, err
    assert json.loads(out)["upscaler"]["id"] == "tiny-b"
    code, out, err = _run(capsys, str(src), "--json", "--upscaler", "tiny-esrgan")
    assert code == 0, err
    assert json.loads(out)["upscaler"]["id"] == "tiny-esrgan"
    # the active one not downloaded: said, not silently another
    CoreContext.build(app_paths).settings.update(active_upscaler_id="realesrgan-x4plus")
    code, out, err = _run(capsys, str(src))
    assert code == 2 and "the active upscaler Real-ESRGAN x4plus is not downloaded" in err
    assert "run: distill models download realesrgan-x4plus" in err


def test_download_then_upscale_from_the_loopback_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], app_paths, fake_hub, tiny_esrgan_pth: Path
) -> None:
    """The bundled Real-ESRGAN x4plus entry, served by the loopback Hub under its real path
    with the tiny bytes (a user catalog naming them): `distill models download` it, then
    `distill upscale` picks it (no --upscaler) and writes a 4x PNG naming it."""
    import hashlib
    from urllib.parse import urlsplit

    from tests.catalog_raw import bundled_v3

    raw = bundled_v3()
    data = tiny_esrgan_pth.read_bytes()
    model = next(m for m in raw["models"] if m["id"] == "realesrgan-x4plus")
    entry = model["components"][0]["file"]
    url = urlsplit(entry["downloadUrl"]).path
    repo, rest = url.strip("/").split("/resolve/", 1)
    path_in_repo = rest.split("/", 1)[1]
    assert path_in_repo == "RealESRGAN/RealESRGAN_x4plus.pth"
    fake_hub.add_file(repo, path_in_repo, data)
    entry.update(
        downloadUrl=fake_hub.resolve_url(repo, path_in_repo),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    entry.pop("revision", None)
    entry.pop("mirrors", None)
    raw["catalogVersion"] = 1000
    app_paths.user_catalog_file.parent.mkdir(parents=True, exist_ok=True)
    app_paths.user_catalog_file.write_text(json.dumps(raw), "utf-8")

    assert main(["models", "download", "realesrgan-x4plus", "-q"]) == 0, capsys.readouterr()
    capsys.readouterr()
    src = tmp_path / "s.png"
    Image.new("RGB", (24, 16), (90, 20, 160)).save(src)
    code, out, err = _run(capsys, str(src), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["upscaler"]["id"] == "realesrgan-x4plus"
    assert res["upscaler"]["sha256"] == hashlib.sha256(data).hexdigest()[:10]
    with Image.open(res["paths"][0]) as im:
        assert im.size == (96, 64)
        assert "Postprocess upscaler: Real-ESRGAN x4plus" in im.text["parameters"]


def test_upscale_turns_a_camera_jpeg_upright(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    """A JPEG whose EXIF says "rotate 90" is upscaled as viewers show it (the result has no
    orientation tag to carry it)."""
    src = tmp_path / "cam.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to view
    Image.new("RGB", (20, 10), (10, 120, 10)).save(src, exif=exif)
    code, out, err = _run(capsys, str(src), "--upscaler", str(tiny_esrgan_pth), "--json")
    assert code == 0, err
    res = json.loads(out)["results"][0]
    with Image.open(res["path"]) as im:
        assert im.size == (40, 80)
    assert (res["width"], res["height"]) == (40, 80)


def test_upscaler_of_the_wrong_shape_is_refused_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    """An x2plus-shaped file (``conv_first`` takes 12 channels: basicsr pixel-unshuffles;
    sd.cpp fixes 3): the library logs the wrong shape, hands back a context anyway and the
    upscale segfaulted the engine. Now one line naming the tensor; the next upscale works."""
    import numpy as np

    state = tiny_esrgan.tensors()
    state["conv_first.weight"] = np.zeros((64, 12, 3, 3), np.float32)
    bad = tmp_path / "RealESRGAN_x2plus-like.pth"
    import zipfile

    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("archive/data.pkl", tiny_esrgan.data_pkl(state))
        for key, arr in enumerate(state.values()):
            z.writestr(f"archive/data/{key}", arr.astype("<f4").tobytes())
    src = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(src)
    code, out, err = _run(capsys, str(src), "--upscaler", str(bad))
    assert code == 1 and out == ""
    last = err.strip().splitlines()[-1]
    assert "the upscaler could not be loaded" in last and "conv_first.weight" in last, err
    assert "SIGSEGV" not in err
    code, out, err = _run(capsys, str(src), "--upscaler", str(tiny_esrgan_pth))
    assert code == 0, err
    # one engine child (the TUI's): the refusal leaves it serving the next upscale
    from distill_tui.engine.client import EngineClient, EngineError
    from distill_tui.engine.protocol import UpscaleRequest

    async def go() -> None:
        client = EngineClient()
        try:
            req = UpscaleRequest(upscaler_path=str(bad), image=str(src), output_dir=str(tmp_path))
            with pytest.raises(EngineError) as e:
                await client.upscale(req)
            assert e.value.kind == "load" and "conv_first.weight" in e.value.message
            pid = client.pid
            ok = await client.upscale(
                req.model_copy(update={"upscaler_path": str(tiny_esrgan_pth)})
            )
            assert (ok.width, ok.height) == (32, 32) and client.pid == pid
        finally:
            await client.shutdown()

    asyncio.run(asyncio.wait_for(go(), 120))


def test_broken_upscaler_files_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path, tiny_esrgan_st: Path
) -> None:
    """A tensor missing, a truncated .pth, a truncated .safetensors: the engine's own reason
    in one line (exit 1), never a crash."""
    import zipfile

    state = tiny_esrgan.tensors()
    del state["conv_hr.weight"]
    missing = tmp_path / "missing.pth"
    with zipfile.ZipFile(missing, "w") as z:
        z.writestr("archive/data.pkl", tiny_esrgan.data_pkl(state))
        for key, arr in enumerate(state.values()):
            z.writestr(f"archive/data/{key}", arr.astype("<f4").tobytes())
    trunc_pth = tmp_path / "trunc.pth"
    trunc_pth.write_bytes(tiny_esrgan_pth.read_bytes()[:1_000_000])
    trunc_st = tmp_path / "trunc.safetensors"
    trunc_st.write_bytes(tiny_esrgan_st.read_bytes()[:500_000])
    src = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(src)
    for bad, why in [
        (missing, "'conv_hr.weight' not in model file"),
        (trunc_pth, "init model loader from file failed"),
        (trunc_st, "read tensor data failed"),
    ]:
        code, out, err = _run(capsys, str(src), "--upscaler", str(bad), "-q")
        assert code == 1 and out == "" and err.count("\n") == 1, (bad, err)
        assert "the upscaler could not be loaded" in err and why in err, (bad, err)


def test_upscale_shows_a_hostile_file_name_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_esrgan_pth: Path
) -> None:
    """A source named with a terminal escape (set the window title): stderr shows it inert."""
    src = tmp_path / "evil\x1b]0;pwned\x07.png"
    Image.new("RGB", (8, 8)).save(src)
    code, out, err = _run(capsys, str(src), "--upscaler", str(tiny_esrgan_pth))
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err and "pwned" in err
