"""CRC32 checksums signed into part URLs: storage refuses damaged bytes, at a fifth of MD5's CPU.

Against the sandbox's real SeaweedFS: it verifies ``x-amz-checksum-crc32`` as S3 does, so a part
whose bytes were damaged on the way is refused with BadDigest instead of being stored.
"""

from __future__ import annotations

import base64
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import requests

from desktop_uploader.engine.events import Retrying, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.partbody import crc32_of_span
from desktop_uploader.engine.settings import Settings
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_capabilities_offer_crc32_with_sign(api: Api) -> None:
    assert api.ok(api.capabilities())["checksums"] == ["crc32"]


def test_crc32_signed_url_rejects_wrong_bytes(api: Api) -> None:
    body = b"the right bytes" * 1000
    crc = crc32_b64(body)
    started = api.ok(api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 1, "fileSize": len(body)}))
    signed = api.ok(
        api.presigned(
            {
                "action": "sign",
                "uploadId": started["uploadId"],
                "s3Key": started["s3Key"],
                "partNumbers": [1],
                "checksumCrc32": {"1": crc},
            }
        )
    )
    url = signed["presignedUrls"]["1"]
    assert "x-amz-checksum-crc32" in urllib.parse.unquote(url).lower()
    wrong = requests.put(url, data=b"X" + body[1:], headers={"x-amz-checksum-crc32": crc}, timeout=30)
    assert wrong.status_code == 400 and "BadDigest" in wrong.text
    without_header = requests.put(url, data=body, timeout=30)
    assert without_header.status_code == 403
    right = requests.put(url, data=body, headers={"x-amz-checksum-crc32": crc}, timeout=30)
    assert right.status_code == 200
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_bad_checksum_requests_are_refused(api: Api) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 2}))
    base = {"action": "sign", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "partNumbers": [1]}
    for extra in (
        {"checksumCrc32": {"1": "nope"}},
        {"checksumCrc32": {"1": base64.b64encode(b"12345").decode()}},
        {"checksumCrc32": {"2": crc32_b64(b"x")}},  # a part not in partNumbers
        {"checksumCrc32": {"1": crc32_b64(b"x")}, "contentMd5": {"1": base64.b64encode(bytes(16)).decode()}},
    ):
        answer = api.presigned({**base, **extra})
        assert answer.status_code == 400, (extra, answer.text)
        assert "error" in answer.json()
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_crc32_of_span_matches_zlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert crc32_of_span(path, 1000, 700_000) == crc32_b64(data[1000:701_000])


def test_the_engine_signs_crc32_and_resends_a_part_storage_found_damaged(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    sample = make_file(12 * MiB)
    seen: list[dict[str, str]] = []

    def damaged_once(request: RequestInfo) -> Any:
        if request.method == "PUT":
            seen.append(dict(request.headers))
            if len(seen) == 1:
                body = b"<Error><Code>BadDigest</Code><Message>The CRC32 you specified did not match</Message></Error>"
                return Respond(400, body, {"Content-Type": "application/xml"})
        return None

    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(damaged_once)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB, backoff_base=0.05), api_url=url)
            job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert seen and all("x-amz-checksum-crc32" in headers and "content-md5" not in headers for headers in seen)
    retries = engine.of(job.id, Retrying)
    assert len(retries) == 1 and "damaged" in retries[0].reason
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_server_without_crc32_still_gets_content_md5(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    """A server of the previous version (no ``checksums`` in its capabilities) keeps the Content-MD5 path."""
    sample = make_file(7 * MiB)
    seen: list[dict[str, str]] = []

    def record(request: RequestInfo) -> Any:
        if request.method == "PUT":
            seen.append(dict(request.headers))
        return None

    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(record)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB), api_url=url)
            assert engine.manager.api is not None
            caps = engine.manager.api.capabilities()
            object.__setattr__(caps, "checksum_crc32", False)  # what an older server's document parses to
            job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert seen and all("content-md5" in headers and "x-amz-checksum-crc32" not in headers for headers in seen)
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_part_body_reads_whole_blocks_within_its_budget(tmp_path: Path) -> None:
    """Many parts in flight get smaller blocks, each read into the part's one buffer, and every byte arrives."""
    from desktop_uploader.engine.control import Control
    from desktop_uploader.engine.partbody import BLOCK_BUDGET, PartBody, block_for

    data = bytes(range(256)) * 40_000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    for parts in (1, 6, 24, 64):
        limit = block_for(parts)
        assert limit * parts <= max(BLOCK_BUDGET, parts * 64 * 1024)
        body = PartBody(path, 1000, 9_000_000, control=Control(), on_sent=lambda _: None, max_block=limit)
        received = bytearray()
        while block := body.read(1 << 20):
            assert len(block) <= limit
            received += block
        body.close()
        assert bytes(received) == data[1000:9_001_000]
