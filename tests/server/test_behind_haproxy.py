"""The presigned and legacy paths behind a real HAProxy, round robin over three instances, no stickiness.

The chunked path, and an instance lost mid-upload, are in test_stateless_chunked.py. Here every API
request opens a new connection, so HAProxy picks the next instance for each: one upload's requests
are spread over all three, and the stored object must still be the file, byte for byte, alone at its
key, with no multipart upload left open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from desktop_uploader.engine.limits import MiB
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.haproxy import BINARY as HAPROXY
from tests.support.haproxy import CHECK_CUT_AT_STOP, haproxy
from tests.support.storage import object_sha256, open_multipart_uploads

pytestmark = [
    pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (.ci/run installs it)"),
    pytest.mark.allow_log(CHECK_CUT_AT_STOP),
]


def answered(url: str, actions: set[str]) -> float:
    """How many requests for ``actions`` the instance at ``url`` answered with 200."""
    text = requests.get(url + "/metrics", timeout=30).text
    total = 0.0
    for row in text.splitlines():
        for action in actions:
            line = f'upload_api_requests_total{{action="{action}",status="200"}} '
            if row.startswith(line):
                total += float(row[len(line) :])
    return total


def stored_alone(s3: Any, bucket: str, key: str) -> bool:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
    return [entry["Key"] for entry in listed] == [key]


def put_parts(urls: list[str], data: bytes, part_size: int) -> list[dict[str, Any]]:
    parts = []
    for index, url in enumerate(urls):
        answer = requests.put(url, data=data[index * part_size : (index + 1) * part_size], timeout=60)
        assert answer.status_code == 200, answer.text
        parts.append({"PartNumber": index + 1, "ETag": answer.headers["ETag"]})
    return parts


@pytest.fixture
def balanced(sandbox: Any, tmp_path: Path) -> Iterator[tuple[Api, list[str]]]:
    """An API client through HAProxy (a new connection, so a new pick, per request) and the instances' URLs."""
    with ExitStack() as stack:
        urls = [stack.enter_context(api_server(sandbox, tmp_path / f"i{n}")) for n in range(3)]
        api = Api(stack.enter_context(haproxy(tmp_path / "haproxy", urls)), sandbox.token)
        api.session.headers["Connection"] = "close"
        yield api, urls


def test_a_presigned_upload_spread_over_three_instances_is_byte_identical(
    balanced: tuple[Api, list[str]], s3: Any, sandbox: Any, make_file: Any
) -> None:
    """start, sign, sign, complete: four requests, so at least one on each instance. The parts
    themselves go straight to storage, to the presigned URLs, as they would in production."""
    api, urls = balanced
    sample = make_file(13 * MiB + 77, name="lb-presigned.safetensors")
    part_size = 5 * MiB
    started = api.ok(
        api.presigned(
            {"action": "start", "fileName": sample.path.name, "totalParts": 3, "fileSize": sample.size, "urlBatch": 1}
        )
    )
    upload_id, key = started["uploadId"], started["s3Key"]
    assert len(started["presignedUrls"]) == 1
    part_urls = list(started["presignedUrls"])
    for number in (2, 3):  # signed by whichever instance HAProxy picks next
        signed = api.ok(api.presigned({"action": "sign", "uploadId": upload_id, "s3Key": key, "partNumbers": [number]}))
        part_urls.append(signed["presignedUrls"][str(number)])
    parts = put_parts(part_urls, sample.read(), part_size)
    done = api.ok(api.presigned({"action": "complete", "uploadId": upload_id, "s3Key": key, "parts": parts}))
    assert done["success"] is True and done["size"] == sample.size
    assert all(answered(url, {"start", "sign", "complete"}) >= 1 for url in urls), "round robin reached every instance"
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert stored_alone(s3, sandbox.bucket, key)
    assert not open_multipart_uploads(s3, sandbox.bucket, key)


def test_legacy_uploads_through_each_instance_are_byte_identical(
    balanced: tuple[Api, list[str]], s3: Any, sandbox: Any, make_file: Any
) -> None:
    """One request per upload: three in a row land on the three instances, and each stores its file whole."""
    api, urls = balanced
    for n in range(3):
        sample = make_file(5 * MiB + n, name=f"lb-legacy-{n}.safetensors", seed=n)
        done = api.ok(api.legacy(sample.path.name, sample.read()))
        assert done["success"] and done["size"] == sample.size
        key = done["networkVolumePath"].split(f"s3://{sandbox.bucket}/", 1)[1]
        assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
        assert stored_alone(s3, sandbox.bucket, key)
        assert not open_multipart_uploads(s3, sandbox.bucket, key)
    assert all(answered(url, {"legacy-upload"}) == 1 for url in urls), "round robin: one upload per instance"
