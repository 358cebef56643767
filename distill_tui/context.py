"""Build the core services once (paths, settings, catalog, inventory, resolver) for CLI and TUI."""

from __future__ import annotations

import logging
import logging.handlers
from dataclasses import dataclass, field

from distill_tui.catalog import Catalog, load_catalog
from distill_tui.hftoken import known_tokens
from distill_tui.inventory import Inventory
from distill_tui.paths import AppPaths
from distill_tui.redact import RedactingFilter
from distill_tui.resolver import Resolver
from distill_tui.settings import SettingsStore

log = logging.getLogger("distill_tui")


@dataclass
class CoreContext:
    paths: AppPaths
    settings: SettingsStore
    catalog: Catalog
    inventory: Inventory
    resolver: Resolver
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, paths: AppPaths | None = None) -> CoreContext:
        paths = paths or AppPaths.from_env()
        settings = SettingsStore(paths)
        settings.load()
        loaded = load_catalog(paths.user_catalog_file)
        inventory = Inventory(settings.models_dir).load()
        warnings = [*settings.warnings, *loaded.warnings, *inventory.warnings]
        resolver = Resolver(loaded.catalog, settings, inventory)
        settings.subscribe(lambda _s: follow_models_dir(settings, inventory))
        return cls(paths, settings, loaded.catalog, inventory, resolver, warnings)


def follow_models_dir(settings: SettingsStore, inventory: Inventory) -> None:
    """The one Inventory (shared by the resolver, the download service and the screens)
    follows the Model Directory setting, whoever changed it (Settings, another process)."""
    if inventory.models_dir != settings.models_dir:
        log.info("model directory: %s -> %s", inventory.models_dir, settings.models_dir)
        inventory.rebind(settings.models_dir)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The log file (and each one a rollover starts) is its owner's only (0600)."""

    def _open(self):  # type: ignore[no-untyped-def]
        from distill_tui.atomic import private_opener

        return open(  # noqa: SIM115
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=private_opener,
        )


def setup_logging(paths: AppPaths, debug: bool = False) -> None:
    """A rotating log file in the log dir; ``--debug`` lowers the level to DEBUG."""
    root = logging.getLogger()
    if any(getattr(h, "_distill", False) for h in root.handlers):
        return
    level = logging.DEBUG if debug else logging.INFO
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = _PrivateRotatingFileHandler(
            paths.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        handler = logging.NullHandler()
    handler._distill = True  # type: ignore[attr-defined]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    # every token where the Hub client looks (cheap: no import of its token code at start-up)
    handler.addFilter(RedactingFilter(known_tokens()))
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs full URLs (signed query strings) at INFO; keep it at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
