"""`distill generate` on a terminal: the progress line of a phase after sampling (decoding,
saving) shows no step count left over from sampling (issue 22.13: "decoding 0/4" after
"sampling 3/4")."""

from __future__ import annotations

import re

from tests.engine_fixtures import install_tiny_model
from tests.pty_tui import PtyTUI


def test_generate_progress_shows_no_stale_step_count_after_sampling(app_paths, tiny_models):
    install_tiny_model(app_paths, tiny_models)
    out_png = app_paths.config_dir.parent / "out.png"
    run = PtyTUI("generate", "a lighthouse", "--steps", "4", "-o", str(out_png), size=(100, 30))
    try:
        assert run.wait_exit(120) == 0, run.output[-2000:]
    finally:
        run.close()
    raw = re.sub(rb"\x1b\[[0-9;]*m", b"", run.output)  # colours: same line
    raw = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\r", b"\n", raw)  # cursor moves, erases: new frame
    lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    assert any("sampling" in ln and "/4" in ln for ln in lines), lines[-40:]
    after = [ln for ln in lines if ln.lstrip().startswith(("decoding", "saving"))]
    assert after, lines[-40:]
    stale = [ln for ln in after if re.search(r"\d+/\d+", ln)]
    assert not stale, stale
