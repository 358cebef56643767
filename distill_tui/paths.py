"""Where distill_tui keeps its files. Built once (``AppPaths.from_env``) and passed around.

platformdirs honours ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, ``XDG_CACHE_HOME`` and
``XDG_STATE_HOME`` on Linux, so tests point every directory at ``tmp_path`` through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "distill"


@dataclass(frozen=True, slots=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path

    @classmethod
    def from_env(cls) -> AppPaths:
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            data_dir=Path(dirs.user_data_dir),
            cache_dir=Path(dirs.user_cache_dir),
            state_dir=Path(dirs.user_state_dir),
        )

    @classmethod
    def under(cls, root: Path) -> AppPaths:
        """All directories below one root (tests, portable installs)."""
        return cls(root / "config", root / "data", root / "cache", root / "state")

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def user_catalog_file(self) -> Path:
        return self.config_dir / "model-catalog.json"

    @property
    def default_models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def default_outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "distill.log"

    @property
    def history_file(self) -> Path:
        return self.data_dir / "history.jsonl"
