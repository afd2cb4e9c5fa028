"""An upload whose connection is lost is tried again by itself once storage is back (gui/reconnect.py).

A network audit froze storage for a minute: every part ran out of tries, the upload failed, and it
stayed failed after storage came back until someone pressed Retry. Here the real window uploads
through the real API to SeaweedFS behind a proxy that goes down (connections refused and reset, as
when the network drops) and comes back on the same port. The ladder's delays are shortened for the
test; what is checked is the order of what happens, never how long it takes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Failed, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.gui.queue_delegate import status_color
from desktop_uploader.gui.reconnect import Reconnector
from tests.gui.conftest import run, until
from tests.gui.test_queue import drop
from tests.support.api_servers import api_server
from tests.support.logfail import FAULTS
from tests.support.proxy import Proxy
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.mark.allow_log(*FAULTS)
def test_a_lost_connection_is_tried_again_by_itself_once_storage_is_back(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    sample = make_file(24 * MiB, name="wifi-drop.safetensors")
    with (
        Proxy.start(sandbox.s3_endpoint) as storage,
        api_server(sandbox, tmp_path / "api", s3_public_endpoint=storage.url) as url,
    ):
        desktop = make_desktop(
            url,
            sandbox.token,
            retries=2,
            backoff_base=0.05,
            chunk_size=5 * MiB,
            concurrency=2,
            bandwidth_limit=3 * MiB,
        )
        session, model = desktop.session, desktop.session.model
        session.reconnect.delays = (0.3,) * 5
        seen: dict[str, Any] = {}

        async def scenario() -> None:
            drop(desktop.window, [sample.path])
            await until(lambda: model.rowCount() == 1 and model.rows()[0].confirmed >= 5 * MiB, 60, "a part stored")
            storage.down()  # the network drops: connections refused, those open reset
            await until(lambda: model.rows()[0].status == Status.FAILED, 60, "the parts to run out of tries")
            row = model.rows()[0]
            seen["failed"], seen["stored"] = row.status_text(time.monotonic()), row.confirmed
            seen["actions"] = row.actions()
            # The bar said "1 failed" beside a row counting down to its next try (a network audit).
            summary = desktop.window.summary_label
            await until(lambda: "1 trying again soon" in summary.text(), 30, "the bar to say it tries again")
            seen["summary"] = summary.text()
            # ...and its countdown in the amber of a retry, not a failure's red (a re-check audit)
            await until(lambda: model.rows()[0].reconnect_at is not None, 30, "a countdown to the next try")
            waiting, palette = model.rows()[0], desktop.window.view.palette()
            given_up = waiting.copy()
            given_up.reconnect_at = None
            seen["colours"] = (status_color(waiting, palette, 0.0), status_color(given_up, palette, 0.0))
            storage.up()  # it comes back
            await until(lambda: model.rows()[0].status == Status.COMPLETED, 120, "the upload to go on by itself")

        run(aloop, scenario())
        puts = [r for r in storage.stats.completed("PUT") if "partNumber" in r.query]
    assert seen["failed"].startswith("Trying again in "), seen["failed"]
    assert "refused the connection" in seen["failed"] or "was lost" in seen["failed"], seen["failed"]
    assert RowAction.RETRY in seen["actions"], "Retry still goes at once"
    assert "failed" not in seen["summary"], seen["summary"]
    countdown, failure = seen["colours"]
    assert countdown != failure
    done = model.rows()[0]
    assert done.result is not None
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    listed = s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=done.result.s3_key).get("Contents", [])
    assert [o["Key"] for o in listed] == [done.result.s3_key], "exactly one object"
    assert not open_multipart_uploads(s3, sandbox.bucket, done.result.s3_key)
    parts = [r.query for r in puts]
    assert len(parts) <= 5 + seen["stored"] // (5 * MiB), "what was stored before the drop was not sent again"


def test_the_ladder_climbs_resets_when_something_is_stored_and_ends(qtbot: Any) -> None:
    """10 s, 30 s, … then given up; a try that stored something starts the ladder afresh."""
    shown: list[Any] = []
    retried: list[str] = []
    reconnect = Reconnector(retried.append, shown.append, delays=(10.0, 30.0, 60.0))
    lost = Failed("job", "The connection was lost.", True, kind="NetworkError")
    assert [reconnect.failed(lost, stored=0) for _ in range(2)] == [True, True]
    assert [e.delay for e in shown] == [10.0, 30.0]
    reconnect.progressed("job", 0)  # nothing new stored: the ladder goes on
    assert reconnect.failed(lost, stored=0) and shown[-1].delay == 60.0
    assert not reconnect.failed(lost, stored=0), "given up after the last step: Retry is the person's"
    assert reconnect.failed(lost, stored=5 * MiB) and shown[-1].delay == 10.0, "a new loss starts afresh"
    reconnect.progressed("job", 10 * MiB)  # stored something since: the next loss starts at 10 s again
    assert reconnect.failed(lost, stored=10 * MiB) and shown[-1].delay == 10.0
    refused = Failed("job", "The server did not accept your access token.", True, kind="AuthError")
    assert not reconnect.failed(refused, stored=0)
    assert retried == [], "no try came before its time"
