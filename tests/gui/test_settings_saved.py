"""Save in Settings says it saved, and what the change means for uploads already sending.

A busy-machine audit raised the parts at once mid-upload, saw nothing change on screen, and could not
tell whether the save had worked.
"""

from __future__ import annotations

from typing import Any

from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.limits import MiB
from tests.gui.conftest import run, until
from tests.gui.test_queue import drop
from tests.gui.test_settings_and_server import save_button
from tests.gui.test_settings_trust import open_dialog
from tests.support.storage import object_sha256, open_multipart_uploads


def said(desktop: Any) -> str:
    return str(desktop.window.statusBar().currentMessage())


def test_saving_with_nothing_sending_says_saved(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop()
    dialog = open_dialog(desktop)
    dialog.concurrency.setValue(3)
    save_button(dialog).click()
    run(aloop, until(lambda: said(desktop).startswith("Settings saved"), 10, "the word that it is saved"))
    assert said(desktop) == "Settings saved." and desktop.session.settings.concurrency == 3


def test_saving_mid_upload_says_the_upload_keeps_its_settings_and_it_does(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop(bandwidth_limit=1 * MiB, chunk_size=5 * MiB, auto_part_size=False)
    session = desktop.session
    events: list[Any] = []
    session.manager.subscribe(events.append)
    sample = make_file(12 * MiB)

    async def sending() -> None:
        drop(desktop.window, [sample.path])
        await until(lambda: session.model.summary.active == 1, 30, "the upload to be sending")

    run(aloop, sending())
    dialog = open_dialog(desktop)
    dialog.chunk_size.setValue(8)
    dialog.bandwidth.setValue(0)  # unlimited: the upload under way speeds up at once

    async def scenario() -> None:
        save_button(dialog).click()
        await until(lambda: said(desktop).startswith("Settings saved"), 10, "the word that it is saved")
        seen["said"] = said(desktop)
        await until(lambda: session.model.rows()[0].status == Status.COMPLETED, 60, "the upload")

    seen: dict[str, str] = {}
    run(aloop, scenario())
    assert seen["said"] == (
        "Settings saved. The upload under way keeps the settings it started with; uploads that start or resume "
        "from now use the new ones. The bandwidth limit applies at once, to every upload."
    )
    [started] = [e for e in events if isinstance(e, Started)]
    assert started.part_size == 5 * MiB, "the upload under way kept its part size"
    result = session.model.rows()[0].result
    assert result is not None and object_sha256(s3, sandbox.bucket, result.s3_key) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, result.s3_key) == []
