"""The user's install path, end to end: wheel -> fresh venv (no test extra) -> distill.

    bash tests/smoke/plain_install.sh [--keep] [--skip-tui-generate] [--skip-upscale]
                                      [--skip-zimage]

1. builds the project's wheel (``pip wheel --no-deps``) and installs it into a FRESH venv
   (``.smoke/venv``, recreated every run) WITHOUT the test extra; pip's wheel cache makes
   stable-diffusion-cpp-python quick after its first build;
2. starts the loopback fake Hub with the tiny synthetic Klein set, a tiny Real-ESRGAN x4 and
   the tiny Z-Image set under the real catalog's repo paths (``tests/tiny_hub.py``, run by the
   dev venv's python: it needs numpy/gguf/safetensors to write the tiny files), with isolated
   XDG dirs, HOME and no HF token;
3. runs the fresh venv's ``distill``: ``--version``, ``models list --json``, ``models download``
   of a full set (VAE included, no token), ``models use``, ``generate`` (a 64x64 PNG with its
   parameters), ``models download realesrgan-x4plus`` and ``upscale --json`` of that PNG (a
   256x256 PNG keeping the source's parameters), ``doctor``, the TUI in a pty (first paint,
   ctrl+q: rc 0, alternate screen left), ctrl+g in the TUI (a new PNG in the output dir), and
   last Z-Image-Turbo: ``models download`` (its DiT is sd.cpp's fixed 6B shape, a sparse
   1.6 GB file the Hub streams: ~13 s over loopback, download and sha256 included, on the
   shared 2-core box), ``models use``, ``generate --model z-image-turbo`` 64x64, 1 step
   (~50 s there: the DiT's every multiply runs).

Every step has a timeout and prints its elapsed time; a failing step prints its output and
the tails of distill's log and the Hub's stderr, and the run exits 1. This file needs only the
standard library. Environment: ``SMOKE_PYTHON`` (makes the fresh venv; default the python
running this), ``SMOKE_DEV_PYTHON`` (runs the tiny Hub; default ``.venv/bin/python``),
``SMOKE_DIR`` (default ``.smoke``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL = "flux2-klein-4b"
DIFFUSION, TEXT_ENCODER = "Q4_K_S", "Q3_K_M"
UPSCALER = "realesrgan-x4plus"
ZIMAGE = "z-image-turbo"
#: tests.tiny_hub serves these Z-Image quants (its recommended ones); the Q4_K_M text encoder
#: is also Klein 4B's (one shared file)
ZIMAGE_QUANTS = {"diffusion": "Q4_K", "textEncoder": "Q4_K_M"}
ZIMAGE_PROMPT = "a lighthouse at dusk"
PROMPT = "a red fox"
TUI_PROMPT = "a blue heron"
COLS, ROWS = 120, 40
FIRST_PAINT = b"Gallery"  # the footer's F4 label: written with the first full frame
ALT_ON, ALT_OFF = b"\x1b[?1049h", b"\x1b[?1049l"
CTRL_Q, CTRL_G = b"\x11", b"\x07"
# variables that would let the run see a real token, a real Hub or the user's own files
SCRUB = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "ESCDELAY",
)


class StepFailed(Exception):
    def __init__(self, msg: str, output: str = ""):
        super().__init__(msg)
        self.output = output


class Smoke:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.t0 = time.monotonic()
        self.times: list[tuple[str, float]] = []
        self.smoke_dir = Path(os.environ.get("SMOKE_DIR", ROOT / ".smoke")).resolve()
        self.venv = self.smoke_dir / "venv"
        self.work = Path(tempfile.mkdtemp(prefix="distill-smoke-"))
        self.home = self.work / "home"
        self.cleaned = False
        self.hubs: list[subprocess.Popen[str]] = []
        self.hub_errs: list[Path] = []
        self.env: dict[str, str] = {}
        self.tiny: dict[str, str] = {}

    # ---- plumbing ------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f"[smoke {time.monotonic() - self.t0:7.1f}s] {msg}", flush=True)

    def step(self, name: str, fn, *a, **kw):
        self.log(f"{name} ...")
        t = time.monotonic()
        try:
            result = fn(*a, **kw)
        except StepFailed as e:
            dt = time.monotonic() - t
            self.times.append((name, dt))
            self.log(f"FAILED {name} after {dt:.1f}s: {e}")
            if e.output:
                print(f"----- output of {name} -----\n{_tail(e.output, 150)}\n-----", flush=True)
            self.dump_logs()
            raise
        dt = time.monotonic() - t
        self.times.append((name, dt))
        self.log(f"ok   {name} ({dt:.1f}s)")
        return result

    def run(
        self,
        argv: list[str | Path],
        timeout: float,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        expect_rc: int = 0,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in argv]
        try:
            p = subprocess.run(
                argv,
                env=env if env is not None else self.env,
                cwd=cwd or self.work,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            out = _text(e.stdout) + _text(e.stderr)
            raise StepFailed(f"timed out after {timeout:.0f}s: {_cmd(argv)}", out) from None
        if p.returncode != expect_rc:
            raise StepFailed(
                f"exit {p.returncode} (expected {expect_rc}): {_cmd(argv)}",
                f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}",
            )
        return p

    def distill(self, *argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run([self.venv / "bin" / "distill", *argv], timeout)

    def dump_logs(self) -> None:
        log = self.home / "state" / "distill" / "log" / "distill.log"
        named = [("distill.log", log)] + [("fake Hub stderr", p) for p in self.hub_errs]
        for name, path in named:
            if path.exists():
                text = path.read_text(errors="replace")
                if text.strip():
                    print(f"----- tail of {name} ({path}) -----\n{_tail(text, 60)}\n-----")
        sys.stdout.flush()

    def cleanup(self, ok: bool) -> None:
        self.cleaned = True
        for hub in self.hubs:
            if hub.poll() is None:
                hub.terminate()
                try:
                    hub.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    hub.kill()
                    hub.wait(timeout=10)
        if ok and not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            self.log(f"work dir kept: {self.work}")

    # ---- install -------------------------------------------------------------------
    def make_venv(self) -> None:
        shutil.rmtree(self.venv, ignore_errors=True)
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        py = os.environ.get("SMOKE_PYTHON", sys.executable)
        self.run([py, "-m", "venv", self.venv], 180, env=_base_env(), cwd=ROOT)

    def build_wheel(self) -> Path:
        out = self.work / "wheel"
        pip = self.venv / "bin" / "pip"
        self.run([pip, "wheel", "--no-deps", "-w", out, ROOT], 600, env=_base_env(), cwd=ROOT)
        wheels = sorted(out.glob("distill_tui-*.whl"))
        if len(wheels) != 1:
            raise StepFailed(f"expected one distill_tui wheel in {out}, got {wheels}")
        return wheels[0]

    def install(self, wheel: Path) -> None:
        pip = self.venv / "bin" / "pip"
        # no --no-cache-dir: the stable-diffusion-cpp-python wheel comes from pip's cache
        self.run([pip, "install", wheel], self.args.install_timeout, env=_base_env(), cwd=ROOT)
        py = self.venv / "bin" / "python"
        # the test extra must NOT be there: what the user gets is what we test
        probe = (
            "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
            "for m in ('pytest', 'safetensors', 'pytest_textual_snapshot')}))"
        )
        p = self.run([py, "-c", probe], 60, env=_base_env())
        found = [m for m, ok in json.loads(p.stdout).items() if ok]
        if found:
            raise StepFailed(f"the fresh venv has test-only packages: {found}")

    def login_shell(self) -> None:
        """The README's PATH line (for the venv way) in ~/.profile: a new login shell finds
        `distill` (issue 22.6: without it, "command not found")."""
        home = self.work / "login-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / ".profile").write_text(f'export PATH="{self.venv / "bin"}:$PATH"\n')
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
        p = self.run(["bash", "-lc", "command -v distill"], 30, env=env, cwd=home)
        found = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if Path(found) != self.venv / "bin" / "distill":
            raise StepFailed(
                f"a new login shell finds {found or 'no distill'}", p.stdout + p.stderr
            )

    # ---- hub -----------------------------------------------------------------------
    def spawn_hub(self, home: Path, *flags: str) -> tuple[dict, dict[str, str]]:
        """Start ``tests.tiny_hub`` for ``home``; return its description and distill's env."""
        dev_py = os.environ.get("SMOKE_DEV_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
        if not Path(dev_py).exists():
            raise StepFailed(f"no dev python at {dev_py} (run the README's test command first)")
        err_path = self.work / f"hub-{home.name}.stderr"
        self.hub_errs.append(err_path)
        with open(err_path, "w") as err:
            proc = subprocess.Popen(
                [dev_py, "-m", "tests.tiny_hub", str(home), "--exit-with-parent", *flags],
                cwd=ROOT,
                env=_base_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.hubs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 180)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise StepFailed(
                f"the tiny Hub did not start (rc {proc.poll()})",
                err_path.read_text(errors="replace"),
            )
        info = json.loads(line)
        self.log(f"  hub {info['hub']}  cdn {info['cdn']}  catalog {info['catalog']}")
        env = _base_env()
        env.update(info["env"])
        env["HOME"] = str(home)  # no ~/.cache/huggingface/token, no ~/.config of ours
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        no_proxy = "127.0.0.1,localhost"
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        env["TERM"] = "xterm-256color"
        env["COLUMNS"], env["LINES"] = str(COLS), str(ROWS)
        return info, env

    def start_hub(self) -> None:
        flags = [] if self.args.skip_upscale else ["--upscaler"]
        flags += [] if self.args.skip_zimage else ["--zimage"]
        info, self.env = self.spawn_hub(self.home, *flags)
        self.tiny = info["files"]

    def mirror_download(self) -> None:
        """The VAE's first source answers 404: the VAE must come from its (open) mirror."""
        home = self.work / "home-mirror"
        log = self.work / "hub-mirror.jsonl"
        info, env = self.spawn_hub(home, "--vae-404", "--open-mirror", "--log", str(log))
        argv = ["models", "download", MODEL, "--diffusion", DIFFUSION]
        p = self.run(
            [self.venv / "bin" / "distill", *argv, "--text-encoder", TEXT_ENCODER], 300, env=env
        )
        vae = home / "data" / "distill" / "models" / "vae" / "flux2-vae.safetensors"
        if not vae.is_file() or vae.read_bytes() != Path(info["files"]["vae"]).read_bytes():
            raise StepFailed(f"{vae} missing or not the served bytes", p.stdout + p.stderr)
        reqs = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        hub = [(r["status"], r["path"]) for r in reqs if r["server"] == "hub"]
        first = [st for st, path in hub if "/Comfy-Org/flux2-dev/" in path]
        mirror = [st for st, path in hub if "/black-forest-labs/FLUX.2-dev/" in path]
        if 404 not in first or 302 not in mirror:
            raise StepFailed(
                f"expected 404 from Comfy-Org and 302 from the BFL mirror; hub saw {hub}",
                p.stdout + p.stderr,
            )
        said = [ln for ln in (p.stdout + p.stderr).splitlines() if "black-forest-labs" in ln]
        self.log(f"  VAE from the mirror (Comfy-Org {first}, BFL {mirror})")
        for ln in said[:2]:
            self.log(f"  {ln.strip()[:150]}")

    # ---- distill -------------------------------------------------------------------
    def version(self) -> None:
        p = self.distill("--version", timeout=60)
        init = (ROOT / "distill_tui" / "__init__.py").read_text()
        want = re.search(r"__version__\s*=\s*[\"']([^\"']+)", init)
        if not p.stdout.startswith("distill ") or (want and want.group(1) not in p.stdout):
            raise StepFailed(f"unexpected version output {p.stdout!r}", p.stdout + p.stderr)
        self.log(f"  {p.stdout.strip()}  ({self.venv / 'bin' / 'distill'})")

    def models_list(self, after: bool) -> None:
        p = self.distill("models", "list", "--json", timeout=60)
        try:
            data = json.loads(p.stdout)
        except json.JSONDecodeError as e:
            raise StepFailed(f"models list --json is not JSON: {e}", p.stdout + p.stderr) from None
        model = next((m for m in data.get("models", []) if m.get("id") == MODEL), None)
        if model is None:
            raise StepFailed(f"{MODEL} not in models list", p.stdout)
        q = {x["id"]: x for x in model["components"]["diffusion"]["quants"]}[DIFFUSION]
        tiny_size = Path(self.tiny["diffusion"]).stat().st_size
        if q["size"] != tiny_size:  # the user catalog (tiny sizes) is the one in use
            raise StepFailed(f"{DIFFUSION} size {q['size']} != tiny {tiny_size}", p.stdout)
        if after:
            want = {"diffusion": DIFFUSION, "textEncoder": TEXT_ENCODER}
            if not model.get("ready") or model.get("selection") != want or not model.get("active"):
                raise StepFailed(
                    f"after download+use: ready={model.get('ready')} "
                    f"selection={model.get('selection')} active={model.get('active')} "
                    f"missing={model.get('missing')}",
                    p.stdout,
                )
        self.log(
            f"  {len(data['models'])} models; {MODEL} ready={model['ready']} "
            f"selection={model['selection']}"
        )

    def download(self) -> None:
        p = self.distill(
            "models",
            "download",
            MODEL,
            "--diffusion",
            DIFFUSION,
            "--text-encoder",
            TEXT_ENCODER,
            timeout=300,
        )
        models = self.home / "data" / "distill" / "models"
        want = {
            "diffusion": models / "diffusion" / f"flux-2-klein-4b-{DIFFUSION}.gguf",
            "text_encoder": models / "text_encoders" / f"Qwen3-4B-{TEXT_ENCODER}.gguf",
            "vae": models / "vae" / "flux2-vae.safetensors",
        }
        for key, path in want.items():
            if not path.is_file() or path.read_bytes() != Path(self.tiny[key]).read_bytes():
                raise StepFailed(f"{path} missing or not the served bytes", p.stdout + p.stderr)
        self.log(f"  {len(want)} files verified under {models}")

    def use(self) -> None:
        self.distill(
            "models", "use", MODEL, "--diffusion", DIFFUSION, "--text-encoder", TEXT_ENCODER
        )

    def generate(self) -> None:
        out = self.work / "out.png"
        p = self.distill(
            "generate",
            PROMPT,
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "1",
            "--seed",
            "42",
            "-o",
            out,
            timeout=300,
        )
        if str(out) not in p.stdout:
            raise StepFailed(f"{out} not printed on stdout", p.stdout + p.stderr)
        info = check_png(out, 64, 64, PROMPT)
        self.log(f"  {out.name}: {info}")

    def download_upscaler(self) -> None:
        p = self.distill("models", "download", UPSCALER, timeout=120)
        pth = self.home / "data" / "distill" / "models" / "upscalers" / "RealESRGAN_x4plus.pth"
        if not pth.is_file() or pth.read_bytes() != Path(self.tiny["upscaler"]).read_bytes():
            raise StepFailed(f"{pth} missing or not the served bytes", p.stdout + p.stderr)
        self.log(f"  {pth.name}: {pth.stat().st_size} bytes, the served ones")

    def upscale(self) -> None:
        """The PNG ``generate`` wrote, 4x, into the outputs folder (no -o: the default)."""
        src = self.work / "out.png"
        p = self.distill("upscale", src, "--json", timeout=300)
        try:
            data = json.loads(p.stdout)
            result = data["results"][0]
            out = Path(result["path"])
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            raise StepFailed(f"upscale --json: no result path ({e})", p.stdout + p.stderr) from None
        if data.get("upscaler", {}).get("id") != UPSCALER:
            raise StepFailed(f"upscale used {data.get('upscaler')}, not {UPSCALER}", p.stdout)
        if (result.get("width"), result.get("height"), result.get("scale")) != (256, 256, 4):
            raise StepFailed(f"upscale --json says {result}", p.stdout)
        info = check_png(out, 256, 256, PROMPT)
        src_params = png_text(png_chunks(src))["parameters"]
        params = png_text(png_chunks(out))["parameters"]
        # the source's parameters kept, A1111's postprocess fields added after them
        if not params.startswith(src_params) or "Postprocess upscale by: 4" not in params:
            raise StepFailed(
                f"{out}: the source's parameters are not kept: {params!r}", p.stdout + p.stderr
            )
        self.log(f"  {out.name}: {info}")
        self.log(f"  added: {params[len(src_params) :].strip(', ')}")

    def download_zimage(self) -> None:
        quants = [a for role, q in ZIMAGE_QUANTS.items() for a in ("--quant", f"{role}={q}")]
        p = self.distill("models", "download", ZIMAGE, *quants, timeout=300)
        models = self.home / "data" / "distill" / "models"
        want = {
            "zimage_diffusion": models / "diffusion" / "z_image_turbo-Q4_K.gguf",
            "zimage_text_encoder": models / "text_encoders" / "Qwen3-4B-Q4_K_M.gguf",
            "zimage_vae": models / "vae" / "flux1-ae.safetensors",
        }
        for key, path in want.items():
            src = Path(self.tiny[key])
            # the 1.6 GB DiT by size (distill checked its sha256; the generation reads it)
            same = (
                path.is_file()
                and path.stat().st_size == src.stat().st_size
                and (key == "zimage_diffusion" or _same_bytes(path, src))
            )
            if not same:
                raise StepFailed(f"{path} missing or not the served bytes", p.stdout + p.stderr)
        size = sum(p.stat().st_size for p in want.values())
        self.log(f"  {len(want)} files, {size / 1e9:.2f} GB, verified under {models}")

    def use_zimage(self) -> None:
        quants = [a for role, q in ZIMAGE_QUANTS.items() for a in ("--quant", f"{role}={q}")]
        self.distill("models", "use", ZIMAGE, *quants)
        p = self.distill("models", "list", "--json", timeout=60)
        try:
            models = {m["id"]: m for m in json.loads(p.stdout)["models"]}
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise StepFailed(f"models list --json: {e}", p.stdout + p.stderr) from None
        z = models.get(ZIMAGE, {})
        if not z.get("ready") or not z.get("active") or z.get("selection") != ZIMAGE_QUANTS:
            raise StepFailed(
                f"after download+use: ready={z.get('ready')} active={z.get('active')} "
                f"selection={z.get('selection')} missing={z.get('missing')}",
                p.stdout,
            )
        # the text encoder is one file for both models: Klein 4B's Q4_K_M is there too
        te = ZIMAGE_QUANTS["textEncoder"]
        klein = {q["id"]: q for q in models[MODEL]["components"]["textEncoder"]["quants"]}[te]
        if not klein.get("downloaded") or ZIMAGE not in klein.get("sharedWith", []):
            raise StepFailed(f"{MODEL}'s {te} is not the shared downloaded file: {klein}")
        self.log(f"  {ZIMAGE} ready, active; text encoder {te} shared with {MODEL}")

    def generate_zimage(self) -> None:
        out = self.work / "zimage.png"
        p = self.distill(
            "generate",
            ZIMAGE_PROMPT,
            "--model",
            ZIMAGE,
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "1",
            "--seed",
            "7",
            "-o",
            out,
            timeout=400,
        )
        if str(out) not in p.stdout:
            raise StepFailed(f"{out} not printed on stdout", p.stdout + p.stderr)
        info = check_png(out, 64, 64, ZIMAGE_PROMPT)
        params = png_text(png_chunks(out))["parameters"]
        if f"Model: {ZIMAGE}" not in params:
            raise StepFailed(f"{out}: the parameters do not name {ZIMAGE}: {params!r}")
        timing = [ln for ln in p.stderr.splitlines() if "total" in ln and "seed" in ln]
        self.log(f"  {out.name}: {info}")
        for ln in timing[-1:]:
            self.log(f"  {ln.strip()[:160]}")

    def doctor(self) -> None:
        p = self.distill("doctor", timeout=120)
        text = p.stdout + p.stderr
        if "hf_Fake" in text:
            raise StepFailed("doctor printed a token", text)
        for line in p.stdout.splitlines():
            if re.search(r"backend|token|models", line, re.I):
                self.log(f"  {line.strip()}")

    def tui_quit(self) -> None:
        distill = [str(self.venv / "bin" / "distill")]
        with PtyApp(distill, self.env, self.work, self.work / "tui-quit.out") as app:
            app.wait_for(FIRST_PAINT, 120, "first paint")
            self.log(f"  first paint after {app.elapsed():.1f}s")
            app.wait_quiet(0.5, 10)
            app.write(CTRL_Q)
            app.expect_clean_exit(20)
            self.log(f"  ctrl+q: rc 0 after {app.exit_s:.2f}s, alternate screen left")

    def tui_generate(self) -> None:
        outdir = self.work / "tui-out"
        settings = self.home / "config" / "distill" / "settings.json"
        data = json.loads(settings.read_text()) if settings.exists() else {}
        data["output_dir"] = str(outdir)
        data.setdefault("generation", {}).update(width=64, height=64, steps=1)
        settings.write_text(json.dumps(data, indent=2))
        distill = [str(self.venv / "bin" / "distill")]
        with PtyApp(distill, self.env, self.work, self.work / "tui-generate.out") as app:
            app.wait_for(FIRST_PAINT, 120, "first paint")
            app.wait_quiet(0.5, 10)  # the form is mounted and the prompt focused
            app.write(TUI_PROMPT.encode())
            app.wait_for(TUI_PROMPT.encode(), 20, "the typed prompt")
            app.write(CTRL_G)
            png = _wait_png(outdir, 300, app)
            self.log(f"  {png.name} after {app.elapsed():.1f}s")
            info = check_png(png, 64, 64, TUI_PROMPT)
            self.log(f"  {info}")
            time.sleep(1.0)  # let the screen take the result in
            app.write(CTRL_Q)
            app.expect_clean_exit(30)
            self.log(f"  ctrl+q: rc 0 after {app.exit_s:.2f}s, alternate screen left")
        left = _procs_of(self.venv)
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _procs_of(self.venv)
        if left:
            raise StepFailed(f"processes of the smoke venv left after quitting: {left}")

    # ---- main ----------------------------------------------------------------------
    def main(self) -> int:
        ok = False
        try:
            self.step("venv (fresh, no test extra)", self.make_venv)
            wheel = self.step("wheel", self.build_wheel)
            self.log(f"  {wheel.name}")
            self.step("install wheel", self.install, wheel)
            self.step("new login shell finds distill (README's PATH line)", self.login_shell)
            self.step("tiny Hub", self.start_hub)
            self.step("distill --version", self.version)
            self.step("distill models list --json", self.models_list, False)
            self.step("distill models download", self.download)
            if not self.args.skip_mirror:
                self.step("distill models download (VAE 404 -> mirror)", self.mirror_download)
            self.step("distill models use", self.use)
            self.step("distill models list --json (ready)", self.models_list, True)
            self.step("distill generate", self.generate)
            if not self.args.skip_upscale:
                self.step(f"distill models download {UPSCALER}", self.download_upscaler)
                self.step("distill upscale --json (4x)", self.upscale)
            self.step("distill doctor", self.doctor)
            self.step("TUI: first paint, ctrl+q", self.tui_quit)
            if not self.args.skip_tui_generate:
                self.step("TUI: ctrl+g", self.tui_generate)
            if not self.args.skip_zimage:  # last: it makes Z-Image the active model
                self.step(f"distill models download {ZIMAGE}", self.download_zimage)
                self.step(f"distill models use {ZIMAGE}", self.use_zimage)
                self.step(f"distill generate --model {ZIMAGE}", self.generate_zimage)
            ok = True
        except StepFailed:
            pass
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (see main): stop the Hubs, say so
            self.log("interrupted")
            self.cleanup(False)
            return 130
        finally:
            if not self.cleaned:
                self.cleanup(ok)
        width = max(len(n) for n, _ in self.times) if self.times else 0
        print("\nstep times:")
        for name, dt in self.times:
            print(f"  {name:<{width}}  {dt:7.1f}s")
        total = time.monotonic() - self.t0
        print(f"  {'total':<{width}}  {total:7.1f}s")
        print(f"plain-install smoke {'PASSED' if ok else 'FAILED'} in {total:.1f}s", flush=True)
        return 0 if ok else 1


class PtyApp:
    """A program on a pseudo-terminal of COLS x ROWS; its output is collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, record: Path):
        import pty

        self.record = record  # the raw output is written here at the end

        self.t0 = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:  # child: size the terminal before the program asks for it
            try:
                import fcntl
                import termios

                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.rc: int | None = None
        self.exit_s = 0.0
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child side closed
                return
            if not data:
                return
            with self.lock:
                self.buf += data

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def output(self) -> bytes:
        with self.lock:
            return bytes(self.buf)

    def screen_text(self) -> str:
        """The output without escape sequences (for error messages)."""
        text = self.output().decode("utf-8", "replace")
        text = re.sub(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[P\]_^].*?(\x07|\x1b\\)|\x1b.", "", text)
        return re.sub(r"[ \t]{2,}", " ", text)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def poll(self) -> int | None:
        if self.rc is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
        return self.rc

    def wait_for(self, marker: bytes, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.output():
                return
            if self.poll() is not None:
                raise StepFailed(f"the TUI exited (rc {self.rc}) before {what}", self.screen_text())
            time.sleep(0.05)
        raise StepFailed(f"no {what} ({marker!r}) within {timeout:.0f}s", self.screen_text())

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Until no output came for ``quiet`` seconds (the app is idle), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.output()), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            time.sleep(0.05)
            n = len(self.output())
            if n != seen:
                seen, since = n, time.monotonic()

    def expect_clean_exit(self, timeout: float) -> None:
        t = time.monotonic()
        deadline = t + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.rc is None:
            raise StepFailed(
                f"the TUI did not exit within {timeout:.0f}s of ctrl+q", self.screen_text()
            )
        self.reader.join(timeout=5)
        out = self.output()
        if self.rc != 0:
            raise StepFailed(f"the TUI exited with rc {self.rc}", self.screen_text())
        on, off = out.rfind(ALT_ON), out.rfind(ALT_OFF)
        if on < 0 or off < on:
            raise StepFailed("the TUI did not leave the alternate screen", self.screen_text())
        rest = out[off + len(ALT_OFF) :]
        # what may follow: mode resets and the like, never text or a traceback
        if re.sub(
            rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[\]P_^][^\x07\x1b]*(\x07|\x1b\\)|\r|\n", b"", rest
        ):
            raise StepFailed(
                f"output after leaving the alternate screen: {rest[:500]!r}", self.screen_text()
            )
        self.exit_s = time.monotonic() - t

    def __enter__(self) -> PtyApp:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 5
                while self.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self.rc is not None:
                    break
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.record.write_bytes(self.output())


# ---- checks ------------------------------------------------------------------------------
def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise StepFailed(f"{path} is not a PNG")
    chunks, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0]:
            raise StepFailed(f"{path}: bad CRC in chunk {kind!r}")
        chunks.append((kind, body))
        pos += 12 + n
        if kind == b"IEND":
            break
    return chunks


def png_text(chunks: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, body in chunks:
        if kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"zTXt":
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = zlib.decompress(v[1:]).decode("latin-1")
        elif kind == b"iTXt":
            k, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            _lang, rest = rest.split(b"\0", 1)
            _tkey, text = rest.split(b"\0", 1)
            out[k.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode()
    return out


def check_png(path: Path, width: int, height: int, prompt: str) -> str:
    if not path.is_file():
        raise StepFailed(f"{path} was not written")
    chunks = png_chunks(path)
    if not chunks or chunks[0][0] != b"IHDR":
        raise StepFailed(f"{path}: no IHDR")
    w, h = struct.unpack(">II", chunks[0][1][:8])
    if (w, h) != (width, height):
        raise StepFailed(f"{path} is {w}x{h}, expected {width}x{height}")
    if not any(k == b"IDAT" for k, _ in chunks):
        raise StepFailed(f"{path}: no image data")
    text = png_text(chunks)
    params = text.get("parameters", "")
    if prompt not in params or not re.search(r"Steps: \d+", params):
        raise StepFailed(f"{path}: no parameters text chunk with the prompt: {text}")
    first = params.replace("\n", " | ")
    return f"{w}x{h} PNG, {path.stat().st_size} bytes, parameters: {first[:160]}"


def _wait_png(outdir: Path, timeout: float, app: PtyApp) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pngs = sorted(outdir.rglob("*.png")) if outdir.exists() else []
        for p in pngs:
            try:  # complete: ends with IEND (outputs are written atomically, but be safe)
                if p.read_bytes()[-12:][4:8] == b"IEND":
                    return p
            except OSError:
                pass
        if app.poll() is not None:
            raise StepFailed(f"the TUI exited (rc {app.rc}) before a PNG", app.screen_text())
        time.sleep(0.2)
    raise StepFailed(f"no PNG in {outdir} within {timeout:.0f}s of ctrl+g", app.screen_text())


def _same_bytes(a: Path, b: Path) -> bool:
    """The same contents, read in blocks (the tiny Z-Image files are sparse: 226 MB of holes)."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 22), fb.read(1 << 22)
            if x != y:
                return False
            if not x:
                return True


def _procs_of(venv: Path) -> list[str]:
    """Running processes started from ``venv`` (an engine child left behind, say)."""
    found = []
    needle = str(venv).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmd:
            args = cmd.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{d.name}: {args[:200]}")
    return found


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SCRUB}


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def _tail(text: str, n: int) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def _cmd(argv: list[str]) -> str:
    return " ".join(argv)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the work dir (XDG dirs, outputs)")
    ap.add_argument("--skip-mirror", action="store_true", help="no VAE-from-the-mirror step")
    ap.add_argument("--skip-tui-generate", action="store_true", help="no ctrl+g in the TUI")
    ap.add_argument("--skip-upscale", action="store_true", help="no upscaler download/upscale")
    ap.add_argument(
        "--skip-zimage", action="store_true", help="no Z-Image-Turbo download/generate (~70 s)"
    )
    ap.add_argument(
        "--install-timeout",
        type=float,
        default=1800,
        help="seconds for pip install (a cold stable-diffusion-cpp-python build is ~4 min)",
    )
    smoke = Smoke(ap.parse_args(argv))

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    return smoke.main()


if __name__ == "__main__":
    raise SystemExit(main())
