"""The fast UploadPart presigner makes botocore's URLs, and real storage takes real parts with them."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.auth
import google_crc32c
import pytest
import requests
from botocore.config import Config

from desktop_uploader.server.sigv4 import Keys, PartSigner

FIXED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
MD5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
CRC = base64.b64encode(b"\x01\x02\x03\x04").decode()


def botocore_url(
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    keys: Keys,
    params: dict[str, Any],
    expiry: int,
    region: str = "us-east-1",
) -> str:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda **_: FIXED.replace(tzinfo=None))
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        aws_session_token=keys.token,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return str(client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expiry))


@pytest.mark.parametrize(
    ("endpoint", "key", "upload_id", "digest"),
    [
        ("http://127.0.0.1:8333", "loras/alice/alice_1_model.safetensors", "abc123", None),
        ("http://127.0.0.1:8333/", "loras/u/u_1_é t+~!'()*.bin", "a/b+c=d e", ("ChecksumCRC32C", CRC)),
        ("https://s3.example.com:443", "loras/u/u_1_ünïcødé.gguf", "Xy_z-1.~", ("ChecksumCRC32", CRC)),
        ("http://Storage.Example.com:80", "loras/u/u_1_%41.pt", "id%2F", ("ContentMD5", MD5)),
        ("https://[::1]:9000", "loras/u/u_1_a;b=c&d.ckpt", "q?r#s", None),
    ],
)
@pytest.mark.parametrize("token", [None, "session/token+with=odd chars"])
def test_urls_are_byte_identical_to_botocores(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str, upload_id: str, digest: Any, token: str | None
) -> None:
    keys = Keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    signer = PartSigner(endpoint, "my-bucket", "eu-west-3", lambda: keys, clock=lambda: FIXED)
    digests = {7: digest} if digest else {}
    ours = signer.presign(key, upload_id, [1, 7, 10_000], 3600, digests)
    for number in (1, 7, 10_000):
        params = {"Bucket": "my-bucket", "Key": key, "UploadId": upload_id, "PartNumber": number}
        if number in digests:
            params[digests[number][0]] = digests[number][1]
        theirs = botocore_url(monkeypatch, endpoint.rstrip("/"), keys, params, 3600, region="eu-west-3")
        assert ours[number] == theirs


def _signer(sandbox: Any) -> PartSigner:
    keys = Keys(sandbox.access_key, sandbox.secret_key)
    return PartSigner(sandbox.s3_endpoint, sandbox.bucket, "us-east-1", lambda: keys)


def test_storage_takes_parts_through_fast_urls_with_a_signed_checksum(s3: Any, sandbox: Any) -> None:
    key = "loras/sigv4/sigv4_1_é t+~.safetensors"
    upload_id = s3.create_multipart_upload(Bucket=sandbox.bucket, Key=key, ChecksumAlgorithm="CRC32C")["UploadId"]
    first, last = bytes(range(256)) * 20480, b"the last part"  # 5 MiB, then a short last part
    crcs = [base64.b64encode(google_crc32c.Checksum(part).digest()).decode() for part in (first, last)]
    urls = _signer(sandbox).presign(
        key, upload_id, [1, 2], 600, {1: ("ChecksumCRC32C", crcs[0]), 2: ("ChecksumCRC32C", crcs[1])}
    )
    assert "x-amz-checksum-crc32c" in urls[1]

    tampered = urls[2].replace("X-Amz-Signature=", "X-Amz-Signature=0")[:-1]
    assert requests.put(tampered, data=last, headers={"x-amz-checksum-crc32c": crcs[1]}, timeout=30).status_code == 403
    damaged = requests.put(urls[2], data=b"X" + last[1:], headers={"x-amz-checksum-crc32c": crcs[1]}, timeout=30)
    assert damaged.status_code == 400 and "BadDigest" in damaged.text

    etags = []
    for number, part in ((1, first), (2, last)):
        answer = requests.put(urls[number], data=part, headers={"x-amz-checksum-crc32c": crcs[number - 1]}, timeout=60)
        assert answer.status_code == 200, answer.text
        etags.append(answer.headers["ETag"])
    s3.complete_multipart_upload(
        Bucket=sandbox.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": n, "ETag": etag, "ChecksumCRC32C": crc}
                for n, (etag, crc) in enumerate(zip(etags, crcs, strict=True), start=1)
            ]
        },
    )
    assert s3.get_object(Bucket=sandbox.bucket, Key=key)["Body"].read() == first + last


def test_storage_takes_a_part_through_a_fast_url_without_a_digest(s3: Any, sandbox: Any) -> None:
    key = "loras/sigv4/sigv4_2_plain.bin"
    upload_id = s3.create_multipart_upload(Bucket=sandbox.bucket, Key=key)["UploadId"]
    url = _signer(sandbox).presign(key, upload_id, [1], 600)[1]
    answer = requests.put(url, data=b"just bytes", timeout=30)
    assert answer.status_code == 200, answer.text
    parts = s3.list_parts(Bucket=sandbox.bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 10)]
    s3.abort_multipart_upload(Bucket=sandbox.bucket, Key=key, UploadId=upload_id)
