"""What a user would check in storage: the object's bytes, and that nothing half-done is left."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from botocore.config import Config

from desktop_uploader.sandbox.info import SandboxInfo


def s3_client(info: SandboxInfo) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=info.s3_endpoint,
        aws_access_key_id=info.access_key,
        aws_secret_access_key=info.secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",  # what the server uses; SeaweedFS accepts SigV2 URLs with no signature
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def object_sha256(s3: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for block in iter(lambda: body.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def open_multipart_uploads(s3: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = s3.list_multipart_uploads(**kwargs)
        uploads.extend(page.get("Uploads", []))
        if not page.get("IsTruncated"):
            return uploads
        kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
