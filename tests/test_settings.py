"""Settings: defaults, migrations, atomic saves, and every kind of bad file survives."""

from __future__ import annotations

import json
import os
import stat

import pytest

from distill_tui.settings import LEGACY_KEYS, SCHEMA_VERSION, Settings, SettingsStore


@pytest.fixture
def store(app_paths):
    return SettingsStore(app_paths)


def _aside(store):
    return sorted(store.path.parent.glob("settings.json.corrupt-*"))


def test_defaults_without_a_file(store, app_paths):
    s = store.load()
    assert s.active_model_id == "flux2-klein-4b"
    assert s.model_quant_selections == {}
    assert store.models_dir == app_paths.data_dir / "models"
    assert store.outputs_dir == app_paths.data_dir / "outputs"
    assert (s.download_concurrency, s.connections_per_file, s.image_renderer) == (1, 8, "auto")
    assert store.warnings == []
    assert not store.path.exists()  # loading never writes


def test_set_quant_persists_at_once(store):
    store.load()
    store.set_quant("flux2-klein-4b", "diffusion", "Q4_K_S")
    on_disk = json.loads(store.path.read_text())
    # per role, each a <role>Quant key; a role with no choice has none
    assert on_disk["model_quant_selections"] == {"flux2-klein-4b": {"diffusionQuant": "Q4_K_S"}}
    again = SettingsStore(store.paths)
    again.load()
    assert again.selection("flux2-klein-4b").diffusion_quant == "Q4_K_S"


def test_quant_selection_is_stored_per_role(store):
    """Issue 21: a selection is keyed by component role (``<role>Quant``), any role the
    family has; an older file's keys (and its nulls) read as they are; another key is
    dropped by name and the rest kept."""
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(
        json.dumps(
            {
                "schema_version": 2,
                "model_quant_selections": {
                    "flux2-klein-4b": {"diffusionQuant": "Q6_K", "textEncoderQuant": None},
                    "my-model": {"clipLQuant": "Q8_0", "bogus": 1},
                },
            }
        )
    )
    store.load()
    assert store.selection("flux2-klein-4b").quants == {"diffusion": "Q6_K"}
    assert store.selection("my-model").get("clipL") == "Q8_0"
    assert any("'model_quant_selections.my-model.bogus'" in w for w in store.warnings)
    store.set_quant("flux2-klein-4b", "textEncoder", "Q8_0")
    store.set_quant("my-model", "t5xxl", "Q4_0")
    store.set_quant("my-model", "clipL", None)
    on_disk = json.loads(store.path.read_text())["model_quant_selections"]
    assert on_disk == {
        "flux2-klein-4b": {"diffusionQuant": "Q6_K", "textEncoderQuant": "Q8_0"},
        "my-model": {"t5xxlQuant": "Q4_0"},
    }
    again = SettingsStore(store.paths)
    again.load()
    assert again.selection("my-model").quants == {"t5xxl": "Q4_0"} and again.warnings == []


def test_save_is_atomic_no_temp_left(store):
    store.load()
    store.update(download_concurrency=2)
    leftovers = [p.name for p in store.path.parent.iterdir() if p.name != "settings.json"]
    assert leftovers == []


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "not valid JSON"),
        (b'{"active_model_id": "flux2-kl', "not valid JSON"),
        (bytes(range(256)), "not valid JSON"),
        (b"[1, 2, 3]", "expected a JSON object, got list"),
        (b'{"download_concurrency": "many"}', "invalid values"),
        (b'{"model_quant_selections": {"m": {"diffusionQuant": 5}}}', "invalid values"),
    ],
    ids=["empty", "half-object", "binary", "list", "wrong-type", "nested-wrong-type"],
)
def test_bad_files_are_moved_aside_and_defaults_used(store, content, problem):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(content)
    s = store.load()
    assert s == Settings()
    assert len(store.warnings) == 1 and problem in store.warnings[0]
    aside = _aside(store)
    assert len(aside) == 1 and aside[0].read_bytes() == content  # nothing lost
    assert aside[0].name in store.warnings[0]
    assert not store.path.exists()


def test_unknown_keys_are_named_and_valid_values_kept(store):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(
        json.dumps(
            {"schema_version": 1, "download_concurency": 3, "active_model_id": "flux2-klein-9b"}
        )
    )
    s = store.load()
    assert s.active_model_id == "flux2-klein-9b"
    assert len(store.warnings) == 1
    assert "unknown key(s) 'download_concurency'" in store.warnings[0]
    assert len(_aside(store)) == 1  # the original is kept
    assert "download_concurency" not in json.loads(store.path.read_text())


def test_legacy_keys_are_migrated_away(store):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    legacy = {k: f"/old/{k}.gguf" for k in LEGACY_KEYS}
    legacy["active_model_id"] = "flux2-klein-9b"
    store.path.write_text(json.dumps(legacy))
    s = store.load()
    assert s.active_model_id == "flux2-klein-9b"
    assert store.warnings == []
    on_disk = json.loads(store.path.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert not set(LEGACY_KEYS) & set(on_disk)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_config_dir_nonroot(store):  # pragma: no cover - CI runs as root
    _read_only_check(store)


def test_read_only_config_dir(store, monkeypatch):
    """A config dir we cannot write: clear error, settings still usable in memory."""
    import distill_tui.settings as mod

    def denied(path, obj):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mod, "atomic_write_json", denied)  # root bypasses chmod here
    _read_only_check(store)


def _read_only_check(store):
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        store.load()
        ok = store.set_quant("flux2-klein-4b", "diffusion", "Q8_0")
        assert ok is False
        assert store.selection("flux2-klein-4b").diffusion_quant == "Q8_0"  # in memory
        assert store.read_only_reason and "cannot save settings" in store.read_only_reason
        assert "kept in memory" in store.read_only_reason
    finally:
        store.path.parent.chmod(0o755)


def test_listeners_are_told_and_a_failing_listener_is_contained(store):
    store.load()
    seen = []
    store.subscribe(lambda s: 1 / 0)
    store.subscribe(lambda s: seen.append(s.active_model_id))
    store.update(active_model_id="flux2-klein-9b")
    assert seen == ["flux2-klein-9b"]


# ---- knob keys renamed to the recipe rows' names (issue 20) -------------------------------

#: a settings file as distill wrote it before the knob keys took their recipe.PARAMS names
OLD_KNOBS = {
    "schema_version": 1,
    "active_model_id": "flux2-klein-9b",
    "generation": {
        "steps": 6,
        "threads": 2,
        "flash_attention": False,
        "offload_to_cpu": True,
        "vae_tiling": True,
        "text_encoder_on_cpu": True,
        "vae_on_cpu": True,
    },
}
RENAMED = {"flash_attention": "flash_attn", "text_encoder_on_cpu": "keep_clip_on_cpu"}
RENAMED["vae_on_cpu"] = "keep_vae_on_cpu"


def test_old_knob_keys_are_read_and_rewritten_with_the_row_names(store):
    """An older file's knob keys keep their values (not 'unknown keys', nothing moved aside)
    and the file is rewritten with the recipe rows' names; the recipe reads them."""
    from distill_tui.recipe import Recipe

    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(OLD_KNOBS))
    g = store.load().generation
    assert store.warnings == [] and _aside(store) == []
    r = Recipe.resolve(None, g)
    assert (r["flash_attn"], r["keep_clip_on_cpu"], r["keep_vae_on_cpu"]) == (False, True, True)
    assert (r["offload_to_cpu"], r["vae_tiling"], r["n_threads"], r["steps"]) == (True, True, 2, 6)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["schema_version"] == 2
    gen = on_disk["generation"]
    assert not set(RENAMED) & set(gen), gen
    assert {new: gen[new] for new in RENAMED.values()} == {
        "flash_attn": False, "keep_clip_on_cpu": True, "keep_vae_on_cpu": True,
    }  # fmt: skip
    again = SettingsStore(store.paths)
    assert again.load() == store.settings and again.warnings == []


def test_an_old_writer_is_adopted_by_reload(store):
    """Another (older) distill on the box writes the old keys: reload_if_changed reads them."""
    store.load()
    store.update(download_concurrency=2)
    data = json.loads(store.path.read_text())
    data["generation"] = {**OLD_KNOBS["generation"]}
    data["schema_version"] = 1
    store.path.write_text(json.dumps(data))
    os.utime(store.path, ns=(1, 1))
    assert store.reload_if_changed()
    assert store.settings.generation.flash_attn is False
    assert store.settings.generation.keep_vae_on_cpu is True
    assert store.settings.download_concurrency == 2


async def test_settings_screen_on_an_old_file_keeps_the_knobs(app_paths):
    """The Settings screen over an old-format file: it opens with no warning, a default saved
    there keeps the knobs the old file held, under the rows' names."""
    from textual.widgets import Input

    from tests.test_settings_screen import make_app, open_settings

    app_paths.config_dir.mkdir(parents=True, exist_ok=True)
    app_paths.settings_file.write_text(json.dumps(OLD_KNOBS))
    from distill_tui.context import CoreContext

    app = make_app(CoreContext.build(app_paths))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_settings(pilot)
        assert app.core.settings.warnings == []
        app.screen.query_one("#gen-steps", Input).value = "8"
        await pilot.pause()
        assert app.core.settings.settings.generation.steps == 8
    gen = json.loads(app_paths.settings_file.read_text())["generation"]
    assert gen["steps"] == 8 and gen["flash_attn"] is False and gen["keep_clip_on_cpu"] is True
    assert gen["keep_vae_on_cpu"] is True and not set(RENAMED) & set(gen)
