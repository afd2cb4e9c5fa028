"""Secrets (the API token, a direct-S3 secret key) in the OS keychain, or a private file where there is none.

Linux desktops without a Secret Service, headless machines and CI have no usable keychain; there
the secrets go to a file in the config dir that only the user can read, and :attr:`where` says so
in words the settings dialog shows. Nothing here ever logs a secret.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from types import ModuleType

from desktop_uploader.engine.private import private_dir

log = logging.getLogger(__name__)

SERVICE = "desktop-uploader"


def token_key(server_url: str) -> str:
    return f"token:{server_url.rstrip('/')}"


def direct_secret_key(endpoint: str, access_key: str) -> str:
    return f"s3-secret:{endpoint or 'aws'}:{access_key}"


def _keyring() -> ModuleType:
    """keyring, imported when a secret is first needed: it costs every CLI command 60 ms otherwise."""
    import keyring
    import keyring.errors

    return keyring


def _keyring_usable() -> bool:
    try:
        backend = _keyring().get_keyring()
        priority = getattr(backend, "priority", 0)
        name = type(backend).__module__
    except Exception:  # a broken backend configuration must not stop the app
        return False
    return bool(priority and priority > 0) and not name.startswith(("keyring.backends.fail", "keyring.backends.null"))


class CredentialStore:
    def __init__(self, fallback_file: Path, *, use_keyring: bool | None = None) -> None:
        self.fallback_file = fallback_file
        self._use_keyring = use_keyring
        self._asking = threading.Lock()

    @property
    def use_keyring(self) -> bool:
        """Whether secrets go to the keychain, asked the first time a secret is needed, not when made.

        Asking loads the keychain's backend and, on Linux, asks the Secret Service over D-Bus, which can
        take seconds on a fresh desktop: the window makes its store on the GUI thread, and a person on the
        test storage may never need a secret at all (nor the ~10 MiB the backend's libraries take)."""
        with self._asking:
            if self._use_keyring is None:
                self._use_keyring = _keyring_usable()
            return self._use_keyring

    @use_keyring.setter
    def use_keyring(self, value: bool) -> None:
        self._use_keyring = value

    @property
    def where(self) -> str:
        if self.use_keyring:
            return "your system keychain"
        return f"a private file ({self.fallback_file}), because this system has no keychain"

    def _read_file(self) -> dict[str, str]:
        try:
            raw = json.loads(self.fallback_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(raw, dict) else {}
        )

    def _write_file(self, data: dict[str, str]) -> None:
        private_dir(self.fallback_file.parent)
        tmp = self.fallback_file.with_name(self.fallback_file.name + ".tmp")
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(descriptor, 0o600)  # a .tmp left behind by a crash keeps its old mode otherwise
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.fallback_file)
        with contextlib.suppress(OSError):
            os.chmod(self.fallback_file, 0o600)

    def get(self, name: str) -> str | None:
        if self.use_keyring:
            keyring = _keyring()
            try:
                return keyring.get_password(SERVICE, name)  # type: ignore[no-any-return]
            except keyring.errors.KeyringError as exc:
                log.warning("The keychain could not be read (%s); using the private file", type(exc).__name__)
        return self._read_file().get(name)

    def set(self, name: str, secret: str) -> None:
        if self.use_keyring:
            keyring = _keyring()
            try:
                keyring.set_password(SERVICE, name, secret)
                return
            except keyring.errors.KeyringError as exc:
                log.warning("The keychain refused the secret (%s); using the private file", type(exc).__name__)
                self.use_keyring = False
        data = self._read_file()
        data[name] = secret
        self._write_file(data)

    def delete(self, name: str) -> None:
        if self.use_keyring:
            keyring = _keyring()
            with contextlib.suppress(keyring.errors.KeyringError):
                keyring.delete_password(SERVICE, name)
        data = self._read_file()
        if data.pop(name, None) is not None:
            self._write_file(data)
