"""The route with UPLOADER_ACTIONS=original: the backend our users run today, reproduced for real.

Only start/complete/abort, no GET (so a client knows it is a seed server), and the S3 client with the
SDK's default checksum behaviour, which signs an empty body's CRC32 into every UploadPart URL.
Here the route proves it reproduces them, and that UPLOADER_CHECKSUMS=when-required (the one-line
fix) takes them away and nothing else; how our client copes with both is in test_client_three_actions.py.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

import requests

from tests.support.nextjs_route import NextRoute
from tests.support.storage import object_sha256, open_multipart_uploads


def test_get_is_405_so_the_client_sees_a_seed_server(nextjs_original: NextRoute) -> None:
    api = nextjs_original.api()
    answer = api.capabilities()
    assert answer.status_code == 405, answer.text


def test_only_the_seeds_actions_are_offered(nextjs_original: NextRoute) -> None:
    api = nextjs_original.api()
    for action in ("sign", "status", "list"):
        answer = api.presigned({"action": action, "uploadId": "x", "s3Key": "y", "partNumbers": [1]})
        assert answer.status_code == 400, answer.text
        assert f"Unknown action '{action}'" in answer.json()["error"]


def test_start_signs_the_sdks_default_crc32_into_every_part_url(
    nextjs_original: NextRoute, s3: Any, sandbox: Any
) -> None:
    api = nextjs_original.api()
    started = api.ok(
        api.presigned({"action": "start", "fileName": "model.safetensors", "totalParts": 3, "urlBatch": 1})
    )
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    try:
        assert len(started["presignedUrls"]) == 3, "no urlBatch on a seed: every URL at once"
        for url in started["presignedUrls"]:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            assert query["x-amz-checksum-crc32"] == ["AAAAAA=="], url
        assert started["checksumAlgorithm"] is None
        # So storage refuses real bytes sent to them, as it does behind our users' backend today.
        refused = requests.put(started["presignedUrls"][0], data=b"real bytes", timeout=30)
        assert refused.status_code == 400 and "BadDigest" in refused.text, refused.text
    finally:
        assert api.ok(api.presigned({"action": "abort", **ids})) == {"success": True, "message": "Upload aborted"}
    assert not open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])


def test_complete_works_with_the_sdks_defaults(nextjs_original: NextRoute, s3: Any, sandbox: Any) -> None:
    """The one part whose bytes match the pinned CRC32 is an empty one: start, part, complete all work."""
    api = nextjs_original.api()
    started = api.ok(api.presigned({"action": "start", "fileName": "empty.safetensors", "totalParts": 1}))
    put = requests.put(started["presignedUrls"][0], data=b"", timeout=30)
    assert put.status_code == 200, put.text
    done = api.ok(
        api.presigned(
            {
                "action": "complete",
                "uploadId": started["uploadId"],
                "s3Key": started["s3Key"],
                "parts": [{"PartNumber": 1, "ETag": put.headers["ETag"]}],
            }
        )
    )
    assert done["success"] is True
    assert "size" not in done and "etag" not in done, "extensions the original route never answered"
    assert done["networkVolumePath"] == f"s3://{sandbox.bucket}/{started['s3Key']}"
    assert object_sha256(s3, sandbox.bucket, started["s3Key"]) == hashlib.sha256(b"").hexdigest()
    assert not open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])


def test_the_one_line_fix_takes_the_pinned_checksum_away_and_nothing_else(nextjs_three_fixed: NextRoute) -> None:
    api = nextjs_three_fixed.api()
    assert api.capabilities().status_code == 405, "still a seed server"
    answer = api.presigned({"action": "sign", "uploadId": "x", "s3Key": "y", "partNumbers": [1]})
    assert answer.status_code == 400 and "Unknown action 'sign'" in answer.json()["error"]
    started = api.ok(api.presigned({"action": "start", "fileName": "fixed.safetensors", "totalParts": 2}))
    try:
        for url in started["presignedUrls"]:
            query = {name.lower() for name in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)}
            assert not [name for name in query if "checksum" in name], url
    finally:
        api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
