"""Esc reaches the app in ~ESCDELAY: the Linux input thread's select is capped."""

from __future__ import annotations

import selectors
import time

import pytest

linux_driver = pytest.importorskip("textual.drivers.linux_driver")


def test_textual_still_builds_its_input_selector_from_the_module_global():
    """If Textual stops calling ``selectors.SelectSelector`` in run_input_thread, the cap
    silently stops working: fail loudly instead."""
    import inspect

    src = inspect.getsource(linux_driver.LinuxDriver.run_input_thread)
    assert "selectors.SelectSelector()" in src
    assert "select(0.1)" in src or "select(" in src


def test_install_caps_select_for_the_driver_only(monkeypatch):
    from distill_tui import term_input

    monkeypatch.setattr(linux_driver, "selectors", selectors)
    assert term_input.install(0.025)
    patched = linux_driver.selectors
    assert patched is not selectors and selectors.SelectSelector is not patched.SelectSelector
    assert patched.EVENT_READ == selectors.EVENT_READ
    import os

    r, w = os.pipe()
    try:
        sel = patched.SelectSelector()
        sel.register(r, patched.EVENT_READ)
        t0 = time.perf_counter()
        assert sel.select(30) == []  # nothing to read: back after the cap, not after 30 s
        waited = time.perf_counter() - t0
        os.write(w, b"\x1b")
        assert sel.select(30)  # data still wakes it
        sel.close()
    finally:
        os.close(r)
        os.close(w)
    assert patched.distill_select_cap == pytest.approx(0.0125)
    assert waited < 5, waited  # generous: uncapped, it would have slept the full 30 s
