"""The upload API, as typed calls: presigned start/sign/status/complete/abort/list, over the chunked paths.

Every answer is checked for shape before it is believed: a proxy's HTML error page, an empty body
or JSON of the wrong form becomes a :class:`ProtocolError` (retried like any transient failure),
never a ``KeyError`` deep in an upload.

Two calls are not naturally idempotent, and their answers can be lost on the way back:

- ``start``: a retry after a lost answer creates a second multipart upload, and the first would be
  an orphan that costs storage forever. When the server offers ``list``, the uploads of the same
  file name that storage created during the retried call are aborted (api_lost_starts.py).
- ``complete``: a retry after a lost answer finds the upload gone. Our server answers such a retry
  with the finished object; with the seed's server the client says what happened in words.

The layers under this one: api_chunked.py (the chunked and single-request paths), api_transport.py
(one request with retries, and capabilities), api_types.py (the answers as values).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from desktop_uploader.engine.api_answers import json_object
from desktop_uploader.engine.api_capabilities import Capabilities, seed_capabilities
from desktop_uploader.engine.api_chunked import ChunkedActions
from desktop_uploader.engine.api_lost_starts import abort_lost_starts, clock_offset
from desktop_uploader.engine.api_types import (
    AlreadyStoredError,
    ChunkedUpload,
    Completion,
    OffsetMismatchError,
    RemotePart,
    RemoteUpload,
    SignedUrl,
    StartedUpload,
    answer_field,
    completion_from,
)
from desktop_uploader.engine.checksums import api_field, s3_field
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import NotFoundError, ProtocolError, UploaderError, refused
from desktop_uploader.engine.signed_urls import url_lifetime

__all__ = [
    "AlreadyStoredError",
    "ApiClient",
    "Capabilities",
    "ChunkedUpload",
    "Completion",
    "OffsetMismatchError",
    "RemotePart",
    "RemoteUpload",
    "SignedUrl",
    "StartedUpload",
    "seed_capabilities",
    "url_lifetime",
]


DATE_RESOLUTION = 1.0  # seconds: HTTP's Date header is whole seconds
# Every byte is stored when 'complete' is asked: a redeploy of a serverless route (a Next.js audit's outage of
# 15 s) failed the upload after the settings' 5 tries, about 8 s of backoff. Ten tries wait about a minute.
COMPLETE_ATTEMPTS = 10


class ApiClient(ChunkedActions):
    """The whole API a method needs, for one server and token."""

    def _signed(
        self, urls: Iterable[tuple[int, Any]], action: str, received_at: float, offset: float
    ) -> dict[int, SignedUrl]:
        """The links of an answer, each with its deadline on our clock, read from the link itself.

        ``offset`` is how far the server's clock is ahead of ours (from the answer's ``Date``): a link's
        age is measured on the clock that signed it. The server's ``urlExpirySeconds`` (or the seed's
        hour) counts only for a link that doesn't say. ``Date`` and ``X-Amz-Date`` count whole seconds,
        so the server's time is taken as the latest it can be: read as the earliest, a link seemed to
        live up to a second longer than it did, and a 2 s link's 0.5 s margin was spent (a test's 403).
        """
        fallback = float(self.capabilities().url_expiry_seconds)
        server_now = time.time() + offset + DATE_RESOLUTION
        signed = {}
        for number, url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ProtocolError(f"The upload server's answer to '{action}' contains an invalid upload link.")
            signed[number] = SignedUrl(url, received_at + url_lifetime(url, fallback, server_now))
        return signed

    @staticmethod
    def _with_clock(action: str) -> Callable[[requests.Response], tuple[dict[str, Any], float]]:
        """Parse an answer that carries links, keeping how far the server's clock is ahead of ours."""
        return lambda response: (json_object(response, action), clock_offset(response))

    def start(
        self,
        file_name: str,
        total_parts: int,
        file_size: int,
        *,
        display_name: str | None = None,
        url_batch: int | None = None,
        checksum: str | None = None,
        control: Control | None = None,
    ) -> StartedUpload:
        body: dict[str, Any] = {
            "action": "start",
            "fileName": file_name,
            "totalParts": total_parts,
            "fileSize": file_size,
            "contentType": "application/octet-stream",
        }
        if display_name:
            body["displayName"] = display_name
        if url_batch:
            body["urlBatch"] = url_batch
        if checksum:
            body["checksumAlgorithm"] = checksum
        body.update(self._expiry_wish())
        retried: list[bool] = []
        try:
            answer, offset = self._call(
                "start",
                "POST",
                self.settings.presigned_path,
                json=body,
                control=control,
                on_retry=lambda *_: retried.append(True),
                parse=self._with_clock("start"),
            )
        except UploaderError as exc:
            exc.created_nothing = not retried and refused(exc)
            raise
        received = self.clock()
        urls = answer_field(answer, "presignedUrls", list, "start")
        started = StartedUpload(
            upload_id=answer_field(answer, "uploadId", str, "start"),
            s3_key=answer_field(answer, "s3Key", str, "start"),
            unique_file_name=str(answer.get("uniqueFileName") or ""),
            comfyui_path=str(answer.get("comfyUIPath") or ""),
            urls=self._signed(enumerate(urls, start=1), "start", received, offset),
            attempts=1 + len(retried),
            # Only what the server confirms: one that ignored the wish created an upload without it.
            checksum=checksum if checksum and answer.get("checksumAlgorithm") == checksum else "",
        )
        if not url_batch and len(started.urls) < total_parts:
            raise ProtocolError("The upload server returned fewer upload links than parts.")
        return started

    def sign(
        self,
        upload_id: str,
        s3_key: str,
        part_numbers: list[int],
        *,
        content_md5: dict[int, str] | None = None,
        checksums: dict[int, str] | None = None,
        checksum: str = "",
        control: Control | None = None,
    ) -> dict[int, SignedUrl]:
        """URLs for ``part_numbers``, with a Content-MD5 or a ``checksum``-algorithm checksum signed in per part."""
        body: dict[str, Any] = {"action": "sign", "uploadId": upload_id, "s3Key": s3_key, "partNumbers": part_numbers}
        if content_md5:
            body["contentMd5"] = {str(n): digest for n, digest in content_md5.items()}
        if checksums:
            body[api_field(checksum)] = {str(n): digest for n, digest in checksums.items()}
        body.update(self._expiry_wish())
        answer, offset = self._call(
            "sign", "POST", self.settings.presigned_path, json=body, control=control, parse=self._with_clock("sign")
        )
        received = self.clock()
        urls = answer_field(answer, "presignedUrls", dict, "sign")
        try:
            pairs = [(int(n), url) for n, url in urls.items()]
        except ValueError as exc:
            raise ProtocolError("The upload server's answer to 'sign' has invalid part numbers.") from exc
        signed = self._signed(pairs, "sign", received, offset)
        missing = set(part_numbers) - set(signed)
        if missing:
            raise ProtocolError(f"The upload server did not sign part {min(missing)}.")
        return signed

    def status(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> list[RemotePart]:
        """The parts storage holds; :class:`AlreadyStoredError` when the server says the upload was completed."""
        answer = self._call(
            "status",
            "POST",
            self.settings.presigned_path,
            control=control,
            json={"action": "status", "uploadId": upload_id, "s3Key": s3_key},
        )
        if answer.get("completed") is True:
            raise AlreadyStoredError(completion_from(answer, "status"))
        parts = []
        for item in answer_field(answer, "parts", list, "status"):
            if not isinstance(item, dict):
                raise ProtocolError("The upload server's answer to 'status' is malformed.")
            parts.append(
                RemotePart(int(item.get("PartNumber", 0)), str(item.get("ETag", "")), int(item.get("Size", -1)))
            )
        return parts

    def complete(
        self,
        upload_id: str,
        s3_key: str,
        parts: list[tuple[int, str]],
        *,
        checksums: dict[int, str] | None = None,
        checksum: str = "",
        control: Control | None = None,
    ) -> Completion:
        """Assemble the object; an upload started with a checksum algorithm lists every part's checksum."""
        listed: list[dict[str, Any]] = []
        for number, etag in sorted(parts):
            item: dict[str, Any] = {"PartNumber": number, "ETag": etag}
            if checksum and checksums and checksums.get(number):
                item[s3_field(checksum)] = checksums[number]
            listed.append(item)
        body = {"action": "complete", "uploadId": upload_id, "s3Key": s3_key, "parts": listed}
        retried: list[bool] = []
        try:
            answer = self._call(
                "complete",
                "POST",
                self.settings.presigned_path,
                json=body,
                control=control,
                timeout=self.settings.complete_timeout,
                on_retry=lambda *_: retried.append(True),
                attempts=max(self.policy.attempts, COMPLETE_ATTEMPTS),
            )
        except NotFoundError as exc:
            if retried:
                raise NotFoundError(
                    "The server lost its answer while finishing the upload, and now no longer knows it: the file "
                    "was most likely stored. Check the destination before uploading it again."
                ) from exc
            raise
        return completion_from(answer, "complete")

    def abort(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> None:
        retried: list[bool] = []
        try:
            self._call(
                "abort",
                "POST",
                self.settings.presigned_path,
                control=control,
                json={"action": "abort", "uploadId": upload_id, "s3Key": s3_key},
                on_retry=lambda *_: retried.append(True),
            )
        except NotFoundError:
            if not retried:
                raise
            # An earlier attempt did abort it; its answer was lost.

    def list_uploads(self, *, control: Control | None = None) -> list[RemoteUpload]:
        return self.list_uploads_and_clock(control=control)[0]

    def list_uploads_and_clock(self, *, control: Control | None = None) -> tuple[list[RemoteUpload], float]:
        """The user's unfinished uploads, and how far the server's clock is ahead of ours (from its ``Date``)."""

        def parse(response: requests.Response) -> tuple[dict[str, Any], float]:
            return json_object(response, "list"), clock_offset(response)

        answer, offset = self._call(
            "list", "POST", self.settings.presigned_path, json={"action": "list"}, control=control, parse=parse
        )
        uploads = []
        for item in answer_field(answer, "uploads", list, "list"):
            if isinstance(item, dict) and isinstance(item.get("uploadId"), str) and isinstance(item.get("s3Key"), str):
                unique, initiated = str(item.get("uniqueFileName") or ""), str(item.get("initiated") or "")
                uploads.append(RemoteUpload(item["uploadId"], item["s3Key"], unique, initiated))
        return uploads, offset

    def abort_lost_starts(
        self, safe_name: str, since: float, until: float, keep: set[str], *, chunked: bool = False
    ) -> int | None:
        """See :func:`api_lost_starts.abort_lost_starts`."""
        return abort_lost_starts(self, safe_name, since, until, keep, chunked=chunked)
