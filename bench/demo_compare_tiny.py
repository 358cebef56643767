"""A quant comparison sheet on the tiny synthetic Klein set, offline and in a throwaway home.

    .venv/bin/python -m bench.demo_compare_tiny /tmp/distill-compare [distill compare flags...]

Writes the tiny set plus a second DiT and a second Qwen3 (other random weights) into
``<home>/files``, installs them as the model ``tiny-compare`` with two diffusion quants
(Q4_K_S, Q8_0) and two text encoder quants (Q3_K_M, Q4_K_M) in ``<home>``'s XDG dirs (the
same setup as ``tests/test_compare.py``), then runs ``distill compare`` there. Without
flags: ``"a lighthouse on a cliff at dusk, oil painting" --seed 42``; the sheet path is
printed on stdout. Add ``-o FILE`` to choose where the sheet goes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    home = Path(argv.pop(0)).resolve()
    env = dict(os.environ)
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
    ):
        env[var] = os.environ[var] = str(home / sub)
    from distill_tui.paths import AppPaths
    from tests import tinymodels
    from tests.compare_helpers import install_compare_model

    files_dir = home / "files"
    base = tinymodels.make_set(files_dir, "fast")
    spec = tinymodels.SETS["fast"]
    width = tinymodels.llm_out_width(spec["llm_layers"], spec["llm_hidden"])
    files = {
        "dit_a": base["diffusion"],
        "dit_b": tinymodels.write_dit(files_dir / "dit-b.gguf", width, seed=11),
        "llm_a": base["text_encoder"],
        "llm_b": tinymodels.write_llm(
            files_dir / "llm-b.gguf", spec["llm_layers"], spec["llm_hidden"], spec["llm_inter"], 12
        ),
        "vae": base["vae"],
    }
    install_compare_model(AppPaths.from_env(), files)
    args = argv or ["a lighthouse on a cliff at dusk, oil painting", "--seed", "42"]
    cmd = [sys.executable, "-m", "distill_tui", "compare", *args]
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.call(cmd, env=env, cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
