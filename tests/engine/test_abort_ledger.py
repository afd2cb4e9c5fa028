"""Owed aborts are sent only to the server (or S3 target) that holds the upload, and kept until it confirms.

Each test starts a real multipart upload on the sandbox's API (server A) and leaves a paused resume
record for it, as a quit app does. Then a session connected somewhere else gives it up. Before the
ledger, that session sent the abort to its own server, read the "no such upload" answer as "gone",
and forgot the record: the upload on A was orphaned for good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.fileid import identify
from desktop_uploader.engine.ledger import where
from desktop_uploader.engine.methods.base import PRESIGNED
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import open_multipart_uploads

OTHER_BUCKET = "other-server-bucket"


def _paused_upload_on(
    api: Api, state: StateStore, path: Path, server_id: str, record_id: str = "0123456789abcdef0123456789abcdef"
) -> UploadRecord:
    """A real multipart upload on ``api``'s server, and the record a paused session leaves for it."""
    size = path.stat().st_size
    started = api.ok(api.presigned({"action": "start", "fileName": path.name, "totalParts": 1, "fileSize": size}))
    record = UploadRecord(
        id=record_id,
        path=str(path),
        display_name=path.name,
        identity=identify(path),
        method=PRESIGNED,
        server=server_id,
        status="paused",
        upload_id=started["uploadId"],
        s3_key=started["s3Key"],
        part_size=size,
        part_count=1,
    )
    state.create(record)
    return record


def _still_open(s3: Any, bucket: str, record: UploadRecord) -> bool:
    return any(u["UploadId"] == record.upload_id for u in open_multipart_uploads(s3, bucket))


@pytest.fixture
def other_server(sandbox: SandboxInfo, s3: Any, tmp_path: Path) -> Any:
    """Server B: the same API code on its own bucket, so it has never heard of A's uploads."""
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    if OTHER_BUCKET not in existing:
        s3.create_bucket(Bucket=OTHER_BUCKET)
    with api_server(sandbox, tmp_path / "server-b", bucket=OTHER_BUCKET) as url:
        yield url


@pytest.mark.allow_log(r"engine\.ledger: ")
def test_a_discard_from_another_server_is_owed_to_the_first_and_sent_when_it_is_back(
    make_engine: Any, make_file: Any, api: Api, sandbox: SandboxInfo, s3: Any, other_server: str, tmp_path: Path
) -> None:
    sample = make_file(6 * 1024 * 1024, name="started-on-a.safetensors")
    store = tmp_path / "state.sqlite3"
    on_b = make_engine(api_url=other_server, server_id="server-b", state_path=store)
    record = _paused_upload_on(api, on_b.state, sample.path, sandbox.server_id)

    settled = on_b.manager.discard_record(record.id)

    assert not settled.aborted and settled.target == sandbox.server_id
    assert _still_open(s3, sandbox.bucket, record), "the upload on A is left for A"
    [owed] = on_b.manager.owed_aborts()
    assert (owed.upload_id, owed.server, owed.status) == (record.upload_id, sandbox.server_id, OWED_ABORT)
    assert on_b.manager.sweep_owed_aborts().elsewhere == 1, "B's sweep leaves A's debt alone"
    on_b.manager.close()
    on_b.state.close()

    on_a = make_engine(server_id=sandbox.server_id, state_path=store)
    sweep = on_a.manager.sweep_owed_aborts()

    assert (sweep.settled, sweep.still_owed, sweep.elsewhere) == (1, 0, 0)
    assert not _still_open(s3, sandbox.bucket, record)
    assert on_a.state.unfinished() == []


@pytest.mark.allow_log(r"engine\.ledger: ")
def test_sessions_with_no_server_or_in_direct_mode_keep_the_debt(
    make_file: Any, api: Api, sandbox: SandboxInfo, s3: Any, direct_target: DirectTarget, tmp_path: Path
) -> None:
    from desktop_uploader.engine.manager import UploadManager

    sample = make_file(6 * 1024 * 1024, name="owed-to-a.safetensors")
    state = StateStore.open(tmp_path / "state.sqlite3")
    record = _paused_upload_on(api, state, sample.path, sandbox.server_id)
    try:
        state.update(record.id, status=OWED_ABORT)
        for direct in (None, direct_target):  # no server at all; then direct-s3 to the same storage
            manager = UploadManager(Settings(), state, None, direct=direct)
            try:
                sweep = manager.sweep_owed_aborts()
            finally:
                manager.close()
            assert (sweep.settled, sweep.elsewhere) == (0, 1), direct
        assert [r.upload_id for r in state.unfinished()] == [record.upload_id]
        assert _still_open(s3, sandbox.bucket, record)
    finally:
        state.close()
        # The debt stays unpaid on purpose here; other tests share this bucket and check it is clean.
        s3.abort_multipart_upload(Bucket=sandbox.bucket, Key=record.s3_key, UploadId=record.upload_id)


@pytest.mark.allow_log(r"engine\.ledger: ", r"engine\.api_transport: API abort failed")
def test_a_server_that_fails_one_owed_abort_is_not_asked_the_rest_until_next_time(
    make_engine: Any, make_file: Any, api: Api, sandbox: SandboxInfo, s3: Any, tmp_path: Path
) -> None:
    """Each failed abort costs its retries before the session's upload starts: a CLI audit saw 15 s per debt."""
    store = tmp_path / "state.sqlite3"
    state = StateStore.open(store)
    records = []
    for n in range(3):
        sample = make_file(1024, name=f"owed-{n}.safetensors")
        records.append(_paused_upload_on(api, state, sample.path, sandbox.server_id, f"{n:032x}"))
        state.update(records[-1].id, status=OWED_ABORT)
    state.close()
    asked: list[str] = []

    def in_trouble(request: RequestInfo) -> Respond:
        asked.append(json.loads(request.body or b"{}").get("uploadId", ""))
        return Respond(503, b'{"error": "Storage did not answer properly; try again shortly."}')

    quick = Settings(retries=2, backoff_base=0.05, backoff_cap=0.1)
    with Proxy.start(api.url, peek_bytes=4096) as proxy:
        proxy.set_fault_plan(in_trouble)
        troubled = make_engine(quick, api_url=proxy.url, server_id=sandbox.server_id, state_path=store)
        sweep = troubled.manager.sweep_owed_aborts()
    assert (sweep.settled, sweep.still_owed, sweep.elsewhere) == (0, 3, 0)
    assert len(set(asked)) == 1 and asked[0] in {r.upload_id for r in records}, asked
    troubled.manager.close()
    troubled.state.close()

    fixed = make_engine(quick, server_id=sandbox.server_id, state_path=store).manager.sweep_owed_aborts()
    assert (fixed.settled, fixed.still_owed) == (3, 0)
    assert not any(_still_open(s3, sandbox.bucket, record) for record in records)


def test_owed_targets_are_named_in_words() -> None:
    assert where("sandbox:/home/me/.local/share/desktop-uploader/sandbox") == "the local sandbox on this computer"
    assert where("s3:aws/models") == "the S3 bucket models (AWS)"
    assert where("s3:http://127.0.0.1:9000/models") == "the S3 bucket models (http://127.0.0.1:9000)"
    assert where("https://uploads.example.com") == "https://uploads.example.com"
