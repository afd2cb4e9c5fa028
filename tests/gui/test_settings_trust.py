"""The settings dialog a person can trust (issue 14), driven on the real window offscreen.

Found by a user test: Enter after "Test connection" reset every setting, out-of-range numbers
reverted silently, the fallback box stayed enabled where it means nothing, jargon and mixed units,
server paths in plain view, and a saved unreachable server shown as connected.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QToolButton,
    QWidget,
)
from shiboken6 import isValid

from desktop_uploader.connection import token_key
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.retry import RetryPolicy
from desktop_uploader.engine.settings import load_settings
from desktop_uploader.gui.session import Link
from desktop_uploader.gui.tasks import pending
from tests.gui.conftest import answer, run, until


def save_button(dialog: Any) -> Any:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def save_anyway(dialog: Any) -> Any:
    return dialog.findChild(QPushButton, "saveAnyway")


def open_dialog(desktop: Any) -> Any:
    """Press Settings and wait for it, as a person does: it opens once the saved token and secret are read
    off the GUI thread."""
    window = desktop.window
    window.settings_dialog = None
    window.open_settings()
    asyncio.get_event_loop().run_until_complete(
        until(lambda: window.settings_dialog is not None and window.settings_dialog.isVisible(), 30, "Settings")
    )
    return window.settings_dialog


def type_into(box: QAbstractSpinBox, text: str) -> None:
    """Select what the field shows and type over it, key by key, as a person does."""
    box.selectAll()
    QTest.keyClicks(box, text)


def shown_after_typing(box: QAbstractSpinBox) -> str:
    """What the field shows once the person moves on (Qt shows what was typed until then)."""
    QApplication.sendEvent(box, QFocusEvent(QEvent.Type.FocusOut))
    return box.text()


def test_enter_after_testing_the_connection_saves_and_never_restores_defaults(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(chunk_size=64 * MiB, concurrency=3)
    session, dialog = desktop.session, open_dialog(desktop)
    restore = dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
    finished: list[int] = []
    dialog.finished.connect(finished.append)
    takes_enter = (restore.autoDefault(), dialog.test_button.autoDefault())

    async def scenario() -> None:
        dialog.test_button.click()
        await until(lambda: dialog.test_result.text().startswith(("✓", "✗")), 20, "the test result")
        restore.setFocus()  # where focus landed after the test in the user test
        QTest.keyClick(restore, Qt.Key.Key_Return)
        await until(lambda: finished, 10, "Enter to save")
        await until(lambda: pending() == 0, 30, "saving to finish")

    run(aloop, scenario())
    assert finished == [1]  # accepted: saved, not reset
    saved = load_settings(session.paths.settings_file)[0]
    assert saved.chunk_size == 64 * MiB and saved.concurrency == 3
    assert takes_enter == (False, False)  # a focused Restore Defaults or Test connection never takes Enter


def test_enter_on_a_focused_cancel_cancels_and_saves_nothing(make_desktop: Any, aloop: Any) -> None:
    """A keyboard audit changed a field, Tabbed to Cancel and pressed Enter: the dialog saved."""
    desktop = make_desktop(chunk_size=64 * MiB, concurrency=3)
    dialog = open_dialog(desktop)
    finished: list[int] = []
    dialog.finished.connect(finished.append)
    type_into(dialog.concurrency, "7")
    cancel = dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    cancel.setFocus()
    run(aloop, until(cancel.hasFocus, 10, "the focus on Cancel"))
    QTest.keyClick(cancel, Qt.Key.Key_Return)
    run(aloop, until(lambda: finished, 10, "the dialog to close"))
    assert finished == [0]  # rejected
    saved = load_settings(desktop.session.paths.settings_file)[0]
    assert saved.chunk_size == 64 * MiB and saved.concurrency == 3


def test_restore_defaults_asks_first_and_keeping_is_the_default_answer(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(chunk_size=64 * MiB, concurrency=3)
    dialog = open_dialog(desktop)
    restore = dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)

    async def choose(choice: str) -> Any:
        restore.click()
        await until(lambda: dialog.findChild(QMessageBox, "restoreDefaultsQuestion"), 10, "the question")
        default = dialog.findChild(QMessageBox, "restoreDefaultsQuestion").defaultButton().text()
        await answer(dialog, "restoreDefaultsQuestion", choice)
        await until(lambda: dialog.findChild(QMessageBox, "restoreDefaultsQuestion") is None, 10, "it to close")
        return default

    assert run(aloop, choose("Keep my settings")) == "Keep my settings"  # Enter keeps them
    assert dialog.chunk_size.value() == 64 and dialog.concurrency.value() == 3
    run(aloop, choose("Restore defaults"))
    assert dialog.chunk_size.value() == 0 and dialog.concurrency.value() == 0  # 0 shows as "Auto"
    assert dialog.server_url.text() and dialog.token_edit.text()  # the server and token stay

    dialog.server_url.setText("ftp://half-typed")  # restoring while the address is still being typed
    run(aloop, choose("Restore defaults"))
    assert dialog.server_url.text() == "ftp://half-typed" and "must start with http" in dialog.problem.text()


def test_out_of_range_entries_stay_as_typed_and_say_the_limit(make_desktop: Any) -> None:
    dialog = open_dialog(make_desktop(concurrency=3))
    save = save_button(dialog)

    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.preset.parentWidget()))
    below = dialog.retries.mapTo(dialog, dialog.retries.rect().topLeft())
    type_into(dialog.concurrency, "1000")
    assert dialog.concurrency.value() == 1000
    assert dialog.problem.text() == "Parts sent at once must be between 1 and 64; you entered 1000."
    assert dialog.problem.isVisible() and not save.isEnabled()
    QApplication.processEvents()
    assert dialog.retries.mapTo(dialog, dialog.retries.rect().topLeft()) == below, "a mistake moves no field"
    type_into(dialog.concurrency, "4")
    assert save.isEnabled() and dialog.problem.text() == ""

    type_into(dialog.chunk_size, "0.03")
    assert dialog.chunk_size.value() == 0.03
    assert dialog.problem.text() == "Chunk size must be between 64 KiB and 5 GiB; you entered 0.03 MiB."
    assert not save.isEnabled()
    type_into(dialog.chunk_size, "0")
    assert shown_after_typing(dialog.chunk_size) == "Auto" and save.isEnabled()
    type_into(dialog.chunk_size, "16")

    type_into(dialog.files_at_once, "100")
    assert dialog.files_at_once.value() == 100
    assert dialog.problem.text() == "Files at once must be between 1 and 16; you entered 100."
    type_into(dialog.files_at_once, "2")
    type_into(dialog.retries, "99")
    assert dialog.problem.text() == "Tries per part must be between 1 and 50; you entered 99."


def test_the_fallback_box_is_off_where_the_method_has_no_fallback(make_desktop: Any) -> None:
    dialog = open_dialog(make_desktop(method="chunked"))
    assert not dialog.fallback.isEnabled()
    assert "Only Automatic falls back" in dialog.fallback.toolTip()
    for method in ("presigned", "legacy", "direct-s3"):
        dialog.method.setCurrentIndex(dialog.method.findData(method))
        assert not dialog.fallback.isEnabled() and dialog.method.currentText() in dialog.fallback.toolTip()
    dialog.method.setCurrentIndex(dialog.method.findData("auto"))
    assert dialog.fallback.isEnabled() and "through the server" in dialog.fallback.toolTip()


def test_plain_words_and_one_unit_system(make_desktop: Any) -> None:
    dialog = open_dialog(make_desktop())
    words = [label.text() for label in dialog.findChildren(QLabel)]
    words += [b.text() for b in dialog.findChildren(QAbstractButton)]
    for box in dialog.findChildren(QAbstractSpinBox):
        words += [box.suffix(), box.accessibleName()]  # type: ignore[attr-defined]
    words += [w.accessibleName() for w in dialog.findChildren(QWidget)]
    text = "\n".join(words)
    assert not re.search(r"\bMB\b", text), "MB and MiB mixed in one dialog"
    assert "original app" not in text and "in flight" not in text
    assert "Parts sent at once" in text
    assert "Direct uploads go to your own S3 storage, set on the Advanced tab." in text
    # An audit lowered Files at once and saw the running uploads go on: "apply at once" had promised otherwise.
    assert "a lower one lets the uploads running finish first. The rest apply to uploads that start" in text
    assert any("in MiB" in w for w in words)  # the hint says which unit
    assert dialog.bandwidth.suffix() == " MiB/s"
    counts = {dialog.concurrency: ("1 part", "6 parts"), dialog.retries: ("1 try", "6 tries")}
    counts[dialog.files_at_once] = ("1 file", "6 files")
    for box, (one, six) in counts.items():
        box.setValue(1)
        assert box.text() == one, "'1 parts' read as a slip"
        box.setValue(6)
        assert box.text() == six
    dialog.bandwidth.setValue(2)
    assert dialog.result_settings().bandwidth_limit == 2 * MiB


def test_a_minus_sign_is_refused_where_no_negative_is_possible(make_desktop: Any) -> None:
    """Qt let "-" stand in the bandwidth box with Save on; Enter then kept the old value without a word."""
    dialog = open_dialog(make_desktop())
    dialog.tabs.setCurrentIndex(1)  # Performance
    for box, shown in ((dialog.bandwidth, "1 MiB/s"), (dialog.chunk_size, "1 MiB")):
        box.lineEdit().selectAll()
        QTest.keyClicks(box, "-1")
        assert box.text() == shown and box.hasAcceptableInput()
    assert dialog.result_settings().bandwidth_limit == 1 * MiB


def test_a_tiny_bandwidth_limit_is_kept_or_refused_never_read_as_unlimited(make_desktop: Any) -> None:
    """An audit typed 0.04 MiB/s: the box had one decimal, rounded it to 0, and saved no limit at all."""
    dialog = open_dialog(make_desktop())
    dialog.tabs.setCurrentIndex(1)  # Performance
    box = dialog.bandwidth
    for typed, shown in (("0.04", "0.04 MiB/s"), ("2.5", "2.5 MiB/s"), ("3", "3 MiB/s")):
        box.lineEdit().selectAll()
        QTest.keyClicks(box, typed)
        QTest.keyClick(box, Qt.Key.Key_Tab)
        assert box.text() == shown
        assert dialog.result_settings().bandwidth_limit == round(float(typed) * MiB)
        assert dialog.problem.text() == "" and save_button(dialog).isEnabled()
    box.lineEdit().selectAll()
    QTest.keyClicks(box, "0.001")
    QTest.keyClick(box, Qt.Key.Key_Tab)
    assert box.text() == "0.001 MiB/s"
    assert dialog.problem.text() == (
        "Bandwidth limit must be at least 10.0 KiB/s (0.01 MiB/s), or 0 for none; you entered 1.0 KiB/s."
    )
    assert not save_button(dialog).isEnabled()


def test_choosing_another_preset_leaves_every_field_where_it_was(make_desktop: Any, aloop: Any) -> None:
    """A GUI audit saw the Performance tab's fields jump when the preset became Custom: its one-line
    note was given 14, 22 or 29 px by its wording, and everything under it moved."""
    dialog = open_dialog(make_desktop(connect=False))
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.preset.parentWidget()))
    fields = (dialog.chunk_size, dialog.concurrency, dialog.retries, dialog.files_at_once, dialog.bandwidth)
    note = dialog.preset_note
    placed: dict[str, tuple[int, ...]] = {}
    for name in [dialog.preset.itemText(i) for i in range(dialog.preset.count())]:
        dialog.preset.setCurrentText(name)
        run(aloop, until(lambda: not dialog.layout().activate(), 5, "the layout to settle"))
        placed[name] = tuple(field.mapTo(dialog, field.rect().topLeft()).y() for field in fields)
        assert note.height() == note.heightForWidth(note.width()), f"{name}: the note is as tall as its text"
    assert len(set(placed.values())) == 1, placed


def test_the_preset_follows_the_values_back_and_forth(make_desktop: Any) -> None:
    """A GUI audit typed 0.01 into Chunk size, then 8 again: all of Normal's values, yet the preset stayed
    Custom (only a named preset lets parts follow the connection). The stall timeout a preset sets counts too."""
    dialog = open_dialog(make_desktop(connect=False))
    dialog.preset.setCurrentText("Normal")
    type_into(dialog.chunk_size, "0.01")
    assert dialog.preset.currentText() == "Custom"
    type_into(dialog.chunk_size, "8")
    assert dialog.preset.currentText() == "Custom", "8 MiB typed is a size chosen, not Normal's Auto"
    type_into(dialog.chunk_size, "0")
    assert shown_after_typing(dialog.chunk_size) == "Auto" and dialog.preset.currentText() == "Normal"
    assert dialog.preset_note.text() == "Typical home broadband."
    type_into(dialog.read_timeout, "90")
    assert dialog.preset.currentText() == "Custom", "the Advanced tab's stall timeout is one of the preset's values"
    type_into(dialog.read_timeout, "60")
    assert dialog.preset.currentText() == "Normal"
    type_into(dialog.chunk_size, "64")
    type_into(dialog.concurrency, "8")
    type_into(dialog.retries, "8")
    type_into(dialog.backoff, "2")
    type_into(dialog.read_timeout, "120")
    assert dialog.preset.currentText() == "Very large", "another preset's values, typed, name it"


def test_changing_only_the_retries_keeps_parts_sized_by_the_connection(make_desktop: Any, aloop: Any) -> None:
    """A GUI audit changed only Tries per part: the preset turned Custom and every part became 8 MiB, silently,
    while the field had shown 8 MiB all along whatever size the parts really were."""
    desktop = make_desktop()
    dialog = open_dialog(desktop)
    assert shown_after_typing(dialog.chunk_size) == "Auto"
    finished: list[int] = []
    dialog.finished.connect(finished.append)
    type_into(dialog.retries, "7")
    assert dialog.preset.currentText() == "Custom" and shown_after_typing(dialog.chunk_size) == "Auto"
    dialog.save_button.click()
    run(aloop, until(lambda: finished and pending() == 0, 30, "saving"))
    saved = load_settings(desktop.session.paths.settings_file)[0]
    assert saved.retries == 7 and saved.preset == "Custom" and saved.part_size_follows_link


def test_server_paths_are_in_a_closed_group_for_administrators(make_desktop: Any) -> None:
    dialog = open_dialog(make_desktop())
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Advanced"
    assert dialog.direct_bucket.isVisible()
    toggle = dialog.findChild(QToolButton, "serverPathsToggle")
    assert toggle is not None and "server administrators" in toggle.text()
    assert not any(e.isVisible() for e in (dialog.presigned_path, dialog.chunked_path, dialog.legacy_path))
    toggle.click()
    assert all(e.isVisible() for e in (dialog.presigned_path, dialog.chunked_path, dialog.legacy_path))


def test_saving_an_unreachable_server_says_why_and_saved_anyway_shows_failed(
    make_desktop: Any, aloop: Any, sandbox: Any
) -> None:
    desktop = make_desktop()
    window, session, dialog = desktop.window, desktop.session, open_dialog(desktop)
    links: list[Link] = []
    session.linkChanged.connect(lambda: links.append(session.link))
    dead = "http://127.0.0.1:9"
    dialog.server_url.setText(dead)
    dialog.tabs.setCurrentIndex(2)  # Behaviour: Save is pressed away from the address it tests

    async def save() -> None:
        save_button(dialog).click()
        await until(lambda: save_anyway(dialog) and save_anyway(dialog).isVisible(), 30, "the test before saving")

    run(aloop, save())
    assert dialog.isVisible() and dialog.test_result.text().startswith("✗ ")
    sentence = dialog.test_result.text()[2:]
    assert dialog.tabs.currentWidget() is dialog.connection, "the failed test's tab comes forward"
    assert sentence and dialog.problem.text() == "Fix the address or token above, or press Save anyway."
    assert load_settings(session.paths.settings_file)[0].server_url == sandbox.api_url  # nothing saved yet

    async def saving_anyway() -> None:
        save_anyway(dialog).click()
        await until(lambda: session.link == Link.FAILED, 30, "the saved server")
        await until(lambda: pending() == 0, 30, "saving to finish")

    run(aloop, saving_anyway())
    assert load_settings(session.paths.settings_file)[0].server_url == dead
    assert Link.CONNECTED not in links  # never claimed, not even for a moment
    assert sentence in session.link_detail and sentence in window.banner.text() and not window.banner.isHidden()
    assert window.server_label.text() == "Server: 127.0.0.1:9 · test failed"
    assert sentence in window.server_label.toolTip()


def test_emptying_the_address_and_token_and_saving_forgets_the_token(
    make_desktop: Any, aloop: Any, sandbox: Any
) -> None:
    """An installed-app audit emptied both fields and saved: the token stayed in the private file."""
    desktop = make_desktop()
    session, dialog = desktop.session, open_dialog(desktop)
    assert session.token_for(sandbox.api_url) == sandbox.token
    dialog.server_url.clear()
    dialog.token_edit.clear()

    async def save() -> None:
        save_button(dialog).click()
        await until(lambda: not (isValid(dialog) and dialog.isVisible()) and pending() == 0, 30, "saving to finish")

    run(aloop, save())
    assert load_settings(session.paths.settings_file)[0].server_url == ""
    assert session.credentials.get(token_key(sandbox.api_url)) is None
    assert sandbox.token not in session.credentials.fallback_file.read_text(encoding="utf-8")


def test_clearing_the_address_uses_the_local_sandbox_as_the_hint_promises(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop()
    window, session, dialog = desktop.window, desktop.session, open_dialog(desktop)
    assert any("empty" in label.text() and "sandbox" in label.text() for label in dialog.findChildren(QLabel))
    links: list[Link] = []
    session.linkChanged.connect(lambda: links.append(session.link))
    dialog.server_url.setText("")

    async def scenario() -> None:
        save_button(dialog).click()
        await until(lambda: links and links[-1] != Link.CONNECTING, 90, "the new connection")
        await until(lambda: pending() == 0, 30, "saving to finish")

    run(aloop, scenario())
    assert links[-1] == Link.CONNECTED and session.sandbox is not None and session.settings.use_sandbox
    assert window.server_label.text() == "Server: Test storage (this computer)"


def test_cancelling_while_the_server_is_tested_saves_nothing(make_desktop: Any, aloop: Any, sandbox: Any) -> None:
    desktop = make_desktop()
    session, dialog = desktop.session, open_dialog(desktop)
    other = sandbox.api_url.replace("127.0.0.1", "localhost")
    assert other != sandbox.api_url
    dialog.server_url.setText(other)  # another address for the same, working server
    save_button(dialog).click()
    dialog.reject()  # the person cancels before the test can answer

    run(aloop, until(lambda: pending() == 0, 30, "the test to finish"))
    assert load_settings(session.paths.settings_file)[0].server_url == sandbox.api_url
    assert session.settings.server_url == sandbox.api_url


def test_the_first_retry_wait_is_said_as_the_longest_it_can_be(make_desktop: Any) -> None:
    """A GUI audit read "First retry after 1.00 s" and saw the first retry at 0.8 s: waits are a random share
    of the value (full jitter), never longer, so the field names the longest wait."""
    dialog = open_dialog(make_desktop(connect=False))
    form = dialog.backoff.parentWidget().layout()
    assert form.labelForField(dialog.backoff).text() == "First retry within"
    type_into(dialog.backoff, "2")
    policy = RetryPolicy(5, dialog.backoff.value(), 30.0, rng=lambda: 0.9999)
    assert 1.99 < policy.delay(1) <= 2.0, "the longest first wait is the value typed"
    assert RetryPolicy(5, 2.0, 30.0, rng=lambda: 0.0).delay(1) == 0.0
