"""Issue 22.13: on a 120-column terminal the CLI's retry line fits the width (it wrapped: the
file's label, the bar, the sizes and "retrying (HTTP 503, attempt 2 of 7, next in 2 s)" made
more than 120 cells). A real pty against the loopback Hub."""

from __future__ import annotations

import re

from tests.fakehub import Fault
from tests.pty_tui import PtyTUI
from tests.test_hostile_downloads import M4


def test_retry_line_fits_120_columns(hub_catalog, fake_hub):
    fake_hub.faults.append(
        Fault(
            "status", server="cdn", method="GET", status=503, times=4, headers={"Retry-After": "1"}
        )
    )
    run = PtyTUI("models", "download", M4, "--connections", "1", size=(120, 40))
    try:
        assert run.wait_exit(120) == 0, run.output[-3000:]
    finally:
        run.close()
    raw = re.sub(rb"\x1b\[[0-9;]*m", b"", run.output)
    raw = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\r", b"\n", raw)
    lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    retry = [ln for ln in lines if re.search(r"retr", ln)]
    assert retry, lines[-40:]
    # the whole retry words on the file's own line, next to its label, and within 120 cells
    assert any(
        re.search(r"(diffusion|text encoder|vae).*retr.*next in \d+ s", ln) for ln in retry
    ), retry
    # nothing squeezed out to make room: the bar and the sizes stay whole
    assert not [ln for ln in retry if "…" in ln], retry
    too_wide = [ln for ln in lines if len(ln) > 120]
    assert not too_wide, too_wide
