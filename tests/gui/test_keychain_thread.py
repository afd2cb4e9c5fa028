"""The window never waits on the keychain: it is read on worker threads only, and Settings opens once it answers.

A real Secret Service can take seconds to start over D-Bus on a fresh Linux desktop, and a locked one
waits for a person to answer its unlock prompt; the GUI thread blocked in either froze the window. No
test machine has a keychain, so this one stands in for it (a fake for a fault no real part here can
produce): it records the thread of every call, and can hold its answers as a locked keychain does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import keyring
import pytest
from jaraco.classes import properties
from keyring.backend import KeyringBackend
from PySide6.QtWidgets import QLabel

from desktop_uploader.engine.credentials import SERVICE, token_key
from desktop_uploader.gui.app import start
from tests.gui.conftest import run, until


class HeldKeychain(KeyringBackend):
    """Passwords in memory; every call noted with whether it ran on the GUI thread; answers held while closed."""

    calls: ClassVar[list[tuple[str, bool]]] = []  # class-wide: keyring asks the class itself for its priority
    passwords: ClassVar[dict[tuple[str, str], str]] = {}
    open: ClassVar[threading.Event] = threading.Event()

    @staticmethod
    def note(what: str) -> None:
        HeldKeychain.calls.append((what, threading.current_thread() is threading.main_thread()))

    @properties.classproperty
    def priority(cls) -> float:  # noqa: N805 - keyring's own signature; a Secret Service asks D-Bus here
        HeldKeychain.note("priority")
        return 1.0

    def get_password(self, service: str, username: str) -> str | None:
        self.note("get")
        assert HeldKeychain.open.wait(60), "the test never let the keychain answer"
        return HeldKeychain.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.note("set")
        HeldKeychain.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.note("delete")
        HeldKeychain.passwords.pop((service, username), None)


@pytest.fixture
def held_keychain() -> Iterator[type[HeldKeychain]]:
    before = keyring.get_keyring()
    HeldKeychain.calls.clear()
    HeldKeychain.passwords.clear()
    HeldKeychain.open.set()
    keyring.set_keyring(HeldKeychain())
    try:
        yield HeldKeychain
    finally:
        HeldKeychain.open.set()
        keyring.set_keyring(before)


def test_the_window_starts_and_opens_settings_without_waiting_on_the_keychain(
    make_desktop: Any, aloop: Any, sandbox: Any, held_keychain: type[HeldKeychain]
) -> None:
    desktop = make_desktop(server="", connect=False)  # the fixture saves no token: nothing of the test's own
    window, session = desktop.window, desktop.session
    held_keychain.passwords[(SERVICE, token_key(sandbox.api_url))] = sandbox.token
    session.settings = session.settings.replace(server_url=sandbox.api_url, use_sandbox=False)
    run(aloop, start(desktop))
    assert session.link_label == sandbox.api_url.split("://", 1)[-1], session.link_detail

    held_keychain.open.clear()  # locked: its answer waits for the person at its unlock prompt
    window.open_settings()
    window.open_settings()  # pressed again meanwhile
    ticks: list[int] = []
    run(aloop, until(lambda: ticks.append(1) or len(ticks) > 5, 10, "the window to keep handling events"))
    assert window.settings_dialog is None, "Settings waits for the keychain, the window does not"
    held_keychain.open.set()
    run(aloop, until(lambda: window.settings_dialog is not None, 30, "Settings"))
    dialog = window.settings_dialog
    assert dialog.isVisible() and dialog.token_edit.text() == sandbox.token
    assert "The token is kept in your system keychain." in [label.text() for label in dialog.findChildren(QLabel)]
    run(aloop, asyncio.sleep(0.1))
    assert len([d for d in window.findChildren(type(dialog)) if d.isVisible()]) == 1, "one dialog for two presses"

    assert [what for what, _ in held_keychain.calls].count("get") >= 2, "it was read: to connect, and for Settings"
    assert [what for what, on_gui in held_keychain.calls if on_gui] == [], held_keychain.calls
