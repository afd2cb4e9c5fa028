"""Where the app keeps its files, resolved once at start-up and passed down.

Nothing here touches the disk at import time: tests, the self-test and a second profile point
``DESKTOP_UPLOADER_HOME`` at a folder of their own and get a private set of directories, so they
never read or overwrite the user's real queue, settings or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from desktop_uploader import APP_ID
from desktop_uploader.engine.private import private_dir

HOME_ENV = "DESKTOP_UPLOADER_HOME"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    cache_dir: Path  # what can be made again (the sandbox's unpacked storage server); uninstall may leave it

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "uploads.sqlite3"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "desktop-uploader.log"

    def ensure(self) -> AppPaths:
        """Create the folders, readable by this user only (they hold paths, upload ids and logs)."""
        for directory in (self.config_dir, self.data_dir, self.log_dir, self.cache_dir):
            private_dir(directory)
        return self


def resolve_paths(env: Mapping[str, str] | None = None) -> AppPaths:
    """The platform's per-user folders, or one private tree under ``$DESKTOP_UPLOADER_HOME``."""
    env = os.environ if env is None else env
    home = env.get(HOME_ENV)
    if home:
        root = Path(home).expanduser()
        return AppPaths(
            config_dir=root / "config", data_dir=root / "data", log_dir=root / "logs", cache_dir=root / "cache"
        )
    return AppPaths(
        config_dir=Path(platformdirs.user_config_dir(APP_ID, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_ID, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_ID, appauthor=False)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_ID, appauthor=False)),
    )
