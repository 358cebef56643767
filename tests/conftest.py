"""Shared test setup: every path in tmp_path, no real token, snapshots under snapshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Shared fixtures of the larger areas live in their own modules.
pytest_plugins = ["tests.hub_fixtures", "tests.engine_fixtures"]


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config, data, cache and state all under tmp_path; no token, no endpoint, no HF_* variable
    at all, no proxy."""
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "xdg/config"),
        ("XDG_DATA_HOME", "xdg/data"),
        ("XDG_CACHE_HOME", "xdg/cache"),
        ("XDG_STATE_HOME", "xdg/state"),
    ):
        d = tmp_path / sub
        d.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(d))
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    # the user's Hugging Face environment never leaks in (HF_HUB_OFFLINE, HF_ENDPOINT, a token,
    # a cache, timeouts, CA bundles): every HF_* variable is cleared
    import os

    for var in list(os.environ):
        if var.startswith(("HF_", "HUGGINGFACE_", "HUGGING_FACE_")) or var in (
            "TRANSFORMERS_OFFLINE",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        ):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-such-token"))
    # the HF cache (reuse before download) is this test's own: huggingface_hub computes it
    # once, at import, so the constant itself points into tmp_path (children get the env)
    from huggingface_hub import constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "xdg/cache/huggingface/hub"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    # the machine is a CPU build with no GPU unless a test says otherwise (distill_tui.devices):
    # no engine probe per app, and a developer's own GPU never shows in a snapshot
    monkeypatch.setenv("DISTILL_FAKE_DEVICES", "[]")
    monkeypatch.setenv("DISTILL_FAKE_BUILD", "cpu")
    return tmp_path


@pytest.fixture
def app_paths(isolated_dirs: Path):
    from distill_tui.paths import AppPaths

    return AppPaths.from_env()


# ---- snapshots live in the top-level snapshots/ folder ----------------------------------
# pytest-textual-snapshot has no option for the directory: rebind its extension class to one
# whose dirname() points at snapshots/<test file stem>/ (snap_compare looks the name up at call
# time, so rebinding the module global is enough).
import pytest_textual_snapshot as _snap  # noqa: E402


class _TopLevelSVG(_snap.SVGImageExtension):
    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[override]
        return str(ROOT / "snapshots" / Path(test_location.filepath).stem)


_snap.SVGImageExtension = _TopLevelSVG  # type: ignore[misc]
