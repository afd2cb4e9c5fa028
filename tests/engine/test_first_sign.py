"""The first part's URL is signed alone when checksums are signed in: its bytes go out sooner.

Signing a batch ahead needs every part's checksum in it first, so a first call for the batch made
the first part byte wait for CRC32C over most of a small file. The first call now carries only the
parts asked for; the next one signs the batch ahead, so a file still costs a couple of sign calls,
not one per part. Checked through a proxy in front of the real API, against the real SeaweedFS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.proxy import Proxy, RequestInfo
from tests.support.storage import object_sha256, open_multipart_uploads


def _actions(seen: list[RequestInfo], action: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in seen if r.method == "POST" and r.body]
    return [b for b in bodies if b.get("action") == action]


def test_the_first_sign_call_carries_only_the_first_part_and_the_next_signs_ahead(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    sample = make_file(8 * 5 * MiB)
    seen: list[RequestInfo] = []
    with Proxy.start(sandbox.api_url, peek_bytes=1 << 20) as api_proxy:
        api_proxy.set_fault_plan(seen.append)
        engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB, concurrency=1), api_url=api_proxy.url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    signs = _actions(seen, "sign")
    assert signs and signs[0]["partNumbers"] == [1]
    assert set(signs[0]["checksumCrc32c"]) == {"1"}  # the checksum is still signed into its URL
    assert len(signs) == 2 and signs[1]["partNumbers"] == list(range(2, 9))  # then the batch ahead, in one call
    [complete] = _actions(seen, "complete")
    assert all(p.get("ChecksumCRC32C") for p in complete["parts"])
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, job.result.s3_key)
