"""The terminal probe (image_probe): it asks what textual-image would ask, before Textual owns
the terminal, without importing numpy or Pillow (they came with textual-image's import and
competed with the first paint); textual-image is imported later with its questions
suppressed and the renderer the answers chose."""

from __future__ import annotations

import fcntl
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

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
from distill_tui import image_probe
image_probe.start()
image_probe.finish()
heavy = sorted(m for m in ("numpy", "PIL", "textual_image.renderable") if m in sys.modules)
widgets = image_probe.widget_module()
import textual_image.renderable as r
from textual_image._terminal import get_cell_size
size = get_cell_size()
print("RESULT", json.dumps({"detected": image_probe.detected, "heavy": heavy,
      "renderable": r.Image.__module__.rsplit(".", 1)[-1], "cell": [size.width, size.height]}),
      flush=True)
"""


QUERIES = (b"\x1b[c", b"\x1b_G", b"\x1b[16t")  # Sixel (DA1), Kitty, cell size


def run_probe(answers: dict[bytes, bytes], pixels: tuple[int, int] = (0, 0)) -> dict:
    """Run the probe on a pty whose 'terminal' answers the given queries; the RESULT line."""
    master, slave = pty.openpty()
    # 120x40 cells, by default no pixel size (as many terminals report it): it must be asked
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, *pixels))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        close_fds=True,
    )
    os.close(slave)
    out = b""
    answered: set[bytes] = set()
    deadline = time.monotonic() + 30
    try:
        while b"RESULT" not in out or b"\n" not in out[out.index(b"RESULT") :]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no result: {out!r}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
            for query, answer in answers.items():
                if query in out and query not in answered:
                    answered.add(query)
                    os.write(master, answer)
    finally:
        proc.wait(10)
        os.close(master)
    line = out[out.index(b"RESULT") :].split(b"\n")[0].decode()
    result = json.loads(line.removeprefix("RESULT "))
    before = out[: out.index(b"RESULT")]
    result["asked"] = [q.decode() for q in QUERIES if q in before]
    return result


@pytest.mark.parametrize(
    "answers, detected, renderable",
    [
        ({b"\x1b[c": b"\x1b[?62;4;22c", b"\x1b[16t": b"\x1b[6;18;9t"}, "sixel", "sixel"),
        (
            {
                b"\x1b[c": b"\x1b[?62;22c",
                b"\x1b_G": b"\x1b_Gi=1;OK\x1b\\",
                b"\x1b[16t": b"\x1b[6;18;9t",
            },
            "kitty",
            "tgp",
        ),
        ({b"\x1b[c": b"\x1b[?62;22c", b"\x1b[16t": b"\x1b[6;18;9t"}, "halfcell", "halfcell"),
    ],
    ids=["sixel", "kitty", "neither"],
)
def test_probe_chooses_as_textual_image_would_without_loading_it(answers, detected, renderable):
    got = run_probe(answers)
    assert got["detected"] == detected
    assert got["heavy"] == []  # asking loaded neither numpy, Pillow nor textual-image's renderers
    assert got["renderable"] == renderable  # textual-image draws with what the answers chose
    assert got["cell"] == [9, 18]  # the size the terminal gave, cached for the widgets


def test_a_silent_terminal_is_asked_once():
    """No answer to the first question: half cells and textual-image's default cell size,
    without waiting for the Kitty query and the size query too."""
    got = run_probe({})
    assert got["detected"] == "halfcell" and got["renderable"] == "halfcell"
    assert got["heavy"] == [] and got["asked"] == ["\x1b[c"]
    assert got["cell"] == [10, 20]  # textual-image's default when nothing tells the size


def test_a_silent_terminal_with_a_pixel_window_size_gets_the_real_cell_size():
    """OpenSSH forwards the window size in pixels: the cell size comes from it, silently."""
    got = run_probe({}, pixels=(960, 640))
    assert got["asked"] == ["\x1b[c"] and got["cell"] == [8, 16]
