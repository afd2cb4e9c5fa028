"""The presigned multipart actions: start, complete, abort, and the extensions sign, status, list."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from desktop_uploader.engine.limits import layout_problem
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.models import (
    AbortRequest,
    CompleteRequest,
    ListRequest,
    SignRequest,
    StartRequest,
    StatusRequest,
)
from desktop_uploader.server.naming import Destination, checked_name, metadata_for, new_destination, owned_destination
from desktop_uploader.server.room import check_room
from desktop_uploader.server.storage import Storage

log = logging.getLogger(__name__)
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
Request = StartRequest | CompleteRequest | AbortRequest | SignRequest | StatusRequest | ListRequest


def content_type_of(value: str | None) -> str:
    if value is None or value == "":
        return "application/octet-stream"
    if not _MIME.match(value):
        raise ApiError(400, "contentType must be a MIME type such as 'application/octet-stream'.")
    return value


class PresignedService:
    def __init__(self, config: ServerConfig, storage: Storage) -> None:
        self.config = config
        self.storage = storage

    def capabilities(self) -> dict[str, Any]:
        limits = self.config.limits
        return {
            "actions": list(self.config.actions),
            "minPartSize": limits.min_part_size,
            "maxPartSize": limits.max_part_size,
            "maxParts": limits.max_parts,
            "maxFileSize": limits.max_object_size,
            "urlExpirySeconds": self.config.url_expiry_seconds,
            "urlBatch": "sign" in self.config.actions,
            "contentMd5": "sign" in self.config.actions,
            "checksums": ["crc32c", "crc32"] if "sign" in self.config.actions else [],
            "presignedUpload": self.config.presigned_enabled,
            "chunkedUpload": (
                {"path": "/api/user/influencers/chunked-upload", "maxChunkBytes": self.config.chunk_max_bytes}
                if self.config.chunked_enabled
                else None
            ),
            "legacyUpload": (
                {"path": "/api/user/influencers/upload", "maxBytes": self.config.legacy_max_bytes}
                if self.config.legacy_enabled
                else None
            ),
        }

    def handle(self, user_id: str, request: Request) -> dict[str, Any]:
        if request.action not in self.config.actions:
            raise ApiError(400, f"Unknown action '{request.action}'. Supported: {', '.join(self.config.actions)}.")
        if not self.config.presigned_enabled:
            raise ApiError(503, "Presigned uploads are switched off on this server; use the chunked upload.")
        match request:
            case StartRequest():
                return self.start(user_id, request)
            case CompleteRequest():
                return self.complete(user_id, request)
            case AbortRequest():
                return self.abort(user_id, request)
            case SignRequest():
                return self.sign(user_id, request)
            case StatusRequest():
                return self.status(user_id, request)
            case ListRequest():
                return self.list_uploads(user_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _expiry(self, wish: int | None) -> int:
        """A client may ask for shorter-lived URLs, never longer than this server allows."""
        return min(self.config.url_expiry_seconds, wish or self.config.url_expiry_seconds)

    def _expires_at(self, seconds: int) -> str:
        moment = datetime.now(UTC) + timedelta(seconds=seconds)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    def start(self, user_id: str, request: StartRequest) -> dict[str, Any]:
        name = checked_name(self.config, request.file_name)
        limits = self.config.limits
        if request.total_parts > limits.max_parts:
            raise ApiError(400, f"totalParts must be between 1 and {limits.max_parts:,}.")
        if request.file_size is not None:
            problem = layout_problem(request.file_size, request.total_parts, limits)
            if problem:
                raise ApiError(400, problem)
        check_room(self.config.local_store_dir, request.file_size)
        content_type = content_type_of(request.content_type)
        destination = new_destination(self.config, user_id, name)
        # Only a client that can sign checksums may ask for one: storage then refuses parts without it.
        algorithm = request.checksum_algorithm if "sign" in self.config.actions else None
        upload_id = self.storage.create_multipart(
            destination.s3_key, content_type, metadata_for(request.display_name, request.file_name), algorithm
        )
        log.info(
            "start %s for %s: %d parts, %s bytes",
            destination.s3_key,
            user_id,
            request.total_parts,
            request.file_size if request.file_size is not None else "unknown",
        )
        batching = "sign" in self.config.actions and request.url_batch is not None
        count = min(request.total_parts, request.url_batch or request.total_parts) if batching else request.total_parts
        expiry = self._expiry(request.expires_in)
        try:
            urls = list(self.storage.presign_parts(destination.s3_key, upload_id, range(1, count + 1), expiry).values())
        except Exception:
            self.storage.abort(destination.s3_key, upload_id)
            raise
        return {
            "uploadId": upload_id,
            "s3Key": destination.s3_key,
            "uniqueFileName": destination.unique_file_name,
            "presignedUrls": urls,
            "comfyUIPath": destination.comfyui_path,
            "expiresAt": self._expires_at(expiry),
            "checksumAlgorithm": algorithm,
        }

    def complete(self, user_id: str, request: CompleteRequest) -> dict[str, Any]:
        destination = owned_destination(self.config, user_id, request.s3_key)
        if not request.parts:
            raise ApiError(400, "parts must list at least one uploaded part.")
        numbers = [p.part_number for p in request.parts]
        if len(set(numbers)) != len(numbers):
            raise ApiError(400, "parts lists the same PartNumber more than once.")
        etag = self.storage.complete(
            destination.s3_key, request.upload_id, [(p.part_number, p.etag, p.checksum()) for p in request.parts]
        )
        log.info("complete %s: %d parts", destination.s3_key, len(request.parts))
        answer = self.completion(destination, etag)
        if self.config.answers_like_seed:
            # The seed's backend says neither; clients must cope with an answer that cannot be checked.
            del answer["etag"], answer["size"]
        return answer

    def completion(self, destination: Destination, etag: str) -> dict[str, Any]:
        """The answer to every successful upload, whichever path the bytes took."""
        return {
            "success": True,
            "uniqueFileName": destination.unique_file_name,
            "comfyUIPath": destination.comfyui_path,
            "networkVolumePath": f"s3://{self.config.bucket}/{destination.s3_key}",
            "size": self.storage.object_size(destination.s3_key),
            "etag": etag,
        }

    def abort(self, user_id: str, request: AbortRequest) -> dict[str, Any]:
        destination = owned_destination(self.config, user_id, request.s3_key)
        self.storage.abort(destination.s3_key, request.upload_id)
        log.info("abort %s", destination.s3_key)
        return {"success": True, "message": "Upload aborted"}

    def sign(self, user_id: str, request: SignRequest) -> dict[str, Any]:
        destination = owned_destination(self.config, user_id, request.s3_key)
        wanted = set(request.part_numbers)
        for name, given in (
            ("contentMd5", request.content_md5),
            ("checksumCrc32", request.checksum_crc32),
            ("checksumCrc32c", request.checksum_crc32c),
        ):
            stray = [n for n in given or {} if int(n) not in wanted]
            if stray:
                raise ApiError(400, f"{name} names parts that partNumbers does not list: {', '.join(stray[:5])}.")
        try:
            digests = request.digests()
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        self.storage.verify_upload(destination.s3_key, request.upload_id)
        expiry = self._expiry(request.expires_in)
        signed = self.storage.presign_parts(
            destination.s3_key, request.upload_id, sorted(wanted), expiry, {int(n): d for n, d in digests.items()}
        )
        urls = {str(n): url for n, url in signed.items()}
        log.info("sign %s: %d parts (%d with a digest)", destination.s3_key, len(urls), len(digests))
        return {"presignedUrls": urls, "expiresAt": self._expires_at(expiry)}

    def status(self, user_id: str, request: StatusRequest) -> dict[str, Any]:
        destination = owned_destination(self.config, user_id, request.s3_key)
        try:
            parts = self.storage.list_parts(destination.s3_key, request.upload_id)
        except ApiError as missing:
            # An upload that is gone because it was completed (its client lost the answer, or could not
            # record it) has its object at its key, which no other upload shares: say so, with what
            # complete answered, so the client does not send the file a second time.
            found = self.storage.existing(destination.s3_key) if missing.status == 404 else None
            if found is None:
                raise
            return {"parts": [], "completed": True, **self.completion(destination, found[1])}
        return {"parts": [p.as_json() for p in parts]}

    def list_uploads(self, user_id: str) -> dict[str, Any]:
        prefix = f"{self.config.key_prefix}/{user_id}/"
        uploads = self.storage.list_uploads(prefix)
        return {
            "uploads": [
                {
                    "uploadId": u["UploadId"],
                    "s3Key": u["Key"],
                    "uniqueFileName": u["Key"][len(prefix) :],
                    "initiated": u["Initiated"].isoformat() if hasattr(u.get("Initiated"), "isoformat") else None,
                }
                for u in uploads
            ]
        }
