"""What closing with uploads running promises about a pause.

Our users' route can't renew its upload links (start/complete/abort only): a paused upload keeps its
place only while its links last, and the question used to promise "go on from where they stopped"
whatever the server. It now says until when, and says nothing of the kind for a server that re-signs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox

from desktop_uploader.engine.limits import MiB
from desktop_uploader.gui.dialogs import CloseChoice
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.api_servers import api_server

SEED = {"actions": ("start", "complete", "abort"), "capabilities_enabled": False}


def sending(desktop: Any) -> bool:
    """A part is on its way: the upload was started on the server (and its links, if kept, are kept)."""
    return any(row.sent for row in desktop.session.model.rows())


def close_question_text(desktop: Any, aloop: Any, make_file: Any) -> str:
    """Drop a file, and read the close question while it uploads; the window stays open."""
    window, seen = desktop.window, {}

    async def scenario() -> None:
        drop(window, [make_file(20 * MiB).path])
        await until(lambda: sending(desktop), 30, "a part on its way")
        window.close()
        await until(lambda: window.findChild(QMessageBox, "closeQuestion") is not None, 10, "the close question")
        seen["text"] = window.findChild(QMessageBox, "closeQuestion").informativeText()
        await answer(window, "closeQuestion", CloseChoice.STAY.value)

    run(aloop, scenario())
    assert window.isVisible()
    return seen["text"]


def test_a_server_that_cant_renew_links_is_promised_only_until_they_expire(
    make_desktop: Any, make_file: Any, aloop: Any, sandbox: Any, tmp_path: Path
) -> None:
    with api_server(sandbox, tmp_path / "api", url_expiry_seconds=2 * 3600, **SEED) as url:
        desktop = make_desktop(server=url, bandwidth_limit=2 * MiB)
        text = close_question_text(desktop, aloop, make_file)
        [job_id] = [row.job_id for row in desktop.session.model.rows()]
        first_link_ends = min(expires for _url, expires in desktop.session.state.urls(job_id).values())
    assert 2 * 3600 - 120 < first_link_ends - time.time() <= 2 * 3600, "the links' own lifetime, not a guess"
    when = time.strftime(
        "%H:%M" if time.localtime()[:3] == time.localtime(first_link_ends)[:3] else "%A %H:%M",
        time.localtime(first_link_ends),
    )
    assert text == (
        f"Paused uploads wait in the list for the next time you open the app, and go on from where they stopped if "
        f"you start them before {when}; this server can't renew its upload links, so after that they start again "
        "from the beginning. Cancelled uploads are removed from storage."
    )


def test_a_server_that_renews_links_is_promised_the_upload_goes_on(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    desktop = make_desktop(bandwidth_limit=2 * MiB)
    assert close_question_text(desktop, aloop, make_file) == (
        "Paused uploads wait in the list for the next time you open the app, and go on from where they stopped "
        "when you start them. Cancelled uploads are removed from storage."
    )
