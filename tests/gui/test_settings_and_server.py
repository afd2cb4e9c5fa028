"""The settings dialog, and what a person sees when the server fails and comes back."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLabel, QPushButton

from desktop_uploader.engine.api_trial import TRIAL_NAME
from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.engine.settings import load_settings
from desktop_uploader.gui.session import Link
from desktop_uploader.gui.tasks import pending
from tests.gui.conftest import run, until
from tests.gui.test_queue import drop
from tests.gui.test_settings_trust import open_dialog
from tests.support.api_servers import api_server
from tests.support.logfail import FAULTS
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads


def save_button(dialog: Any) -> Any:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def test_settings_reject_invalid_values_persist_valid_ones_and_the_next_upload_uses_them(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop()
    window, session = desktop.window, desktop.session
    dialog = open_dialog(desktop)
    assert dialog.isVisible() and dialog.tabs.count() == 4

    dialog.concurrency.setValue(100)
    assert not save_button(dialog).isEnabled()
    assert "between 1 and 64" in dialog.problem.text()
    dialog.concurrency.setValue(0)
    assert dialog.concurrency.text() == "Auto"
    dialog.files_at_once.setValue(0)
    assert "Files at once must be between 1 and 16" in dialog.problem.text()
    dialog.files_at_once.setValue(1)
    dialog.server_url.setText("ftp://nope")
    assert "must start with http" in dialog.problem.text() and not save_button(dialog).isEnabled()
    dialog.server_url.setText("127.0.0.1:3000")  # as a browser takes it: the whole address is offered, not assumed
    said = "The server address must start with http:// or https://: did you mean http://127.0.0.1:3000?"
    assert dialog.problem.text() == said and not save_button(dialog).isEnabled()
    assert dialog.server_url.text() == "127.0.0.1:3000"
    dialog.server_url.setText(sandbox.api_url)

    dialog.preset.setCurrentText("Fast")
    assert dialog.chunk_size.value() == 16 and dialog.concurrency.value() == 8
    dialog.chunk_size.setValue(6)  # editing a preset's value makes it custom
    assert dialog.preset.currentText() == "Custom"
    dialog.concurrency.setValue(2)
    dialog.auto_start.setChecked(True)
    assert save_button(dialog).isEnabled() and dialog.problem.text() == ""
    events: list[Any] = []
    session.manager.subscribe(events.append)
    sample = make_file(13 * MiB)

    async def scenario() -> None:
        save_button(dialog).click()
        await until(lambda: load_settings(session.paths.settings_file)[0].chunk_size == 6 * MiB, 10, "saved settings")
        drop(window, [sample.path])
        await until(lambda: any(r.status == Status.COMPLETED for r in session.model.rows()), 60, "upload")

    run(aloop, scenario())
    saved = json.loads(session.paths.settings_file.read_text())
    assert saved["chunk_size"] == 6 * MiB and saved["concurrency"] == 2 and saved["preset"] == "Custom"
    started = [e for e in events if isinstance(e, Started)]
    assert started and started[0].part_size == 6 * MiB  # the new upload used the new settings
    row = session.model.rows()[0]
    assert row.result is not None and object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256


def test_restore_defaults_keeps_where_uploads_go(make_desktop: Any) -> None:
    """The server, its token and your own S3 storage stay; a GUI audit saw the S3 fields go but the secret stay."""
    own_s3 = {"direct_endpoint": "http://127.0.0.1:9", "direct_bucket": "mine", "direct_access_key": "AK"}
    desktop = make_desktop(chunk_size=64 * MiB, concurrency=3, method="direct-s3", **own_s3)
    dialog = open_dialog(desktop)
    dialog.direct_secret_edit.setText("the-secret")
    server = dialog.server_url.text()
    dialog.restore_defaults()
    assert dialog.server_url.text() == server and dialog.token_edit.text()
    assert {name: getattr(dialog, name).text() for name in own_s3} == own_s3
    assert dialog.direct_secret_edit.text() == "the-secret"
    assert dialog.method.currentData() == "direct-s3" and dialog.advanced.use_direct.isChecked(), "still sent there"
    assert dialog.chunk_size.value() == 0 and dialog.concurrency.value() == 0  # 0 shows as "Auto"
    dialog.method.setCurrentIndex(dialog.method.findData("chunked"))
    dialog.restore_defaults()
    assert dialog.method.currentData() == "auto", "how files travel is a setting like the others"


def test_test_connection_fails_when_the_servers_links_point_at_storage_out_of_reach(
    make_desktop: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A Next.js audit's route wrote an unreachable storage address into its links: "Test connection" said
    "Connected", and every upload then failed with "refused the connection: the server may be down".
    Saving that server then said "Fix the address or token above": neither was wrong."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{spare.getsockname()[1]}"  # nobody listens there once it is closed
    with api_server(sandbox, tmp_path / "api", s3_public_endpoint=closed) as url:
        dialog = open_dialog(make_desktop())
        dialog.server_url.setText(url)
        dialog.token_edit.setText(sandbox.token)

        async def scenario() -> None:
            save_button(dialog).click()  # a changed server is tested before it is saved
            await until(dialog.save_anyway.isVisible, 30, "the test before saving")

        run(aloop, scenario())
    assert dialog.problem.text() == (
        "Nothing here can fix that: press Save anyway to keep these settings until the server is fixed."
    )
    dialog.reject()
    assert dialog.test_result.text() == (
        f"✗ The server hands out upload links to storage at {closed.removeprefix('http://')}, which can't be "
        "reached from this computer (it refused the connection). The storage address the server writes into "
        "its links is likely wrong (UPLOAD_API_S3_PUBLIC_ENDPOINT on our example servers); tell whoever runs "
        "the server."
    )
    trials = [u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") if TRIAL_NAME in u["Key"]]
    assert trials == [], "the trial upload was aborted"


def test_test_connection_shows_what_the_server_offers(make_desktop: Any, aloop: Any, sandbox: Any) -> None:
    desktop = make_desktop()
    dialog = open_dialog(desktop)

    async def scenario() -> None:
        dialog.test_button.click()
        await until(lambda: dialog.test_result.text().startswith(("✓", "✗")), 20, "the test result")

    run(aloop, scenario())
    assert dialog.test_result.text().startswith("✓ Connected.")
    QApplication.processEvents()
    button_bottom = dialog.test_button.mapTo(dialog, dialog.test_button.rect().bottomLeft()).y()
    result_top = dialog.test_result.mapTo(dialog, dialog.test_result.rect().topLeft()).y()
    text_top = (
        result_top + (dialog.test_result.height() - dialog.test_result.heightForWidth(dialog.test_result.width())) // 2
    )
    assert text_top - button_bottom < dialog.test_result.fontMetrics().lineSpacing(), "the result sits under its button"
    assert "presigned uploads" in dialog.test_result.text() and "chunked uploads" in dialog.test_result.text()

    passed_colour = dialog.test_result.palette().color(QPalette.ColorRole.WindowText)
    dialog.token_edit.setText("wrong-token-wrong-token")
    assert dialog.test_result.text() == "", "the ✓ was about the token before: an audit saw it stay beside a new one"
    run(aloop, _click_and_wait(dialog))
    assert dialog.test_result.text() == "✗ The server did not accept your access token. Check it, or ask for a new one."
    failed_colour = dialog.test_result.palette().color(QPalette.ColorRole.WindowText)
    assert failed_colour == dialog.problem.palette().color(QPalette.ColorRole.WindowText) != passed_colour, "✗ in red"


@pytest.mark.allow_log(*FAULTS)
def test_saving_a_server_that_is_only_busy_says_to_test_again_not_to_fix_the_address(
    make_desktop: Any, aloop: Any, sandbox: Any
) -> None:
    """A 503 without a reason said "Fix the address or token above, or press Save anyway": neither was wrong."""
    with Proxy.start(sandbox.api_url) as proxy:
        proxy.set_fault_plan(lambda request: Respond(503, b"", {"Retry-After": "0"}))
        dialog = open_dialog(make_desktop(retries=1, backoff_base=0.05))
        dialog.server_url.setText(proxy.url)
        dialog.token_edit.setText(sandbox.token)

        async def scenario() -> None:
            save_button(dialog).click()  # a changed server is tested before it is saved
            await until(dialog.save_anyway.isVisible, 30, "the test before saving")

        run(aloop, scenario())
    assert dialog.test_result.text().startswith("✗ The upload server is busy or having trouble (HTTP 503")
    assert dialog.problem.text() == "The server may only be busy: test again in a moment, or press Save anyway."
    dialog.reject()


async def _click_and_wait(dialog: Any) -> None:
    dialog.test_result.setText("")
    dialog.test_button.click()
    await until(lambda: dialog.test_result.text().startswith(("✓", "✗")), 20, "the test result")


@pytest.mark.allow_log(*FAULTS)
def test_a_failing_server_shows_the_reason_and_retry_completes_once_it_is_back(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    with Proxy.start(sandbox.api_url) as proxy:
        proxy.set_fault_plan(lambda request: Respond(503, b'{"error": "maintenance"}', {"Retry-After": "0"}))
        desktop = make_desktop(proxy.url, sandbox.token, retries=2, backoff_base=0.05)
        session = desktop.session
        sample = make_file(3 * MiB)

        async def failing() -> None:
            drop(desktop.window, [sample.path])
            await until(
                lambda: session.model.rowCount() == 1 and session.model.rows()[0].status == Status.FAILED,
                60,
                "the upload to fail",
            )

        run(aloop, failing())
        row = session.model.rows()[0]
        assert row.status_text(0) == (
            "Failed: The upload server reported a problem (while asking what it offers): maintenance. "
            "If this goes on, tell whoever runs that server."
        )
        assert row.primary_action() == RowAction.RETRY

        proxy.set_fault_plan(None)  # the server is back

        async def retrying() -> None:
            session.act(row.job_id, RowAction.RETRY)
            await until(lambda: session.model.rows()[0].status == Status.COMPLETED, 60, "the retried upload")

        run(aloop, retrying())
    done = session.model.rows()[0]
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256


def settings_going_direct(make_desktop: Any) -> tuple[Any, Any]:
    """A window, and its Settings open with the method set to your own S3 storage (on the Behaviour tab)."""
    desktop = make_desktop()
    dialog = open_dialog(desktop)
    dialog.method.setCurrentIndex(dialog.method.findData("direct-s3"))
    return desktop, dialog


def type_keys(dialog: Any, sandbox: Any, secret: str, endpoint: str = "") -> None:
    """Your own S3 storage, as a person types it in Advanced: the sandbox's (or ``endpoint``), with ``secret``."""
    dialog.direct_endpoint.setText(endpoint or sandbox.s3_endpoint)
    dialog.direct_bucket.setText(sandbox.bucket)
    dialog.direct_access_key.setText(sandbox.access_key)
    dialog.direct_secret_edit.setText(secret)


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("direct_bucket", "s3://my-models", "The bucket is its name alone (like my-models), not an address"),
        ("direct_bucket", "my-models/loras", "give 'my-models' as the bucket and 'loras' as the folder in it"),
        ("direct_bucket", "Bad_Bucket!", "A bucket name holds only letters, digits, dots, hyphens and underscores"),
        ("direct_prefix", "../loras", "The folder in the bucket can't have '.' or '..' in its path"),
        ("direct_endpoint", "http://127.0.0.1:9/uploads/", "address alone: http://127.0.0.1:9, without '/uploads'"),
    ],
    ids=["address", "folder", "character", "dot-dot", "bucket-in-endpoint"],
)
def test_a_bucket_or_folder_storage_could_never_take_is_said_before_saving(
    make_desktop: Any, sandbox: Any, field: str, typed: str, said: str
) -> None:
    """A CLI audit's odd bucket and folder came back as storage's own vague refusals, after the upload began."""
    _, dialog = settings_going_direct(make_desktop)
    type_keys(dialog, sandbox, sandbox.secret_key)
    assert save_button(dialog).isEnabled() and dialog.problem.text() == ""
    getattr(dialog, field).setText(typed)
    assert said in dialog.problem.text() and not save_button(dialog).isEnabled()
    restored = {"direct_prefix": "loras", "direct_endpoint": sandbox.s3_endpoint}.get(field, sandbox.bucket)
    getattr(dialog, field).setText(restored)
    assert save_button(dialog).isEnabled() and dialog.problem.text() == ""


def test_direct_uploads_to_your_own_s3_storage_from_the_settings(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """Where, in which region and into which folder: RunPod's storage, for one, wants its own region signed."""
    desktop, dialog = settings_going_direct(make_desktop)
    window, session = desktop.window, desktop.session
    assert "fill in its bucket" in dialog.problem.text() and not save_button(dialog).isEnabled()
    assert (dialog.direct_region.text(), dialog.direct_prefix.text()) == ("us-east-1", "loras"), "the defaults"
    sample = make_file(9 * MiB)
    scopes: set[str] = set()

    def signed_for(request: RequestInfo) -> None:  # relays every request; notes the region it was signed for
        scopes.add(request.headers.get("authorization", "").split("Credential=")[-1].split(",")[0])

    with Proxy.start(sandbox.s3_endpoint) as storage:
        storage.set_fault_plan(signed_for)
        type_keys(dialog, sandbox, sandbox.secret_key, endpoint=storage.url)
        dialog.direct_region.setText("eu-ro-1")
        dialog.direct_prefix.setText("/checkpoints/sdxl/")
        assert window.server_label.text().startswith("Server: "), "the server, until direct-s3 is saved"
        host = storage.url.split("//", 1)[1]

        async def scenario() -> None:
            save_button(dialog).click()
            await until(lambda: session.manager.direct is not None, 10, "the direct target")
            want = f"Uploads go to your S3 bucket {sandbox.bucket}/checkpoints/sdxl ({host})"
            await until(lambda: window.server_label.text() == want, 10, "the status bar to say where uploads go")
            drop(window, [sample.path])
            await until(
                lambda: session.model.rowCount() and session.model.rows()[0].status == Status.COMPLETED,
                60,
                "the direct upload",
            )

        run(aloop, scenario())
    row = session.model.rows()[0]
    assert row.method == "direct-s3" and row.result is not None
    assert row.result.s3_key.startswith("checkpoints/sdxl/")
    assert row.status_text(0) == f"Completed · stored as s3://{sandbox.bucket}/{row.result.s3_key}", "where, in full"
    assert object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
    assert {scope.split("/", 2)[-1] for scope in scopes} == {"eu-ro-1/s3/aws4_request"}, scopes
    window.view.setCurrentIndex(session.model.index(0))
    window.activateWindow()
    run(aloop, until(window.isActiveWindow, 10, "the window to have the keyboard again"))
    window.view.setFocus()
    QTest.keySequence(window.view, QKeySequence.StandardKey.Copy)  # no ComfyUI path here: Ctrl+C did nothing
    assert QGuiApplication.clipboard().text() == f"s3://{sandbox.bucket}/{row.result.s3_key}"
    saved = load_settings(session.paths.settings_file)[0]
    assert (saved.direct_region, saved.direct_prefix) == ("eu-ro-1", "checkpoints/sdxl")
    assert sandbox.secret_key not in session.paths.settings_file.read_text()
    assert session.direct_secret() == sandbox.secret_key  # kept by the credential store


def test_typing_your_own_s3_storage_sends_uploads_there_unless_the_box_is_cleared(
    make_desktop: Any, aloop: Any, sandbox: Any
) -> None:
    """A direct-s3 audit typed its storage on Advanced, saw "✓" for its keys and saved: the method, on the
    Behaviour tab, was still Automatic, and its files went on to the test storage."""
    desktop = make_desktop()
    dialog = open_dialog(desktop)
    dialog.tabs.setCurrentWidget(dialog.advanced)
    box = dialog.advanced.use_direct
    assert box.text() == "Send uploads to this storage" and not box.isChecked()
    type_keys(dialog, sandbox, sandbox.secret_key)
    dialog.direct_bucket.clear()
    QTest.keyClicks(dialog.direct_bucket, sandbox.bucket)  # typed, as a person does
    assert box.isChecked() and dialog.method.currentData() == "direct-s3"
    box.click()  # cleared by hand: the method goes back, and typing again doesn't tick it
    assert dialog.method.currentData() == "auto"
    dialog.direct_bucket.clear()
    QTest.keyClicks(dialog.direct_bucket, sandbox.bucket)
    assert not box.isChecked()
    dialog.method.setCurrentIndex(dialog.method.findData("direct-s3"))  # chosen on the Behaviour tab instead
    assert box.isChecked()
    host = sandbox.s3_endpoint.split("//", 1)[1]

    async def scenario() -> None:
        save_button(dialog).click()  # the keys are tested first
        await until(lambda: desktop.session.manager.direct is not None, 30, "the direct target")
        want = f"Uploads go to your S3 bucket {sandbox.bucket}/loras ({host})"
        await until(lambda: desktop.window.server_label.text() == want, 10, "the status bar to say where uploads go")

    run(aloop, scenario())
    assert load_settings(desktop.session.paths.settings_file)[0].method == "direct-s3"


def test_your_own_s3_storage_with_no_server_starts_no_test_storage(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A re-check audit saved its own S3 keys on a first run, with no server: a test storage (SeaweedFS and the
    API) was started for nothing and ran until the window closed."""
    desktop = make_desktop(server="")
    session = desktop.session
    assert session.link == Link.NEEDS_SETUP and session.sandbox is None
    dialog = open_dialog(desktop)
    type_keys(dialog, sandbox, sandbox.secret_key)
    dialog.advanced.use_direct.click()
    sample = make_file(6 * MiB)

    async def scenario() -> None:
        save_button(dialog).click()
        want = f"Uploads go to your S3 bucket {sandbox.bucket}/loras ({sandbox.s3_endpoint.split('//', 1)[1]})"
        await until(lambda: desktop.window.server_label.text() == want, 30, "the status bar to say where")
        await until(lambda: session.link == Link.CONNECTED, 30, "the window to be ready")
        drop(desktop.window, [sample.path])
        await until(
            lambda: session.model.rowCount() == 1 and session.model.rows()[0].status == Status.COMPLETED,
            60,
            "the direct upload",
        )

    run(aloop, scenario())
    assert session.sandbox is None and not (session.paths.data_dir / "sandbox").exists()
    assert not desktop.window.banner.isVisible() and not desktop.window.empty.setup.isVisible()
    row = session.model.rows()[0]
    assert row.method == "direct-s3" and row.result is not None
    assert object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256


def test_your_own_s3_keys_are_tested_before_anything_is_uploaded(
    make_desktop: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A GUI audit saved a wrong secret without a word, and learned it only when a file failed."""
    desktop = make_desktop()
    dialog = open_dialog(desktop)
    page = dialog.advanced
    dialog.tabs.setCurrentWidget(page)
    type_keys(dialog, sandbox, "not-the-secret")
    host = sandbox.s3_endpoint.split("//", 1)[1]

    async def test_keys() -> None:
        page.direct_test_button.setFocus()  # Tab to it, then Space, as from the keyboard
        QTest.keyClick(page.direct_test_button, Qt.Key.Key_Space)
        await until(lambda: page.direct_test_result.text().startswith(("✓", "✗")), 30, "the test's result")

    run(aloop, test_keys())
    assert (
        page.direct_test_result.text()
        == f"✗ Storage at {host} refused your access key or secret (SignatureDoesNotMatch)."
    )
    assert page.direct_test_button.hasFocus(), "focus stays on the button (it went on to the next field's value)"
    needed = page.direct_test_result.heightForWidth(page.direct_test_result.width())
    assert page.direct_test_result.height() >= needed, "the answer is not cut through its second line"
    dialog.direct_secret_edit.setText(sandbox.secret_key)
    assert page.direct_test_result.text() == "", "the result was about the secret before"
    run(aloop, test_keys())
    assert (
        page.direct_test_result.text()
        == f"✓ Uploads to the bucket {sandbox.bucket} at {host} are accepted with these keys."
    )
    leftovers = [u["Key"] for u in open_multipart_uploads(s3, sandbox.bucket) if "/.desktop-uploader-test-" in u["Key"]]
    assert leftovers == [], "the test's own upload was aborted"
    # A mistyped bucket: SeaweedFS, like some other stores, makes a bucket on its first write, so the test
    # upload passed and made it (a direct-s3 audit's "typo-bucket").
    typo = f"typo-{uuid.uuid4().hex[:8]}"
    dialog.direct_bucket.setText(typo)
    run(aloop, test_keys())
    assert page.direct_test_result.text() == f"✗ There is no bucket {typo} at {host}: check its name."
    assert typo not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "the test made no bucket"
    # An endpoint typed without http://: "Testing…" stayed for good (a direct-S3 audit), the reason only below.
    dialog.direct_bucket.setText(sandbox.bucket)
    dialog.direct_endpoint.setText(host)
    run(aloop, test_keys())
    # The reason once, where it was already said, with Save off; the test's own line points to it.
    assert dialog.problem.text() == f"The S3 endpoint must start with http:// or https://: did you mean http://{host}?"
    assert page.direct_test_result.text() == "✗ Not tested: fix what is said below first."
    assert not save_button(dialog).isEnabled()


def press_test_connection(aloop: Any, dialog: Any) -> None:
    """Click Test connection and wait for its result (✓ or ✗)."""

    async def scenario() -> None:
        dialog.test_button.click()
        await until(lambda: dialog.test_result.text().startswith(("✓", "✗")), 30, "the test result")

    run(aloop, scenario())


def test_test_connection_names_the_fix_for_our_users_route_before_any_file_fails(
    make_desktop: Any, aloop: Any, nextjs_original: Any
) -> None:
    """The route as our users run it pins the SDK's empty-body CRC32 into its links; the test said "Connected"."""
    dialog = open_dialog(make_desktop())
    dialog.server_url.setText(nextjs_original.url)
    dialog.token_edit.setText(nextjs_original.alice.token)

    press_test_connection(aloop, dialog)
    said = dialog.test_result.text()
    assert said.startswith("✗ The server's upload links demand a fixed checksum (x-amz-checksum-crc32=AAAAAA==")
    assert said.endswith("'WHEN_REQUIRED' to the options of its S3Client (AWS SDK v3)."), said
    result = dialog.test_result
    assert result.height() >= result.heightForWidth(result.width()), "the fix is cut off"


def test_a_routes_own_path_pasted_into_the_address_is_taken_off_and_said(
    make_desktop: Any, aloop: Any, nextjs_three_fixed: Any
) -> None:
    """A first-time user pasted the route's whole URL; its test said "Connected" and its uploads failed."""
    dialog = open_dialog(make_desktop())
    dialog.server_url.setText(f"{nextjs_three_fixed.url}/myapp")
    press_test_connection(aloop, dialog)  # a failed test first: its red must not colour the note that follows
    assert dialog.test_result.failed
    dialog.token_edit.setText(nextjs_three_fixed.alice.token)
    dialog.server_url.clear()
    dialog.windowHandle().requestActivate()
    QApplication.processEvents()
    dialog.server_url.setFocus()
    assert dialog.server_url.hasFocus(), "the address field never took the keyboard"
    QTest.keyClicks(dialog.server_url, f"{nextjs_three_fixed.url}/api/user/influencers/presigned-upload")
    QTest.keyClick(dialog.server_url, Qt.Key.Key_Tab)  # on to the token: the address is done
    assert dialog.server_url.text() == nextjs_three_fixed.url
    assert dialog.test_result.text() == (
        "The app adds /api/user/influencers/presigned-upload itself, so it was taken off the address."
    )
    assert not dialog.test_result.failed, "a note, not a failure: in the window's text colour, not red"

    press_test_connection(aloop, dialog)
    assert dialog.test_result.text().startswith("✓ Connected."), dialog.test_result.text()
    assert dialog.result_settings().server_url == nextjs_three_fixed.url


def test_saving_a_wrong_secret_for_direct_uploads_says_so_and_saves_nothing_until_fixed(
    make_desktop: Any, aloop: Any, sandbox: Any
) -> None:
    """Test these keys is a button a first-time user may never press: Save tests the keys uploads will use."""
    desktop, dialog = settings_going_direct(make_desktop)
    session = desktop.session
    type_keys(dialog, sandbox, "not-the-secret")
    host = sandbox.s3_endpoint.split("//", 1)[1]
    anyway = dialog.findChild(QPushButton, "saveAnyway")
    dialog.tabs.setCurrentIndex(1)  # Performance: Save is pressed away from the keys it tests

    where_save_was = save_button(dialog).mapTo(dialog, QPoint(0, 0))

    async def saving() -> None:
        QTest.mouseClick(save_button(dialog), Qt.MouseButton.LeftButton)  # a click gives it the focus
        await until(anyway.isVisible, 30, "the keys' test before saving")

    run(aloop, saving())
    assert dialog.isVisible()
    # Enter now tests again: disabled while testing, Save had handed its focus to Cancel, and an audit's Enter
    # there would have thrown away everything typed.
    assert dialog.focusWidget() is save_button(dialog), dialog.focusWidget()
    assert save_button(dialog).mapTo(dialog, QPoint(0, 0)) == where_save_was, "Save moved as Save anyway came"
    reason = dialog.problem
    assert reason.height() >= reason.heightForWidth(reason.width()), "the reason beside Save anyway is cut"
    # The reason once, under the keys' test on the tab brought forward; the row below says what to do.
    assert dialog.tabs.currentWidget() is dialog.advanced
    reason_shown = f"Storage at {host} refused your access key or secret (SignatureDoesNotMatch)."
    assert dialog.advanced.direct_test_result.text() == f"✗ {reason_shown}"
    assert dialog.problem.text() == "Fix the storage details above, or press Save anyway."
    assert load_settings(session.paths.settings_file)[0].method != "direct-s3", "nothing saved yet"
    # The two-line reason takes no room from the tab: its hints were cut through (a GUI audit's finding).
    cut = [
        label.text()
        for label in dialog.advanced.findChildren(QLabel)
        if label.isVisible() and label.wordWrap() and label.height() < label.heightForWidth(label.width())
    ]
    assert cut == []
    assert session.manager.direct is None

    dialog.direct_secret_edit.setText(sandbox.secret_key)
    assert not anyway.isVisible() and dialog.problem.text() == "", "the refusal was about the old secret"
    assert save_button(dialog).mapTo(dialog, QPoint(0, 0)) == where_save_was, "Save moved under the pointer"

    async def saving_fixed() -> None:
        save_button(dialog).click()
        # Until the whole save has run: the keychain is now asked on the first secret saved, and a busy proof
        # run ended the test while the save still had the server's uploads to refresh.
        await until(lambda: session.manager.direct is not None and pending() == 0, 30, "the settings applied")

    run(aloop, saving_fixed())
    assert load_settings(session.paths.settings_file)[0].method == "direct-s3"
    assert session.direct_secret() == sandbox.secret_key


def test_the_window_takes_the_token_from_the_environment_as_the_cli_does(
    qtbot: Any, aloop: Any, make_file: Any, sandbox: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server address, no token in the keychain, DESKTOP_UPLOADER_TOKEN set: it used to say "No access token"."""
    from desktop_uploader.engine.settings import Settings, save_settings
    from desktop_uploader.gui.app import build, start
    from desktop_uploader.gui.session import Link
    from desktop_uploader.paths import resolve_paths

    monkeypatch.setenv("DESKTOP_UPLOADER_TOKEN", sandbox.token)
    paths = resolve_paths().ensure()
    save_settings(paths.settings_file, Settings(server_url=sandbox.api_url, auto_start=True))
    desktop = build(paths)
    qtbot.addWidget(desktop.window)
    desktop.window.show()
    sample = make_file(6 * MiB, name="token-from-env.safetensors")
    model = desktop.session.model

    async def scenario() -> None:
        await start(desktop)
        drop(desktop.window, [sample.path])
        await until(lambda: model.rowCount() == 1 and model.rows()[0].status == Status.COMPLETED, 60, "completion")

    try:
        run(aloop, scenario())
        assert desktop.session.link == Link.CONNECTED
        row = model.rows()[0]
        assert row.result is not None and object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
    finally:
        run(aloop, desktop.session.shutdown())
