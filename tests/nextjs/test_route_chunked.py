"""The route's chunked fallback, staged in the bucket with no local disk, run for real in front of SeaweedFS."""

from __future__ import annotations

import hashlib
from typing import Any

from desktop_uploader.engine.limits import MiB
from tests.support.nextjs_route import NextRoute
from tests.support.storage import object_sha256, open_multipart_uploads


def staged(s3: Any, bucket: str, upload_id: str) -> list[str]:
    """Keys of one chunked upload's staging (docs/api.md): none once it completed or was aborted."""
    prefix = f"loras/.chunked/{hashlib.sha256(upload_id.encode()).hexdigest()[:40]}/"
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_capabilities_offer_the_chunked_path(nextjs_full: NextRoute) -> None:
    api = nextjs_full.api()
    caps = api.ok(api.capabilities())
    assert caps["chunkedUpload"] == {"path": "/api/user/influencers/chunked-upload", "maxChunkBytes": 4 * MiB}


def test_a_chunked_upload_through_the_cli_stores_byte_identical(
    cli: Any, make_file: Any, nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    sample = make_file(19 * MiB + 123)
    result = cli("upload", str(sample.path), "--json", "--method", "chunked", env=nextjs_full.cli_env())
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed" and upload["method"] == "chunked-s3", upload
    key = upload["s3Key"]
    assert key.startswith(nextjs_full.alice.prefix)
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=key).get("Contents", [])] == [key]
    assert not open_multipart_uploads(s3, sandbox.bucket, key)
    assert "chunked complete " + key in nextjs_full.log_text()


def test_offsets_status_and_a_resent_chunk_by_hand(nextjs_full: NextRoute, s3: Any, sandbox: Any) -> None:
    api = nextjs_full.api()
    data = bytes(range(256)) * (40 * 1024)  # 10 MiB: one 8 MiB part, then a tail
    started = api.ok(api.chunked({"action": "start", "fileName": "hand.safetensors", "fileSize": len(data)}))
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    assert started["maxChunkBytes"] == 4 * MiB
    step = 3 * MiB
    assert api.ok(api.chunk(ids["uploadId"], ids["s3Key"], 0, data[:step])) == {"received": step}
    wrong = api.chunk(ids["uploadId"], ids["s3Key"], 0, data[:step])  # a retry whose answer was lost
    assert wrong.status_code == 409 and wrong.json()["expectedOffset"] == step, wrong.text
    for offset in range(step, len(data), step):
        piece = data[offset : offset + step]
        assert api.ok(api.chunk(ids["uploadId"], ids["s3Key"], offset, piece)) == {"received": offset + len(piece)}
    assert api.ok(api.chunked({"action": "status", **ids})) == {"received": len(data), "fileSize": len(data)}
    # The 8 MiB part was flushed from the staged chunks as they arrived.
    assert [p["Size"] for p in api.ok(api.presigned({"action": "status", **ids}))["parts"]] == [8 * MiB]
    done = api.ok(api.chunked({"action": "complete", **ids}))
    assert done["success"] is True and done["size"] == len(data)
    assert object_sha256(s3, sandbox.bucket, ids["s3Key"]) == hashlib.sha256(data).hexdigest()
    assert api.ok(api.chunked({"action": "status", **ids})) == {"received": len(data), "fileSize": len(data)}
    assert api.ok(api.chunked({"action": "complete", **ids}))["etag"] == done["etag"], "a retried complete"
    assert staged(s3, sandbox.bucket, ids["uploadId"]) == []
    assert not open_multipart_uploads(s3, sandbox.bucket, ids["s3Key"])


def test_an_aborted_chunked_upload_leaves_nothing_staged_and_others_cannot_touch_it(
    nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    api, bob = nextjs_full.api(), nextjs_full.api(nextjs_full.bob)
    started = api.ok(api.chunked({"action": "start", "fileName": "gone.safetensors", "fileSize": 5}))
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    api.ok(api.chunk(ids["uploadId"], ids["s3Key"], 0, b"abc"))
    assert len(staged(s3, sandbox.bucket, ids["uploadId"])) == 2, "the layout marker and the chunk"
    assert bob.chunk(ids["uploadId"], ids["s3Key"], 3, b"de").status_code == 403
    assert bob.chunked({"action": "abort", **ids}).status_code == 403
    assert api.ok(api.chunked({"action": "abort", **ids})) == {"success": True, "message": "Upload aborted"}
    assert api.chunked({"action": "status", **ids}).status_code == 404
    assert not open_multipart_uploads(s3, sandbox.bucket, ids["s3Key"])
    assert staged(s3, sandbox.bucket, ids["uploadId"]) == []
