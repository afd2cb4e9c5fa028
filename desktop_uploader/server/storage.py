"""The server's S3 calls, with S3's errors turned into API answers a client can act on.

One boto3 client for the server's own calls, with path-style addressing, computing checksums only
when an operation requires them: SeaweedFS, MinIO and R2 reject boto3's new default CRCs.
UploadPart URLs are presigned by ``sigv4.PartSigner`` (boto3 takes ~2 ms a URL), for the address
*clients* reach storage at: SigV4 signs the Host header, so a URL must be presigned for the host the
client will connect to.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from desktop_uploader.engine.errors import STORAGE_FULL_CODES
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.sigv4 import Keys, PartSigner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"PartNumber": self.number, "ETag": self.etag, "Size": self.size}


def _client(config: ServerConfig, endpoint: str | None, *, read_timeout: int) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=config.s3_region,
        aws_access_key_id=config.s3_access_key,
        aws_secret_access_key=config.s3_secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=5,
            # CompleteMultipartUpload of 10 GB+ takes minutes on some stores (RunPod documents it).
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=32,
        ),
    )


_BUCKET_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# Said as it is, never "busy": trying again can't help until someone frees space there (MinIO's 507).
STORAGE_FULL = "Storage is full: it has no room for more data. Free some space there, then retry."
_PER_UPLOAD = frozenset({"ListParts", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"})


@contextmanager
def _translated(action: str, min_part_size: int) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        log.warning("S3 %s failed: %s", action, code)
        if code in {"NoSuchUpload", "NoSuchKey"} or (code == "InvalidRequest" and action in _PER_UPLOAD):
            # An upload id storage can't even parse ("a/b" on SeaweedFS) is one that does not exist.
            raise ApiError(404, "No such upload for this key: it was completed, aborted, or never started.") from exc
        if code == "EntityTooSmall":
            raise ApiError(
                400,
                f"Storage refused the parts: every part except the last must be at least "
                f"{human_bytes(min_part_size)}. Upload again with a chunk size of at least "
                f"{human_bytes(min_part_size)}.",
            ) from exc
        if code in {"InvalidPart", "InvalidPartOrder"}:
            raise ApiError(
                400, "Storage refused the part list: a part is missing, or an ETag does not match what was stored."
            ) from exc
        if code in {"EntityTooLarge", "InvalidArgument", "InvalidRequest", "MalformedXML"}:
            raise ApiError(400, f"Storage refused the request ({code}).") from exc
        if code in STORAGE_FULL_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 507:
            raise ApiError(507, STORAGE_FULL) from exc
        if code in {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError"}:
            raise ApiError(503, "Storage is busy; try again shortly.") from exc
        raise ApiError(502, f"Storage answered with an error ({code or 'unknown'}).") from exc
    except EndpointConnectionError as exc:
        log.warning("S3 %s failed: storage unreachable", action)
        raise ApiError(503, "Storage is unreachable; try again shortly.") from exc
    except BotoCoreError as exc:
        log.warning("S3 %s failed: %s", action, type(exc).__name__)
        raise ApiError(503, "Storage did not answer properly; try again shortly.") from exc


class Storage:
    def __init__(self, config: ServerConfig) -> None:
        self.bucket = config.bucket
        self.min_part_size = config.limits.min_part_size
        self._s3 = _client(config, config.s3_endpoint, read_timeout=600)
        # The same credential chain boto3.client() follows: given keys, else environment, config, role.
        self._session = boto3.Session(
            aws_access_key_id=config.s3_access_key,
            aws_secret_access_key=config.s3_secret_key,
            region_name=config.s3_region,
        )
        self._signer = PartSigner(
            config.s3_public_endpoint or str(self._s3.meta.endpoint_url),
            self.bucket,
            config.s3_region,
            self._keys,
        )

    def _keys(self) -> Keys:
        credentials = self._session.get_credentials()
        if credentials is None:
            log.warning("No S3 credentials found to presign with")
            raise ApiError(503, "The server has no storage credentials to sign with; tell its operator.")
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            log.warning("The S3 credentials found have no key to presign with")
            raise ApiError(503, "The server has no storage credentials to sign with; tell its operator.")
        return Keys(frozen.access_key, frozen.secret_key, frozen.token)

    def _call(self, action: str) -> Any:
        return _translated(action, self.min_part_size)

    def ensure_bucket(self) -> None:
        """The bucket exists afterwards, whoever made it.

        Another creator can win the race between HeadBucket and CreateBucket (a second instance, or a
        store that makes buckets itself), so "it already exists" is success, not an error.
        """
        with self._call("HeadBucket"):
            try:
                self._s3.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
                try:
                    self._s3.create_bucket(Bucket=self.bucket)
                except ClientError as create_exc:
                    if _code(create_exc) not in _BUCKET_EXISTS:
                        raise
                    log.info("Bucket %s was created by someone else meanwhile", self.bucket)

    def create_multipart(
        self, key: str, content_type: str, metadata: dict[str, str], checksum_algorithm: str | None = None
    ) -> str:
        """A new multipart upload; with ``checksum_algorithm``, S3 takes (and wants) that checksum on each part."""
        extra = {"ChecksumAlgorithm": checksum_algorithm.upper()} if checksum_algorithm else {}
        with self._call("CreateMultipartUpload"):
            answer = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata, **extra
            )
        return str(answer["UploadId"])

    def presign_parts(
        self,
        key: str,
        upload_id: str,
        numbers: Iterable[int],
        expiry: int,
        digests: Mapping[int, tuple[str, str]] | None = None,
    ) -> dict[int, str]:
        """UploadPart URLs by part number; a part's digest given as (S3 parameter, value), e.g.
        ("ChecksumCRC32C", "…"), is signed in, so storage refuses bytes that don't match it (and a
        request without its header)."""
        return self._signer.presign(key, upload_id, numbers, expiry, digests)

    def verify_upload(self, key: str, upload_id: str) -> None:
        """404 unless ``upload_id`` is an unfinished multipart upload of exactly ``key``."""
        with self._call("ListParts"):
            self._s3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id, MaxParts=1)

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        with self._call("ListParts"):
            while True:
                page = self._s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker, MaxParts=1000
                )
                parts.extend(StoredPart(p["PartNumber"], p["ETag"], p["Size"]) for p in page.get("Parts", []))
                if not page.get("IsTruncated"):
                    return parts
                next_marker = int(page.get("NextPartNumberMarker") or 0)
                if next_marker <= marker:  # a store that paginates wrongly must not loop us forever
                    return parts
                marker = next_marker

    def upload_part(self, key: str, upload_id: str, number: int, body: IO[bytes] | io.RawIOBase, length: int) -> str:
        with self._call("UploadPart"):
            answer = self._s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, ContentLength=length
            )
        return str(answer["ETag"])

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str, tuple[str, str] | None]]) -> str:
        """Assemble the parts; each given with its checksum (S3 field, value) when the upload has an algorithm."""
        ordered = [
            {"PartNumber": n, "ETag": etag, **({checksum[0]: checksum[1]} if checksum else {})}
            for n, etag, checksum in sorted(parts, key=lambda part: part[0])
        ]
        with self._call("CompleteMultipartUpload"):
            answer = self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": ordered}
            )
        return str(answer.get("ETag", ""))

    def abort(self, key: str, upload_id: str) -> None:
        # Stores differ on aborting an already-aborted upload (SeaweedFS says 204, S3 NoSuchUpload);
        # the API promises a 404 for any upload id that does not exist, so it checks first.
        self.verify_upload(key, upload_id)
        with self._call("AbortMultipartUpload"):
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def existing(self, key: str) -> tuple[int, str] | None:
        """Size and ETag of the object at ``key``, or None when there is none."""
        with self._call("HeadObject"):
            try:
                answer = self._s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise
        return int(answer["ContentLength"]), str(answer.get("ETag", ""))

    def object_size(self, key: str) -> int:
        with self._call("HeadObject"):
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def put_object(
        self, key: str, body: IO[bytes] | io.RawIOBase, length: int, content_type: str, metadata: dict[str, str]
    ) -> str:
        with self._call("PutObject"):
            answer = self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentLength=length,
                ContentType=content_type,
                Metadata=metadata,
            )
        return str(answer.get("ETag", ""))

    def list_uploads(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxUploads": 1000}
        with self._call("ListMultipartUploads"):
            while True:
                page = self._s3.list_multipart_uploads(**kwargs)
                found.extend(page.get("Uploads", []))
                if not page.get("IsTruncated"):
                    return found
                key_marker, id_marker = page.get("NextKeyMarker"), page.get("NextUploadIdMarker")
                if not key_marker or (key_marker, id_marker) == (kwargs.get("KeyMarker"), kwargs.get("UploadIdMarker")):
                    return found
                kwargs.update(KeyMarker=key_marker, UploadIdMarker=id_marker)

    def list_objects(self, prefix: str) -> list[tuple[str, int, datetime]]:
        """(key, size, last modified) of every object under ``prefix``, all pages."""
        found: list[tuple[str, int, datetime]] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
        with self._call("ListObjectsV2"):
            while True:
                page = self._s3.list_objects_v2(**kwargs)
                found.extend((o["Key"], int(o["Size"]), o["LastModified"]) for o in page.get("Contents", []))
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token or token == kwargs.get("ContinuationToken"):
                    return found
                kwargs["ContinuationToken"] = token

    def download_into(self, key: str, handle: IO[bytes]) -> int:
        """Stream the object at ``key`` into ``handle``; its size."""
        with self._call("GetObject"):
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            size = 0
            for block in iter(lambda: body.read(1 << 20), b""):
                handle.write(block)
                size += len(block)
        return size

    def delete_object(self, key: str) -> None:
        with self._call("DeleteObject"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)
