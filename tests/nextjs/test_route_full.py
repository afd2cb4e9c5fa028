"""The Next.js route of server-examples/nextjs, run for real: `next start` in front of the sandbox's SeaweedFS.

Uploads go through our CLI as a user's would; the contract's edges are checked with plain HTTP, as a
third-party client would call it. Every check of storage looks only under the test's own key (the
bucket is shared), and the route's users are its own (tests/support/nextjs_route.py).
"""

from __future__ import annotations

import base64
import hashlib
import signal
import urllib.parse
from typing import Any

import google_crc32c
import pytest
import requests

from desktop_uploader.engine.limits import MiB
from tests.cli.test_cli import wait_for_parts
from tests.support.api import LEGACY, PRESIGNED, Api
from tests.support.nextjs_route import NextRoute
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import wait_until

ALL_ACTIONS = {"start", "complete", "abort", "sign", "status", "list"}


def stored_once(s3: Any, bucket: str, key: str, sha256: str) -> None:
    """The object at ``key`` has exactly these bytes, is the only one there, and nothing is left open."""
    assert object_sha256(s3, bucket, key) == sha256
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]
    assert not open_multipart_uploads(s3, bucket, key)


def start(api: Api, name: str = "model.safetensors", **extra: Any) -> dict[str, Any]:
    return api.ok(api.presigned({"action": "start", "fileName": name, "totalParts": 1, **extra}))


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


# --- capabilities and uploads through the CLI ----------------------------------------------------


def test_capabilities_offer_the_whole_contract(nextjs_full: NextRoute) -> None:
    api = nextjs_full.api()
    caps = api.ok(api.capabilities())
    assert set(caps["actions"]) == ALL_ACTIONS
    assert caps["checksums"] == ["crc32c", "crc32"] and caps["contentMd5"] is True and caps["urlBatch"] is True
    assert (caps["minPartSize"], caps["maxParts"], caps["urlExpirySeconds"]) == (5 * MiB, 10_000, 3600)
    assert caps["presignedUpload"] is True
    assert caps["chunkedUpload"]["path"] == "/api/user/influencers/chunked-upload"
    assert caps["legacyUpload"] == {"path": "/api/user/influencers/upload", "maxBytes": 6 * MiB}


def test_a_multi_part_file_stores_byte_identical_and_the_client_signs_its_parts(
    cli: Any, make_file: Any, nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    sample = make_file(20 * MiB)
    result = cli("upload", str(sample.path), "--json", "--chunk-size", "5MiB", env=nextjs_full.cli_env())
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed" and upload["method"] == "presigned-s3"
    key = upload["s3Key"]
    assert key.startswith(nextjs_full.alice.prefix)
    assert upload["comfyUIPath"] == f"/runpod-volume/{key}"
    assert upload["networkVolumePath"] == f"s3://{sandbox.bucket}/{key}"
    stored_once(s3, sandbox.bucket, key, sample.sha256)
    # The route logs each action it served: the client asked it to sign the parts' URLs, with digests.
    signed = [line for line in nextjs_full.log_text().splitlines() if line.startswith(f"sign {key}:")]
    assert signed, nextjs_full.log_text()
    assert sum(int(line.split(": ")[1].split()[0]) for line in signed) >= 4
    assert "with a digest" in signed[0] and "(0 with a digest)" not in signed[0]


@pytest.mark.parametrize("size", [0, 1])
def test_an_empty_and_a_one_byte_file_store(
    cli: Any, make_file: Any, nextjs_full: NextRoute, s3: Any, sandbox: Any, size: int
) -> None:
    sample = make_file(size, name=f"tiny-{size}.bin")
    result = cli("upload", str(sample.path), "--json", env=nextjs_full.cli_env())
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed", upload
    stored_once(s3, sandbox.bucket, upload["s3Key"], sample.sha256)
    assert s3.head_object(Bucket=sandbox.bucket, Key=upload["s3Key"])["ContentLength"] == size


# --- authorization: as tests/server/test_rules.py checks the FastAPI server -------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("POST", {"action": "list"}), ("POST", {"action": "start", "fileName": "a.bin", "totalParts": 1})],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-wrong-token", "Basic abc", "Bearer"])
def test_missing_or_wrong_token_is_401(
    nextjs_full: NextRoute, method: str, body: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.request(method, nextjs_full.url + PRESIGNED, headers=headers, json=body, timeout=30)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]


def test_the_single_request_upload_stores_small_files_and_refuses_what_it_must(
    nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    api = nextjs_full.api()
    data = bytes(range(256)) * 40
    done = api.ok(api.legacy("small.safetensors", data, display_name="Small"))
    key = f"{nextjs_full.alice.prefix}{done['uniqueFileName']}"
    assert done["networkVolumePath"] == f"s3://{sandbox.bucket}/{key}"
    assert done["comfyUIPath"] == f"/runpod-volume/{key}" and done["size"] == len(data) and done["etag"]
    stored_once(s3, sandbox.bucket, key, hashlib.sha256(data).hexdigest())
    anonymous = requests.post(nextjs_full.url + LEGACY, files={"file": ("a.safetensors", b"x")}, timeout=30)
    for why, answer, status in (
        ("over 6 MiB", api.legacy("big.safetensors", b"x" * (6 * MiB + 1)), 413),
        ("not a model type", api.legacy("notes.txt", b"x"), 400),
        ("no type at all", api.legacy("model", b"x"), 400),
        ("no token", anonymous, 401),
    ):
        assert answer.status_code == status, (why, answer.text)
        assert answer.json()["error"], why
        if why == "no type at all":  # as our server says it
            assert answer.json()["error"].startswith("Files without a type at the end of the name are not accepted.")


def test_another_users_upload_is_out_of_reach_for_every_action(nextjs_full: NextRoute) -> None:
    alice, bob = nextjs_full.api(nextjs_full.alice), nextjs_full.api(nextjs_full.bob)
    theirs = start(alice)
    ids = {"uploadId": theirs["uploadId"], "s3Key": theirs["s3Key"]}
    for body in (
        {"action": "complete", **ids, "parts": [{"PartNumber": 1, "ETag": "x"}]},
        {"action": "abort", **ids},
        {"action": "sign", **ids, "partNumbers": [1]},
        {"action": "status", **ids},
    ):
        answer = bob.presigned(body)
        assert answer.status_code == 403, (body, answer.text)
        assert "belongs to someone else" in answer.json()["error"]
    # Bob's own prefix with Alice's upload id: the id does not exist for that key.
    bobs_key = theirs["s3Key"].replace(nextjs_full.alice.user_id, nextjs_full.bob.user_id)
    disguised = {"uploadId": theirs["uploadId"], "s3Key": bobs_key}
    for body in (
        {"action": "sign", **disguised, "partNumbers": [1]},
        {"action": "status", **disguised},
        {"action": "abort", **disguised},
        {"action": "complete", **disguised, "parts": [{"PartNumber": 1, "ETag": "x"}]},
    ):
        answer = bob.presigned(body)
        assert answer.status_code in (403, 404), (body, answer.text)
        assert answer.json()["error"]
    assert theirs["uploadId"] not in {u["uploadId"] for u in bob.ok(bob.presigned({"action": "list"}))["uploads"]}
    # And Alice's upload is untouched by all of that.
    assert alice.ok(alice.presigned({"action": "status", **ids}))["parts"] == []
    assert alice.ok(alice.presigned({"action": "abort", **ids})) == {"success": True, "message": "Upload aborted"}
    again = alice.presigned({"action": "abort", **ids})
    assert again.status_code == 404 and again.json()["error"]


@pytest.mark.parametrize(
    "key",
    ["{me}/../other/x.bin", "{me}/", "other/{me}/x.bin", "{me}/sub/dir.bin", "/{me}/x.bin", "{me}/someone_1_x.bin"],
)
def test_keys_outside_the_users_prefix_are_forbidden(nextjs_full: NextRoute, key: str) -> None:
    api = nextjs_full.api()
    me = f"loras/{nextjs_full.alice.user_id}"
    answer = api.presigned({"action": "status", "uploadId": "whatever", "s3Key": key.format(me=me)})
    assert answer.status_code == 403, answer.text


def test_bad_input_is_a_400_sentence_never_a_500(nextjs_full: NextRoute) -> None:
    api = nextjs_full.api()
    for body, phrase in (
        ({"action": "start", "fileName": "a.bin", "totalParts": "5"}, "Invalid 'totalParts': must be an integer"),
        ({"action": "start", "fileName": "a.bin", "totalParts": True}, "not a boolean"),
        ({"action": "start", "fileName": "a.exe", "totalParts": 1}, "Allowed types: .safetensors"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 3, "fileSize": 6 * MiB}, "use at most 2 parts"),
        ({"action": "start", "totalParts": 1}, "Missing field 'fileName'"),
        ({"action": "dance"}, "Unknown action 'dance'"),
        ({}, "needs an 'action' field"),
    ):
        answer = api.presigned(body)
        assert answer.status_code == 400, (body, answer.text)
        assert phrase in answer.json()["error"], answer.json()
    raw = requests.post(
        api.url + PRESIGNED,
        data=b"{not json",
        headers={**api.headers(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert raw.status_code == 400 and raw.json() == {"error": "The request body is not valid JSON."}
    huge = api.presigned({"action": "list", "padding": "x" * (3 * MiB)})
    assert huge.status_code == 413 and "2,097,152 bytes" in huge.json()["error"]


# --- list, status, sign with digests, completion seen by status --------------------------------------


def test_list_shows_an_unfinished_upload_and_status_lists_its_parts(nextjs_full: NextRoute) -> None:
    api = nextjs_full.api()
    part = b"p" * (5 * MiB)
    started = start(api, totalParts=2, fileSize=len(part) + 1)
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    assert started["uniqueFileName"].startswith(f"{nextjs_full.alice.user_id}_")
    assert len(started["presignedUrls"]) == 2 and started["checksumAlgorithm"] is None
    put = requests.put(started["presignedUrls"][0], data=part, timeout=60)
    assert put.status_code == 200, put.text
    try:
        listed = {u["uploadId"]: u for u in api.ok(api.presigned({"action": "list"}))["uploads"]}
        mine = listed[started["uploadId"]]
        assert (mine["s3Key"], mine["uniqueFileName"]) == (started["s3Key"], started["uniqueFileName"])
        assert mine["initiated"] and mine["initiated"][:4].isdigit()
        status = api.ok(api.presigned({"action": "status", **ids}))
        assert status == {"parts": [{"PartNumber": 1, "ETag": put.headers["ETag"], "Size": len(part)}]}
    finally:
        api.ok(api.presigned({"action": "abort", **ids}))
    assert started["uploadId"] not in {u["uploadId"] for u in api.ok(api.presigned({"action": "list"}))["uploads"]}


def test_signed_digests_bind_the_bytes_and_status_reports_a_completed_upload(
    nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    api = nextjs_full.api()
    body = b"the right bytes" * 1000
    # Content-MD5 on an upload started without an algorithm.
    plain = start(api, name="a.onnx", fileSize=len(body), urlBatch=1)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    ids = {"uploadId": plain["uploadId"], "s3Key": plain["s3Key"]}
    url = api.ok(api.presigned({"action": "sign", **ids, "partNumbers": [1], "contentMd5": {"1": md5}}))[
        "presignedUrls"
    ]["1"]
    assert "content-md5" in urllib.parse.unquote(url).lower()
    assert requests.put(url, data=body, timeout=30).status_code == 403, "the header is part of the signature"
    wrong = requests.put(url, data=b"X" + body[1:], headers={"Content-MD5": md5}, timeout=30)
    assert wrong.status_code == 400 and "BadDigest" in wrong.text
    api.ok(api.presigned({"action": "abort", **ids}))

    # CRC32C on an upload started with it, passed on at completion.
    started = start(api, name="b.safetensors", fileSize=len(body), checksumAlgorithm="crc32c", urlBatch=1)
    assert started["checksumAlgorithm"] == "crc32c"
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    digest = crc32c(body)
    signed = api.ok(api.presigned({"action": "sign", **ids, "partNumbers": [1], "checksumCrc32c": {"1": digest}}))
    url = signed["presignedUrls"]["1"]
    assert "x-amz-checksum-crc32c" in urllib.parse.unquote(url).lower() and signed["expiresAt"].endswith("Z")
    put = requests.put(url, data=body, headers={"x-amz-checksum-crc32c": digest}, timeout=30)
    assert put.status_code == 200, put.text
    both = api.presigned(
        {"action": "sign", **ids, "partNumbers": [1], "checksumCrc32c": {"1": digest}, "contentMd5": {"1": md5}}
    )
    assert both.status_code == 400 and "more than one digest" in both.json()["error"]
    done = api.ok(
        api.presigned(
            {
                "action": "complete",
                **ids,
                "parts": [{"PartNumber": 1, "ETag": put.headers["ETag"], "ChecksumCRC32C": digest}],
            }
        )
    )
    assert done["success"] is True and done["size"] == len(body) and done["etag"]
    assert done["uniqueFileName"] == started["uniqueFileName"]
    stored_once(s3, sandbox.bucket, started["s3Key"], hashlib.sha256(body).hexdigest())
    # The client lost that answer: status says the upload completed, with what complete said.
    again = api.ok(api.presigned({"action": "status", **ids}))
    assert again["completed"] is True and again["parts"] == []
    assert (again["size"], again["comfyUIPath"]) == (len(body), done["comfyUIPath"])


def test_an_expired_url_is_refused_and_a_fresh_signature_works(nextjs_full: NextRoute) -> None:
    api = nextjs_full.api()
    body = b"x" * 1000
    started = start(api, fileSize=len(body), expiresIn=1)
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    try:
        expired = started["presignedUrls"][0]
        wait_until(lambda: requests.put(expired, data=body, timeout=30).status_code == 403, 30, "the URL to expire")
        fresh = api.ok(api.presigned({"action": "sign", **ids, "partNumbers": [1]}))["presignedUrls"]["1"]
        assert requests.put(fresh, data=body, timeout=30).status_code == 200
    finally:
        api.ok(api.presigned({"action": "abort", **ids}))


# --- resume after kill -9 --------------------------------------------------------------------------


def test_an_upload_killed_mid_way_resumes_on_the_same_upload(
    cli: Any, make_file: Any, nextjs_full: NextRoute, s3: Any, sandbox: Any
) -> None:
    sample = make_file(30 * MiB)
    env = nextjs_full.cli_env()
    running = cli.popen(
        "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB", env=env
    )
    try:
        wait_for_parts(cli.home, 2, running)
    finally:
        running.send_signal(signal.SIGKILL)
        running.communicate(timeout=60)
    [record] = cli("list", "--json", env=env).json()["uploads"]
    assert open_multipart_uploads(s3, sandbox.bucket, record["s3Key"])
    finished = cli("resume", record["id"], "--json", env=env)
    assert finished.code == 0, finished.stderr
    [result] = finished.json()["uploads"]
    assert result["s3Key"] == record["s3Key"], "the same upload went on; no second one was started"
    stored_once(s3, sandbox.bucket, result["s3Key"], sample.sha256)
