"""Device detection with injected device lists (no GPU here), and what doctor makes of it."""

from __future__ import annotations

import json

import pytest

from distill_tui import devices
from distill_tui.cli import main as cli_main
from distill_tui.devices import CUDA_REBUILD_COMMAND, Device, detect_machine

CARD_12 = '[{"name":"NVIDIA GeForce RTX 4070","backend":"cuda","total":12e9,"free":11.2e9}]'
EXACT = (
    'CMAKE_ARGS="-DSD_CUDA=ON" pip install --force-reinstall --no-cache-dir '
    "stable-diffusion-cpp-python"
)


def test_the_rebuild_command_is_the_exact_one():
    assert CUDA_REBUILD_COMMAND == EXACT


def test_cpu_build_with_an_nvml_card_gets_the_rebuild_advice():
    m = detect_machine(fake_devices=CARD_12, fake_build="cpu")
    assert not m.build_uses_gpu and m.build_backend == "CPU"
    assert [d.name for d in m.nvml_devices] == ["NVIDIA GeForce RTX 4070"]
    advice = m.rebuild
    assert advice is not None and advice["command"] == EXACT
    assert any("nvcc" in p for p in advice["prerequisites"])
    assert m.gpu is not None and m.gpu.total == 12_000_000_000  # fits against the card
    assert EXACT in (devices.rebuild_notice(m) or "")


def test_cuda_build_uses_the_card_and_needs_no_advice():
    m = detect_machine(fake_devices=CARD_12, fake_build="cuda")
    assert m.build_uses_gpu and m.build_backend == "CUDA"
    assert m.rebuild is None and devices.rebuild_notice(m) is None
    assert m.gpu is not None and m.gpu.source == "fake"


def test_cpu_only_machine_has_no_gpu_and_no_advice():
    m = detect_machine(fake_devices="[]", fake_build="cpu")
    assert m.gpu is None and m.rebuild is None
    assert m.cpu_count >= 1 and m.ram_total


def test_environment_injection(monkeypatch):
    monkeypatch.setenv("DISTILL_FAKE_DEVICES", CARD_12)
    monkeypatch.setenv("DISTILL_FAKE_BUILD", "cpu")
    m = detect_machine()
    assert m.rebuild is not None and m.build_faked


def test_probe_result_of_a_cuda_build_is_read(monkeypatch):
    monkeypatch.delenv("DISTILL_FAKE_BUILD")
    info = {
        "ok": True,
        "version": "0.4.7",
        "backend": "CUDA",
        "registries": ["CUDA", "CPU"],
        "devices": [
            {
                "name": "CUDA0",
                "description": "NVIDIA RTX 4060",
                "type": "GPU",
                "memory_total": 8 * 2**30,
                "memory_free": 7 * 2**30,
            },
            {"name": "CPU", "description": "x", "type": "CPU"},
        ],
    }
    m = detect_machine(fake_devices=[], probe=lambda: info)
    assert m.engine_devices == [Device("NVIDIA RTX 4060", "cuda", 8 * 2**30, 7 * 2**30)]
    assert m.build_uses_gpu and m.gpu is not None


def test_bad_fake_devices_are_refused():
    with pytest.raises(ValueError):
        devices.parse_fake_devices('{"name": "x"}')


def test_nvml_missing_or_without_driver_is_no_card(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pynvml(name, *a, **k):
        if name == "pynvml":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    cards, _driver, why = devices.nvml_devices()
    assert cards == [] and "not installed" in (why or "")


def test_doctor_json_cpu_build_with_a_12gb_card(app_paths, capsys, monkeypatch):
    monkeypatch.setenv("DISTILL_FAKE_DEVICES", CARD_12)
    rc = cli_main(["doctor", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    machine = doc["machine"]
    assert machine["build"]["backend"] == "CPU" and machine["build"]["uses_gpu"] is False
    assert machine["nvidia"]["devices"][0]["total"] == 12_000_000_000
    assert machine["rebuild"]["command"] == EXACT
    assert machine["fit_device"]["name"] == "NVIDIA GeForce RTX 4070"
    assert machine["cpu"]["count"] >= 1 and machine["ram"]["total"]


def test_doctor_text_shows_the_advice_with_the_exact_command(app_paths, capsys, monkeypatch):
    monkeypatch.setenv("DISTILL_FAKE_DEVICES", CARD_12)
    assert cli_main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA GeForce RTX 4070" in out and "CPU only" in out
    assert f"  {EXACT}\n" in out
    assert "nvcc" in out


def test_doctor_on_a_cpu_only_machine_has_no_advice(app_paths, capsys):
    assert cli_main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "rebuild" not in out.lower() and "sets fit against    RAM" in out
