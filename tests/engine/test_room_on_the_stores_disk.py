"""A file that can't fit on the disk of a store on this computer (the sandbox's) is refused at start, in words.

SeaweedFS turns read-only once its disk is 99 % full and then answers every part ``500``, which reads as a
busy store: a 20 GB checkpoint tried on the test storage of a laptop with 15 GB free filled the disk and
was retried as "busy". The API is real and so is its store; the disk it measures is a real 4 MiB tmpfs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import FallingBack, Status
from desktop_uploader.engine.limits import MiB, human_bytes
from desktop_uploader.engine.settings import Settings
from desktop_uploader.sandbox.runtime import Sandbox, SandboxIdentity
from desktop_uploader.server.room import room_left
from tests.support.api_servers import api_server
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import open_multipart_uploads

PARTS = Settings(chunk_size=5 * MiB, auto_part_size=False, concurrency=2, retries=3, backoff_base=0.05, backoff_cap=0.1)


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_past_the_room_on_the_stores_disk_is_refused_at_start_and_nothing_is_left(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, small_disk: Path, tmp_path: Path
) -> None:
    name = f"roomless-{uuid.uuid4().hex[:8]}"
    sample = make_file(6 * MiB, name=f"{name}.safetensors")
    with api_server(sandbox, tmp_path / "api", local_store_dir=small_disk) as url:
        room = room_left(small_disk)
        engine = make_engine(PARTS, api_url=url, token=sandbox.token)
        view = engine.upload(sample.path)
    assert view.status == Status.FAILED
    assert view.message == (
        "Not enough disk space for this file (6.0 MiB): free some space on the disk the storage writes to, which "
        f"has room for {human_bytes(room)} more, then try again."
    ), "what to do first, said once, and nothing about what is stored: nothing is"
    assert not engine.of(view.id, FallingBack), "the chunked way writes to the same disk"
    listed = s3.list_objects_v2(Bucket=sandbox.bucket, Prefix="loras/").get("Contents", [])
    assert [o["Key"] for o in listed if name in o["Key"]] == [], "no object"
    assert [u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/") if name in u["Key"]] == []


def test_the_sandboxs_api_measures_the_disk_its_store_writes_to(tmp_path: Path) -> None:
    data_dir = tmp_path / "sandbox"
    data_dir.mkdir(mode=0o700)
    config = Sandbox(data_dir).server_config(SandboxIdentity.load_or_create(data_dir), "http://127.0.0.1:9")
    assert config.local_store_dir == data_dir
