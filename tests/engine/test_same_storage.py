"""The same storage behind a new server address: its uploads go on there, and aborts owed to the old address are paid.

A CLI audit ran ``desktop-uploader sandbox --data-dir D`` itself, killed it mid-upload and started it
again on the same data: new ports. ``resume`` then told it to "switch back" to an address that would
never return, and ``discard`` left the upload owed there for ever, though the new server listed it.
Here two real API servers in turn front the same SeaweedFS, as that sandbox did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.jobs import ServerConnection
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads

SLOW = Settings(method="presigned", chunk_size=5 * MiB, concurrency=2, bandwidth_limit=4 * MiB)


def paused_with_parts(engine: Any, path: Path) -> tuple[str, str]:
    job_id = engine.manager.add(path)
    engine.wait_for(lambda: engine.manager.job(job_id).confirmed >= 5 * MiB)
    engine.manager.pause(job_id)
    assert engine.manager.wait([job_id], 30)
    record = engine.state.get(job_id)
    assert record is not None and record.s3_key
    return job_id, record.s3_key


def connect(engine: Any, url: str, token: str) -> None:
    engine.manager.set_connection(ServerConnection(url, token, url, "test"))


def test_an_upload_goes_on_at_the_new_address_of_the_same_storage(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    sample = make_file(30 * MiB)
    with api_server(sandbox, tmp_path / "before") as before:
        engine = make_engine(SLOW, api_url=before, token=sandbox.token)
        job_id, key = paused_with_parts(engine, sample.path)
    stored = engine.manager.job(job_id).confirmed
    with api_server(sandbox, tmp_path / "after") as after:  # the same storage, restarted on new ports
        connect(engine, after, sandbox.token)
        engine.manager.update_settings(SLOW.replace(bandwidth_limit=0))
        engine.manager.resume(job_id)
        assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED and done.result is not None, done.message
    assert done.result.s3_key == key, "the same upload went on"
    assert any(e.resumed_bytes >= stored for e in engine.of(job_id, Started)), "from the parts stored before"
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, key)


@pytest.mark.allow_log(*UPLOAD_FAILED, r"^WARNING desktop_uploader\.engine\.ledger: Could not abort ")
def test_an_abort_owed_to_the_old_address_is_paid_through_the_new_one(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    sample = make_file(30 * MiB)
    with api_server(sandbox, tmp_path / "before") as before:
        engine = make_engine(SLOW.replace(retries=1), api_url=before, token=sandbox.token)
        job_id, key = paused_with_parts(engine, sample.path)
    engine.manager.cancel(job_id)  # the old address is gone: the abort is owed to it (in the background)
    engine.wait_for(lambda: [r.s3_key for r in engine.manager.owed_aborts()] == [key], 60)
    assert open_multipart_uploads(s3, sandbox.bucket, key)

    with api_server(sandbox, tmp_path / "after") as after:
        connect(engine, after, sandbox.token)
        swept = engine.manager.sweep_owed_aborts()
    assert (swept.settled, swept.elsewhere) == (1, 0)
    assert engine.manager.owed_aborts() == []
    assert not open_multipart_uploads(s3, sandbox.bucket, key), "nothing left in storage"
