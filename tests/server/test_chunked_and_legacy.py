"""The chunked fallback (resumable by offset) and the legacy single-request path."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_uploader.engine.limits import MiB
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.storage import object_sha256, open_multipart_uploads


def test_chunked_upload_completes_and_resumes_from_the_expected_offset(
    api: Api, s3: Any, sandbox: Any, make_file: Any
) -> None:
    sample = make_file(13 * MiB + 77)
    data = sample.read()
    started = api.ok(api.chunked({"action": "start", "fileName": "big.safetensors", "fileSize": sample.size}))
    assert started["maxChunkBytes"] == 4 * MiB
    upload_id, key = started["uploadId"], started["s3Key"]
    chunk = started["maxChunkBytes"]

    assert api.ok(api.chunk(upload_id, key, 0, data[:chunk])) == {"received": chunk}
    # A client that lost track (crash, lost answer) sends from the wrong place: 409 says where to go on.
    wrong = api.chunk(upload_id, key, 3 * chunk, data[3 * chunk : 4 * chunk])
    assert wrong.status_code == 409
    assert wrong.json()["expectedOffset"] == chunk and "error" in wrong.json()
    # Sending the same chunk twice (the answer was lost) is also a 409 pointing forward.
    assert api.chunk(upload_id, key, 0, data[:chunk]).json()["expectedOffset"] == chunk

    offset = wrong.json()["expectedOffset"]
    while offset < sample.size:
        offset = api.ok(api.chunk(upload_id, key, offset, data[offset : offset + chunk]))["received"]
    assert api.ok(api.chunked({"action": "status", "uploadId": upload_id, "s3Key": key}))["received"] == sample.size

    done = api.ok(api.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
    assert done["success"] and done["size"] == sample.size
    assert done["comfyUIPath"] == started["comfyUIPath"]
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, key)
    parts = s3.head_object(Bucket=sandbox.bucket, Key=key)["ETag"].strip('"').split("-")
    assert len(parts) == 2 and int(parts[1]) == 2, "4 MiB chunks must leave as parts of at least 5 MiB"


def test_chunk_bodies_and_their_parts_are_streamed_never_held_whole(
    sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    """An in-process server, so tracemalloc sees its allocations: a 4 MiB chunk, and the 8 MiB part the
    second chunk completes, cost a bounded few MiB (copy buffers, botocore's hashing reads), not their size."""
    sample = make_file(9 * MiB)
    view = memoryview(sample.read())

    def pieces(start: int, size: int) -> Iterator[bytes]:  # the client streams too: 64 KiB at a time
        for at in range(start, start + size, 64 * 1024):
            yield bytes(view[at : min(at + 64 * 1024, start + size)])

    with api_server(sandbox, tmp_path / "api") as url:
        api = Api(url, sandbox.token)
        started = api.ok(api.chunked({"action": "start", "fileName": "m.safetensors", "fileSize": sample.size}))
        upload_id, key = started["uploadId"], started["s3Key"]
        peaks = []
        tracemalloc.start()
        try:
            for offset in (0, 4 * MiB):  # the second chunk fills the first 8 MiB part, sent to storage
                tracemalloc.reset_peak()
                baseline = tracemalloc.get_traced_memory()[0]
                api.ok(api.chunk(upload_id, key, offset, pieces(offset, 4 * MiB)))  # type: ignore[arg-type]
                peaks.append(tracemalloc.get_traced_memory()[1] - baseline)
        finally:
            tracemalloc.stop()
        assert max(peaks) < 3 * MiB, [f"{peak / MiB:.1f} MiB" for peak in peaks]
        assert len(s3.list_parts(Bucket=sandbox.bucket, Key=key, UploadId=upload_id)["Parts"]) == 1
        api.ok(api.chunk(upload_id, key, 8 * MiB, bytes(view[8 * MiB :])))
        api.ok(api.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
        assert object_sha256(s3, sandbox.bucket, key) == sample.sha256


def test_chunked_refuses_oversized_chunks_incomplete_completion_and_allows_abort(
    api: Api, s3: Any, sandbox: Any
) -> None:
    started = api.ok(api.chunked({"action": "start", "fileName": "x.bin", "fileSize": 2000}))
    upload_id, key = started["uploadId"], started["s3Key"]
    too_big = api.chunk(upload_id, key, 0, bytes(4 * MiB + 1))
    assert too_big.status_code == 413 and "error" in too_big.json()
    api.ok(api.chunk(upload_id, key, 0, bytes(1000)))
    early = api.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key})
    assert early.status_code == 400 and "1000 of 2000" in early.json()["error"]
    past_end = api.chunk(upload_id, key, 1000, bytes(1001))
    assert past_end.status_code == 400 and "declared file size" in past_end.json()["error"]
    api.ok(api.chunked({"action": "abort", "uploadId": upload_id, "s3Key": key}))
    assert not open_multipart_uploads(s3, sandbox.bucket, key)
    gone = api.chunk(upload_id, key, 0, b"x")
    assert gone.status_code == 404


def test_chunked_zero_byte_file(api: Api, s3: Any, sandbox: Any) -> None:
    started = api.ok(api.chunked({"action": "start", "fileName": "empty.pt", "fileSize": 0}))
    done = api.ok(api.chunked({"action": "complete", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    assert done["size"] == 0
    assert s3.get_object(Bucket=sandbox.bucket, Key=started["s3Key"])["Body"].read() == b""


def test_legacy_upload_works_and_refuses_files_over_the_limit(api: Api, s3: Any, sandbox: Any, make_file: Any) -> None:
    sample = make_file(3 * MiB, name="small.safetensors")
    done = api.ok(api.legacy("small.safetensors", sample.read(), display_name="My LoRA"))
    assert done["success"] and done["size"] == sample.size
    key = done["networkVolumePath"].split(f"s3://{sandbox.bucket}/", 1)[1]
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert s3.head_object(Bucket=sandbox.bucket, Key=key)["Metadata"]["display-name"] == "My%20LoRA"

    too_big = api.legacy("big.safetensors", bytes(6 * MiB + 1))
    assert too_big.status_code == 413
    assert "6.0 MiB" in too_big.json()["error"]


def test_legacy_limit_is_configurable(sandbox: Any, tmp_path: Path) -> None:
    with api_server(sandbox, tmp_path / "api", legacy_max_bytes=1000) as url:
        api = Api(url, sandbox.token)
        assert api.legacy("a.bin", bytes(1000)).status_code == 200
        refused = api.legacy("a.bin", bytes(1001))
        assert refused.status_code == 413 and "1000 B" in refused.json()["error"]


def test_one_person_can_hold_only_so_many_unfinished_chunked_uploads(sandbox: Any, s3: Any, tmp_path: Path) -> None:
    prefix = f"cap-{tmp_path.name}"  # only this test's uploads count
    with api_server(sandbox, tmp_path / "api", max_open_chunked_per_user=2, key_prefix=prefix) as url:
        api = Api(url, sandbox.token)
        start = {"action": "start", "fileName": "held.safetensors", "fileSize": 6 * MiB}
        first, _ = (api.ok(api.chunked(start)) for _ in range(2))
        refused = api.chunked(start)
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("You have 2 unfinished uploads on this server")
        api.ok(api.chunked({"action": "abort", "uploadId": first["uploadId"], "s3Key": first["s3Key"]}))
        api.ok(api.chunked(start))  # one finished (here: cancelled), so one more may start
    for held in open_multipart_uploads(s3, sandbox.bucket, prefix):  # leave the shared bucket as it was
        s3.abort_multipart_upload(Bucket=sandbox.bucket, Key=held["Key"], UploadId=held["UploadId"])
