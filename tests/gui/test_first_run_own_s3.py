"""A first run offers your own S3 storage as plainly as a server: a direct-S3 audit found it only in
Settings › Advanced, behind a tick box named "Send uploads to this storage"."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from desktop_uploader.connection import Link
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.gui import session as session_module
from desktop_uploader.gui.dialogs import FirstRunChoice
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.gui.test_settings_and_server import save_button, type_keys
from tests.gui.test_settings_trust import open_dialog
from tests.support.storage import object_sha256, open_multipart_uploads


def slowly(read: Callable[..., Any]) -> Callable[..., Any]:
    def slow(*args: Any) -> Any:
        time.sleep(1.0)
        return read(*args)

    return slow


def settings_shown(window: Any) -> Any:
    run_dialog = getattr(window, "settings_dialog", None)
    return run_dialog if run_dialog is not None and run_dialog.isVisible() else None


def test_the_empty_windows_own_s3_button_opens_settings_at_its_fields(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(server="")
    window = desktop.window
    assert desktop.session.link == Link.NEEDS_SETUP
    button = window.empty.setup.own_s3
    assert button.text() == "Use my own S3 storage…" and button.isVisible()
    button.click()
    run(aloop, until(lambda: settings_shown(window), 10, "Settings"))
    dialog = settings_shown(window)
    assert dialog.tabs.currentWidget() is dialog.advanced
    assert dialog.advanced.use_direct.isChecked() and dialog.method.currentData() == "direct-s3"
    assert QApplication.focusWidget() is dialog.direct_endpoint, "ready to type the endpoint"
    # Nothing typed yet is nothing wrong: what is left to fill in, in the window's colour, not the problem red.
    assert dialog.problem.text() == "To send uploads to your own S3 storage, fill in its bucket (Advanced tab)."
    assert dialog.problem.text_colour() == dialog.palette().color(QPalette.ColorRole.WindowText)
    assert not save_button(dialog).isEnabled()
    dialog.direct_endpoint.setText("127.0.0.1:9000")  # no http://: a mistake, in red
    assert "http://" in dialog.problem.text()
    assert dialog.problem.text_colour() != dialog.palette().color(QPalette.ColorRole.WindowText)
    dialog.reject()
    run(aloop, desktop.session.shutdown())


def test_answering_own_s3_to_the_first_run_question_sends_the_waiting_file_there(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keychain slow to answer (one that asks for a password is slower): the waiting file started while its
    # secret was read, with no storage to go to, and failed "Direct uploads need an S3 endpoint…" (a busy CI run).
    monkeypatch.setattr(session_module, "configured_direct", slowly(session_module.configured_direct))
    desktop = make_desktop(server="")
    window, session = desktop.window, desktop.session
    sample = make_file(6 * MiB, name="mine.safetensors")

    async def choose() -> None:
        drop(window, [sample.path])
        await answer(window, "firstRunQuestion", FirstRunChoice.OWN_S3.value)
        await until(lambda: settings_shown(window), 10, "Settings")

    run(aloop, choose())
    dialog = settings_shown(window)
    assert dialog.tabs.currentWidget() is dialog.advanced and dialog.advanced.use_direct.isChecked()
    type_keys(dialog, sandbox, sandbox.secret_key)

    async def save_and_send() -> None:
        save_button(dialog).click()  # the keys are tested first
        await until(lambda: session.model.rows()[0].status == Status.COMPLETED, 60, "the upload to your own S3")

    run(aloop, save_and_send())
    [row] = session.model.rows()
    assert row.method == "direct-s3" and row.result is not None
    assert object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, row.result.s3_key) == []
    assert window.first_run.choices == [FirstRunChoice.OWN_S3]
    assert session.sandbox is None and not (session.paths.data_dir / "sandbox").exists(), "no test storage started"
    # Opened again, Settings shows where uploads go: on Connection, its empty server read as the test storage.
    again = open_dialog(desktop)
    assert again.tabs.currentWidget() is again.advanced and again.advanced.use_direct.isChecked()
    again.reject()
