"""The API's own upload paths: chunked (bytes through the server, by offset) and the single request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from urllib3.filepost import encode_multipart_formdata

from desktop_uploader.engine.api_answers import json_object
from desktop_uploader.engine.api_transport import ApiTransport
from desktop_uploader.engine.api_types import (
    ChunkedUpload,
    Completion,
    OffsetMismatchError,
    answer_field,
    completion_from,
)
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import NotFoundError, ProtocolError, UnsupportedError, UploaderError
from desktop_uploader.engine.fileid import unreadable
from desktop_uploader.engine.limits import MiB


class ChunkedActions(ApiTransport):
    def _chunked_path(self) -> str:
        path = self.capabilities().chunked_path
        if not path:
            raise UnsupportedError("This server does not offer the chunked upload.")
        return path

    def chunked_start(
        self, file_name: str, file_size: int, *, display_name: str | None = None, control: Control | None = None
    ) -> ChunkedUpload:
        body: dict[str, Any] = {"action": "start", "fileName": file_name, "fileSize": file_size}
        if display_name:
            body["displayName"] = display_name
        retried: list[bool] = []
        try:
            answer = self._call(
                "chunked start",
                "POST",
                self._chunked_path(),
                json=body,
                control=control,
                on_retry=lambda *_: retried.append(True),
            )
        except NotFoundError as exc:
            raise UnsupportedError("This server does not offer the chunked upload.") from exc
        max_chunk = answer.get("maxChunkBytes")
        return ChunkedUpload(
            upload_id=answer_field(answer, "uploadId", str, "chunked start"),
            s3_key=answer_field(answer, "s3Key", str, "chunked start"),
            unique_file_name=str(answer.get("uniqueFileName") or ""),
            comfyui_path=str(answer.get("comfyUIPath") or ""),
            max_chunk_bytes=max_chunk if isinstance(max_chunk, int) and max_chunk > 0 else 4 * MiB,
            attempts=1 + len(retried),
        )

    def send_chunk(
        self,
        upload_id: str,
        s3_key: str,
        offset: int,
        data: bytes,
        *,
        control: Control | None = None,
        on_retry: Callable[[int, UploaderError, float], None] | None = None,
    ) -> int:
        """Send one chunk; returns the server's ``received``. Raises :class:`OffsetMismatchError` on 409."""

        def parse(response: requests.Response) -> int:
            body = json_object(response, "chunk")
            if response.status_code == 409:
                expected = body.get("expectedOffset")
                if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
                    raise ProtocolError("The upload server refused a chunk without saying where to go on.")
                raise OffsetMismatchError(expected)
            received = body.get("received")
            if not isinstance(received, int) or isinstance(received, bool):
                raise ProtocolError("The upload server's answer to a chunk lacks 'received'.")
            return received

        received: int = self._call(
            "chunk",
            "POST",
            self._chunked_path(),
            control=control,
            parse=parse,
            on_retry=on_retry,
            announce=on_retry is None,  # the chunked method says which chunk is retried, itself
            accept=frozenset({409}),
            params={"uploadId": upload_id, "s3Key": s3_key, "offset": offset},
            data=data,
            headers_extra={"Content-Type": "application/octet-stream"},
        )
        return received

    def chunked_status(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> int:
        answer = self._call(
            "chunked status",
            "POST",
            self._chunked_path(),
            control=control,
            json={"action": "status", "uploadId": upload_id, "s3Key": s3_key},
        )
        received: int = answer_field(answer, "received", int, "chunked status")
        return received

    def chunked_complete(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> Completion:
        answer = self._call(
            "chunked complete",
            "POST",
            self._chunked_path(),
            control=control,
            timeout=self.settings.complete_timeout,
            json={"action": "complete", "uploadId": upload_id, "s3Key": s3_key},
        )
        return completion_from(answer, "complete")

    def chunked_abort(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> None:
        self._call(
            "chunked abort",
            "POST",
            self._chunked_path(),
            control=control,
            json={"action": "abort", "uploadId": upload_id, "s3Key": s3_key},
        )

    def legacy_upload(
        self, path: Path, file_name: str, *, display_name: str | None = None, control: Control | None = None
    ) -> Completion:
        legacy_path = self.capabilities().legacy_path
        if not legacy_path:
            raise UnsupportedError("This server does not offer single-request uploads.")

        # At most a few MiB: read once, so that a retry re-sends the same bytes.
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise unreadable(path, exc) from exc
        form: dict[str, Any] = {"displayName": display_name} if display_name else {}
        # Encoded here, not by requests, so that the body goes out paced like any other (see PacedBody).
        body, content_type = encode_multipart_formdata({**form, "file": (file_name, data, "application/octet-stream")})
        try:
            answer = self._call(
                "upload", "POST", legacy_path, control=control, data=body, headers_extra={"Content-Type": content_type}
            )
        except NotFoundError as exc:
            raise UnsupportedError("This server does not offer single-request uploads.") from exc
        return completion_from(answer, "upload")
