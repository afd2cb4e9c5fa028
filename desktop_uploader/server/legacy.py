"""The legacy path: one multipart/form-data request, for files small enough for a serverless body."""

from __future__ import annotations

from typing import IO, Any

from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.naming import checked_name, metadata_for, new_destination
from desktop_uploader.server.presigned import PresignedService, content_type_of
from desktop_uploader.server.storage import Storage


class LegacyService:
    def __init__(self, config: ServerConfig, storage: Storage, presigned: PresignedService) -> None:
        self.config = config
        self.storage = storage
        self.presigned = presigned

    def upload(
        self,
        user_id: str,
        file_name: str,
        body: IO[bytes],
        size: int,
        display_name: str | None,
        content_type: str | None,
    ) -> dict[str, Any]:
        if not self.config.legacy_enabled:
            raise ApiError(404, "Single-request uploads are not offered by this server.")
        if size > self.config.legacy_max_bytes:
            raise ApiError(
                413,
                f"Single-request uploads are limited to {human_bytes(self.config.legacy_max_bytes)}; "
                f"this file is {human_bytes(size)}. Use the presigned or chunked upload.",
            )
        name = checked_name(self.config, file_name)
        destination = new_destination(self.config, user_id, name)
        body.seek(0)
        etag = self.storage.put_object(
            destination.s3_key, body, size, content_type_of(content_type), metadata_for(display_name, file_name)
        )
        return self.presigned.completion(destination, etag)
