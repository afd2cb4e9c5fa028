"""The presigned multipart contract, exercised with plain requests against the real sandbox."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse
from pathlib import Path
from typing import Any

import requests

from desktop_uploader.engine.limits import KiB, MiB
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.storage import object_sha256, open_multipart_uploads


def put_parts(urls: list[str], data: bytes, part_size: int) -> list[dict[str, Any]]:
    parts = []
    for index, url in enumerate(urls):
        chunk = data[index * part_size : (index + 1) * part_size]
        answer = requests.put(url, data=chunk, timeout=60)
        assert answer.status_code == 200, answer.text
        parts.append({"PartNumber": index + 1, "ETag": answer.headers["ETag"]})
    return parts


def test_seed_flow_start_put_complete_is_byte_identical(api: Api, s3: Any, sandbox: Any, make_file: Any) -> None:
    sample = make_file(13 * MiB + 123)
    part_size = 5 * MiB
    started = api.ok(
        api.presigned({"action": "start", "fileName": "model.safetensors", "totalParts": 3, "fileSize": sample.size})
    )
    assert len(started["presignedUrls"]) == 3
    assert started["s3Key"] == f"loras/sandbox-user/{started['uniqueFileName']}"
    assert started["comfyUIPath"] == f"/runpod-volume/loras/sandbox-user/{started['uniqueFileName']}"
    user, millis, name = started["uniqueFileName"].split("_", 2)
    assert (user, name) == ("sandbox-user", "model.safetensors") and abs(int(millis) / 1000 - time.time()) < 60

    parts = put_parts(started["presignedUrls"], sample.read(), part_size)
    done = api.ok(
        api.presigned(
            {"action": "complete", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "parts": parts}
        )
    )
    assert done["success"] is True
    assert done["size"] == sample.size
    assert done["networkVolumePath"] == f"s3://{sandbox.bucket}/{started['s3Key']}"
    assert done["comfyUIPath"] == started["comfyUIPath"]
    assert object_sha256(s3, sandbox.bucket, started["s3Key"]) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])


def seed_complete(url: str, token: str, data: bytes) -> dict[str, Any]:
    api = Api(url, token)
    started = api.ok(api.presigned({"action": "start", "fileName": "seed.safetensors", "totalParts": 1}))
    parts = put_parts(started["presignedUrls"], data, len(data))
    body = {"action": "complete", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "parts": parts}
    return api.ok(api.presigned(body))


def test_a_seed_only_server_completes_without_the_extensions_etag_and_size(
    sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    data = b"seed answers" * 1000
    seed = ("start", "complete", "abort")
    with api_server(sandbox, tmp_path / "seed", actions=seed, capabilities_enabled=False) as url:
        done = seed_complete(url, sandbox.token, data)
    assert done["success"] is True and "etag" not in done and "size" not in done
    assert done["networkVolumePath"].startswith(f"s3://{sandbox.bucket}/loras/sandbox-user/")
    key = done["networkVolumePath"].removeprefix(f"s3://{sandbox.bucket}/")
    assert object_sha256(s3, sandbox.bucket, key) == hashlib.sha256(data).hexdigest()
    with api_server(sandbox, tmp_path / "seed-told", actions=seed, seed_answers=False) as url:
        told = seed_complete(url, sandbox.token, data)
    assert told["size"] == len(data) and told["etag"], "seed_answers=False keeps the extensions"


def test_start_without_file_size_and_with_url_batch(api: Api, make_file: Any) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.ckpt", "totalParts": 40, "urlBatch": 5}))
    assert len(started["presignedUrls"]) == 5
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_512_kib_parts_are_refused_at_start_when_the_size_tells(api: Api) -> None:
    size = 6 * MiB
    answer = api.presigned({"action": "start", "fileName": "a.safetensors", "totalParts": 12, "fileSize": size})
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert "5.0 MiB" in message and "at most 2 parts" in message


def test_512_kib_parts_are_refused_at_complete_otherwise(api: Api, s3: Any, sandbox: Any) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.safetensors", "totalParts": 3}))
    parts = put_parts(started["presignedUrls"], bytes(3 * 512 * KiB), 512 * KiB)
    answer = api.presigned(
        {"action": "complete", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "parts": parts}
    )
    assert answer.status_code == 400, answer.text
    assert "at least 5.0 MiB" in answer.json()["error"]
    # Nothing is lost: the upload is still there to abort (or to complete with proper parts).
    assert open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_abort_removes_the_multipart_upload(api: Api, s3: Any, sandbox: Any) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.pt", "totalParts": 2}))
    requests.put(started["presignedUrls"][0], data=bytes(5 * MiB), timeout=60).raise_for_status()
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])] == [
        started["uploadId"]
    ]
    answer = api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    assert answer == {"success": True, "message": "Upload aborted"}
    assert not open_multipart_uploads(s3, sandbox.bucket, started["s3Key"])
    again = api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]})
    assert again.status_code == 404


def test_sign_returns_working_urls_and_expired_urls_are_refused_then_resigned(sandbox: Any, tmp_path: Path) -> None:
    with api_server(sandbox, tmp_path / "api", url_expiry_seconds=1) as url:
        api = Api(url, sandbox.token)
        started = api.ok(api.presigned({"action": "start", "fileName": "a.gguf", "totalParts": 1, "fileSize": 10}))
        time.sleep(2.2)
        expired = requests.put(started["presignedUrls"][0], data=b"0123456789", timeout=30)
        assert expired.status_code == 403
        assert "expired" in expired.text.lower()
        signed = api.ok(
            api.presigned(
                {"action": "sign", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "partNumbers": [1]}
            )
        )
        fresh = requests.put(signed["presignedUrls"]["1"], data=b"0123456789", timeout=30)
        assert fresh.status_code == 200, fresh.text
        api.ok(
            api.presigned(
                {
                    "action": "complete",
                    "uploadId": started["uploadId"],
                    "s3Key": started["s3Key"],
                    "parts": [{"PartNumber": 1, "ETag": fresh.headers["ETag"]}],
                }
            )
        )


def test_content_md5_signed_url_rejects_wrong_bytes(api: Api) -> None:
    body = b"the right bytes" * 1000
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    started = api.ok(api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 1, "fileSize": len(body)}))
    signed = api.ok(
        api.presigned(
            {
                "action": "sign",
                "uploadId": started["uploadId"],
                "s3Key": started["s3Key"],
                "partNumbers": [1],
                "contentMd5": {"1": md5},
            }
        )
    )
    url = signed["presignedUrls"]["1"]
    assert "content-md5" in urllib.parse.unquote(url).lower()
    wrong = requests.put(url, data=b"X" + body[1:], headers={"Content-MD5": md5}, timeout=30)
    assert wrong.status_code == 400 and "BadDigest" in wrong.text
    unsigned_header = requests.put(url, data=body, timeout=30)
    assert unsigned_header.status_code == 403
    right = requests.put(url, data=body, headers={"Content-MD5": md5}, timeout=30)
    assert right.status_code == 200
    assert right.headers["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_status_lists_uploaded_parts(api: Api) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.pth", "totalParts": 3}))
    sizes = {1: 5 * MiB, 3: 1234}
    etags = {}
    for number, size in sizes.items():
        answer = requests.put(started["presignedUrls"][number - 1], data=bytes(size), timeout=60)
        etags[number] = answer.headers["ETag"]
    status = api.ok(api.presigned({"action": "status", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    assert status["parts"] == [{"PartNumber": n, "ETag": etags[n], "Size": sizes[n]} for n in (1, 3)]
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_status_of_a_completed_upload_answers_with_the_stored_object(api: Api) -> None:
    """A client that could not record the completion asks again; the answer must not make it re-send."""
    started = api.ok(api.presigned({"action": "start", "fileName": "done.pth", "totalParts": 1}))
    parts = put_parts(started["presignedUrls"], bytes(1234), 1234)
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    completed = api.ok(api.presigned({"action": "complete", **ids, "parts": parts}))
    status = api.ok(api.presigned({"action": "status", **ids}))
    assert status == {"parts": [], "completed": True, **completed}
    assert status["size"] == 1234 and status["comfyUIPath"] == started["comfyUIPath"]


def test_status_pages_past_1000_parts(api: Api) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "many.bin", "totalParts": 1003, "urlBatch": 1}))
    numbers = list(range(1, 1004))
    signed = api.ok(
        api.presigned(
            {"action": "sign", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "partNumbers": numbers}
        )
    )
    session = requests.Session()
    for number in numbers:
        session.put(signed["presignedUrls"][str(number)], data=b"x", timeout=30).raise_for_status()
    status = api.ok(api.presigned({"action": "status", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    assert [p["PartNumber"] for p in status["parts"]] == numbers
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_list_shows_only_the_callers_unfinished_uploads(api: Api, sandbox: Any, tmp_path: Path) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "listed.bin", "totalParts": 1}))
    listed = api.ok(api.presigned({"action": "list"}))["uploads"]
    assert {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}.items() <= next(
        u for u in listed if u["uploadId"] == started["uploadId"]
    ).items()
    assert all(u["s3Key"].startswith("loras/sandbox-user/") for u in listed)
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    listed = api.ok(api.presigned({"action": "list"}))["uploads"]
    assert started["uploadId"] not in {u["uploadId"] for u in listed}


def test_capabilities_describe_the_server(api: Api) -> None:
    caps = api.ok(api.capabilities())
    assert set(caps["actions"]) == {"start", "complete", "abort", "sign", "status", "list"}
    assert caps["minPartSize"] == 5 * MiB and caps["maxParts"] == 10_000 and caps["maxPartSize"] == 5 * 1024**3
    assert caps["urlExpirySeconds"] == 3600
    assert caps["chunkedUpload"] == {"path": "/api/user/influencers/chunked-upload", "maxChunkBytes": 4 * MiB}
    assert caps["legacyUpload"]["path"] == "/api/user/influencers/upload"
    assert caps["legacyUpload"]["maxBytes"] == 6 * MiB


def test_a_client_may_ask_for_shorter_lived_urls_but_never_longer(api: Api) -> None:
    def lifetime(url: str) -> int:
        return int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Expires"][0])

    short = api.ok(api.presigned({"action": "start", "fileName": "a.bin", "totalParts": 1, "expiresIn": 120}))
    assert lifetime(short["presignedUrls"][0]) == 120
    signed = api.ok(
        api.presigned(
            {
                "action": "sign",
                "uploadId": short["uploadId"],
                "s3Key": short["s3Key"],
                "partNumbers": [1],
                "expiresIn": 7 * 24 * 3600,
            }
        )
    )
    assert lifetime(signed["presignedUrls"]["1"]) == 3600  # the server's own limit wins
    api.ok(api.presigned({"action": "abort", "uploadId": short["uploadId"], "s3Key": short["s3Key"]}))
