"""The upload API, as typed calls: presigned start/complete/abort (+ sign/status/list), chunked, legacy.

Every answer is checked for shape before it is believed: a proxy's HTML error page, an empty body
or JSON of the wrong form becomes a :class:`ProtocolError` (retried like any transient failure),
never a ``KeyError`` deep in an upload.

Two calls are not naturally idempotent, and their answers can be lost on the way back:

- ``start``: a retry after a lost answer creates a second multipart upload, and the first would be
  an orphan that costs storage forever. When the server offers ``list``, the client aborts uploads
  of the same file name that appeared during the retried call.
- ``complete``: a retry after a lost answer finds the upload gone. Our server answers such a retry
  with the finished object; with the seed's server the client says what happened in words.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from urllib3.filepost import encode_multipart_formdata

from desktop_uploader.engine.checksums import api_field, s3_field
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import (
    NotFoundError,
    ProtocolError,
    RejectedError,
    TransientError,
    UnsupportedError,
    UploaderError,
)
from desktop_uploader.engine.fileid import unreadable
from desktop_uploader.engine.http import (
    PacedBody,
    Sessions,
    error_for_api_response,
    error_for_exception,
    json_object,
)
from desktop_uploader.engine.limits import DEFAULT_LIMITS, MiB, S3Limits
from desktop_uploader.engine.retry import RetryPolicy
from desktop_uploader.engine.settings import Settings

log = logging.getLogger(__name__)

SEED_ACTIONS = frozenset({"start", "complete", "abort"})


@dataclass(frozen=True)
class Capabilities:
    actions: frozenset[str]
    limits: S3Limits
    url_expiry_seconds: int
    url_batch: bool
    content_md5: bool
    presigned: bool
    chunked_path: str | None
    max_chunk_bytes: int
    legacy_path: str | None
    legacy_max_bytes: int
    advertised: bool  # False: the server has no capabilities document (the seed's backend)
    # Checksum algorithms ``sign`` can sign into a part's URL, and ``start`` announce to storage.
    checksums: tuple[str, ...] = ()

    def offers(self, action: str) -> bool:
        return action in self.actions


def seed_capabilities(settings: Settings) -> Capabilities:
    """What a server without a capabilities document is assumed to do: the original backend's contract."""
    return Capabilities(
        actions=SEED_ACTIONS,
        limits=DEFAULT_LIMITS,
        url_expiry_seconds=3600,
        url_batch=False,
        content_md5=False,
        presigned=True,
        chunked_path=settings.chunked_path,
        max_chunk_bytes=4 * MiB,
        legacy_path=settings.legacy_path,
        legacy_max_bytes=6 * MiB,
        advertised=False,
    )


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: float  # time.monotonic() deadline, from when we received it


@dataclass(frozen=True)
class StartedUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    comfyui_path: str
    urls: dict[int, SignedUrl]
    attempts: int = 1  # more than one: an earlier attempt may have created an upload whose answer was lost
    checksum: str = ""  # the algorithm storage expects on every part, as the server confirmed it ("": none)


@dataclass(frozen=True)
class Completion:
    unique_file_name: str
    comfyui_path: str | None
    network_volume_path: str | None
    size: int | None
    etag: str


class AlreadyStoredError(NotFoundError):
    """The upload is gone because it was completed: its object is stored (a server that says so)."""

    def __init__(self, completion: Completion) -> None:
        super().__init__("This upload was already completed.")
        self.completion = completion


@dataclass(frozen=True)
class RemotePart:
    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class RemoteUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    initiated: str = ""  # when storage created it, ISO 8601 as the server said it ("": not said)


@dataclass(frozen=True)
class ChunkedUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    comfyui_path: str
    max_chunk_bytes: int
    attempts: int = 1  # more than one: an earlier attempt may have created an upload whose answer was lost


class OffsetMismatchError(RejectedError):
    """The chunked endpoint expected another offset (409); ``expected`` says where to go on."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"The server expected the next chunk at byte {expected:,}.", status=409)
        self.expected = expected


def url_lifetime(url: str, fallback: float) -> float:
    """Seconds a presigned URL stays valid from now, read from its X-Amz-Expires (or SigV2 Expires)."""
    query = parse_qs(urlsplit(url).query)
    for key in ("X-Amz-Expires", "x-amz-expires"):
        if key in query and query[key][0].isdigit():
            return float(query[key][0])
    if "Expires" in query and query["Expires"][0].isdigit():
        return max(0.0, float(query["Expires"][0]) - time.time())
    return fallback


def _field(body: dict[str, Any], name: str, kind: type, action: str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"The upload server's answer to '{action}' lacks a valid '{name}'.")
    return value


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        settings: Settings,
        *,
        sessions: Sessions | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.settings = settings
        self.sessions = sessions or Sessions()
        self.policy = policy or RetryPolicy(settings.retries, settings.backoff_base, settings.backoff_cap)
        self.clock = clock
        self._capabilities: Capabilities | None = None

    # -- plumbing --------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _call(
        self,
        action: str,
        method: str,
        path: str,
        *,
        control: Control | None = None,
        timeout: float | None = None,
        parse: Callable[[requests.Response], Any] | None = None,
        on_retry: Callable[[int, UploaderError], None] | None = None,
        accept: frozenset[int] = frozenset(),
        headers_extra: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One API request with retries for transient failures; returns ``parse(response)`` (JSON by default).

        Statuses in ``accept`` go to ``parse`` instead of becoming errors, for answers whose body matters.
        """
        read_timeout = timeout or self.settings.read_timeout
        attempt = 0
        while True:
            attempt += 1
            if control is not None:
                control.check()
            try:
                body = kwargs.get("data")
                paced = {"data": PacedBody(body)} if isinstance(body, bytes) else {}
                try:
                    response = self.sessions.get().request(
                        method,
                        self._url(path),
                        headers={**self._headers(), **(headers_extra or {})},
                        timeout=(self.settings.connect_timeout, read_timeout),
                        **{**kwargs, **paced},
                    )
                except requests.RequestException as exc:
                    raise error_for_exception(exc, self._url(path), read_timeout) from exc
                if response.status_code >= 400 and response.status_code not in accept:
                    raise error_for_api_response(response, action)
                return parse(response) if parse else json_object(response, action)
            except TransientError as exc:
                if not self.policy.should_retry(attempt, exc):
                    raise
                delay = self.policy.delay(attempt, exc)
                log.warning(
                    "API %s failed (attempt %d/%d): %s; retrying in %.1f s",
                    action,
                    attempt,
                    self.policy.attempts,
                    exc.message,
                    delay,
                )
                if on_retry is not None:
                    on_retry(attempt, exc)
                if control is not None:
                    control.sleep(delay)
                else:
                    time.sleep(delay)

    def close(self) -> None:
        self.sessions.close()

    def _expiry_wish(self) -> dict[str, int]:
        """The settings' URL lifetime, for servers that say what they do (the seed's may not expect it)."""
        caps = self._capabilities
        return {"expiresIn": self.settings.url_expiry_seconds} if caps is not None and caps.advertised else {}

    # -- capabilities ------------------------------------------------------------------------------------

    def capabilities(self, *, refresh: bool = False, control: Control | None = None) -> Capabilities:
        if self._capabilities is not None and not refresh:
            return self._capabilities
        try:
            body = self._call("capabilities", "GET", self.settings.presigned_path, control=control)
        except NotFoundError:  # the seed's backend has no GET handler (404 or 405)
            self._capabilities = seed_capabilities(self.settings)
            return self._capabilities
        except RejectedError as exc:
            if exc.status not in (404, 405):
                raise
            self._capabilities = seed_capabilities(self.settings)
            return self._capabilities
        self._capabilities = self._parse_capabilities(body)
        return self._capabilities

    def _parse_capabilities(self, body: dict[str, Any]) -> Capabilities:
        def number(name: str, default: int) -> int:
            value = body.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

        actions = body.get("actions")
        offered = frozenset(a for a in actions if isinstance(a, str)) if isinstance(actions, list) else SEED_ACTIONS
        chunked = body.get("chunkedUpload")
        legacy = body.get("legacyUpload")
        limits = DEFAULT_LIMITS.narrowed(
            min_part_size=number("minPartSize", DEFAULT_LIMITS.min_part_size),
            max_part_size=number("maxPartSize", DEFAULT_LIMITS.max_part_size),
            max_parts=number("maxParts", DEFAULT_LIMITS.max_parts),
            max_object_size=number("maxFileSize", DEFAULT_LIMITS.max_object_size),
        )
        return Capabilities(
            actions=offered | SEED_ACTIONS,
            limits=limits,
            url_expiry_seconds=number("urlExpirySeconds", 3600),
            url_batch=bool(body.get("urlBatch")) and "sign" in offered,
            content_md5=bool(body.get("contentMd5")) and "sign" in offered,
            presigned=body.get("presignedUpload", True) is not False,
            chunked_path=str(chunked["path"]) if isinstance(chunked, dict) and "path" in chunked else None,
            max_chunk_bytes=int(chunked.get("maxChunkBytes", 4 * MiB)) if isinstance(chunked, dict) else 4 * MiB,
            legacy_path=str(legacy["path"]) if isinstance(legacy, dict) and "path" in legacy else None,
            legacy_max_bytes=int(legacy.get("maxBytes", 0)) if isinstance(legacy, dict) else 0,
            advertised=True,
            checksums=tuple(
                str(name) for name in (body.get("checksums") or []) if "sign" in offered and isinstance(name, str)
            ),
        )

    # -- presigned multipart ------------------------------------------------------------------------------

    def _signed(self, urls: Iterable[tuple[int, Any]], action: str, received_at: float) -> dict[int, SignedUrl]:
        fallback = float(self.capabilities().url_expiry_seconds)
        signed = {}
        for number, url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ProtocolError(f"The upload server's answer to '{action}' contains an invalid upload link.")
            signed[number] = SignedUrl(url, received_at + url_lifetime(url, fallback))
        return signed

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
        answer = self._call(
            "start",
            "POST",
            self.settings.presigned_path,
            json=body,
            control=control,
            on_retry=lambda *_: retried.append(True),
        )
        received = self.clock()
        urls = _field(answer, "presignedUrls", list, "start")
        started = StartedUpload(
            upload_id=_field(answer, "uploadId", str, "start"),
            s3_key=_field(answer, "s3Key", str, "start"),
            unique_file_name=str(answer.get("uniqueFileName") or ""),
            comfyui_path=str(answer.get("comfyUIPath") or ""),
            urls=self._signed(enumerate(urls, start=1), "start", received),
            attempts=1 + len(retried),
            # Only what the server confirms: one that ignored the wish created an upload without it.
            checksum=checksum if checksum and answer.get("checksumAlgorithm") == checksum else "",
        )
        if not url_batch and len(started.urls) < total_parts:
            raise ProtocolError("The upload server returned fewer upload links than parts.")
        return started

    def abort_lost_starts(
        self, safe_name: str, since: float, until: float, keep: set[str], *, chunked: bool = False
    ) -> int:
        """Abort unfinished uploads of ``safe_name`` the server created between ``since`` and ``until``
        (wall-clock seconds on this computer), except those in ``keep``: what start calls whose answers were
        lost left behind. Returns how many were aborted; raises if the server can't be asked right now.

        The server's clock is read from the ``Date`` of its answer, so a computer whose clock is off does
        not look in the wrong place.
        """
        if not self.capabilities().offers("list"):
            log.warning("This server can't list uploads, so one left by a lost start of %s can't be found", safe_name)
            return 0

        def parse(response: requests.Response) -> tuple[dict[str, Any], float]:
            return json_object(response, "list"), _clock_offset(response)

        answer, offset = self._call("list", "POST", self.settings.presigned_path, json={"action": "list"}, parse=parse)
        aborted = 0
        for item in _field(answer, "uploads", list, "list"):
            upload_id = item.get("uploadId") if isinstance(item, dict) else None
            key = item.get("s3Key") if isinstance(item, dict) else None
            if not isinstance(upload_id, str) or not isinstance(key, str) or upload_id in keep:
                continue
            created = _created_at(key, safe_name)
            if created is None or not since - CLOCK_SLACK <= created - offset <= until + CLOCK_SLACK:
                continue
            log.info("Aborting %s, left by a start whose answer was lost", key)
            try:
                if chunked:
                    self.chunked_abort(upload_id, key)
                else:
                    self.abort(upload_id, key)
            except NotFoundError:
                continue
            aborted += 1
        return aborted

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
        answer = self._call("sign", "POST", self.settings.presigned_path, json=body, control=control)
        received = self.clock()
        urls = _field(answer, "presignedUrls", dict, "sign")
        try:
            pairs = [(int(n), url) for n, url in urls.items()]
        except ValueError as exc:
            raise ProtocolError("The upload server's answer to 'sign' has invalid part numbers.") from exc
        signed = self._signed(pairs, "sign", received)
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
            raise AlreadyStoredError(self._completion(answer, "status"))
        parts = []
        for item in _field(answer, "parts", list, "status"):
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
            )
        except NotFoundError as exc:
            if retried:
                raise NotFoundError(
                    "The server lost its answer while finishing the upload, and now no longer knows it: the file "
                    "was most likely stored. Check the destination before uploading it again."
                ) from exc
            raise
        return self._completion(answer, "complete")

    @staticmethod
    def _completion(answer: dict[str, Any], action: str) -> Completion:
        if answer.get("success") is not True:
            raise ProtocolError(f"The upload server did not confirm '{action}'.")
        size = answer.get("size")
        return Completion(
            unique_file_name=str(answer.get("uniqueFileName") or ""),
            comfyui_path=answer.get("comfyUIPath") if isinstance(answer.get("comfyUIPath"), str) else None,
            network_volume_path=(
                answer.get("networkVolumePath") if isinstance(answer.get("networkVolumePath"), str) else None
            ),
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            etag=str(answer.get("etag") or ""),
        )

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
        answer = self._call("list", "POST", self.settings.presigned_path, json={"action": "list"}, control=control)
        uploads = []
        for item in _field(answer, "uploads", list, "list"):
            if isinstance(item, dict) and isinstance(item.get("uploadId"), str) and isinstance(item.get("s3Key"), str):
                unique, initiated = str(item.get("uniqueFileName") or ""), str(item.get("initiated") or "")
                uploads.append(RemoteUpload(item["uploadId"], item["s3Key"], unique, initiated))
        return uploads

    # -- chunked through the API ------------------------------------------------------------------------

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
            upload_id=_field(answer, "uploadId", str, "chunked start"),
            s3_key=_field(answer, "s3Key", str, "chunked start"),
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
        on_retry: Callable[[int, UploaderError], None] | None = None,
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
        received: int = _field(answer, "received", int, "chunked status")
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
        return self._completion(answer, "complete")

    def chunked_abort(self, upload_id: str, s3_key: str, *, control: Control | None = None) -> None:
        self._call(
            "chunked abort",
            "POST",
            self._chunked_path(),
            control=control,
            json={"action": "abort", "uploadId": upload_id, "s3Key": s3_key},
        )

    # -- legacy single request -------------------------------------------------------------------------------

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
        return self._completion(answer, "upload")


CLOCK_SLACK = 3.0  # seconds: the Date header's resolution, and the time between a request and its stamp


def _clock_offset(response: requests.Response) -> float:
    """How far the server's clock is ahead of ours, from its ``Date`` header (0 without one)."""
    try:
        moment = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return 0.0
    return moment.timestamp() - time.time()


def _created_at(s3_key: str, safe_name: str) -> float | None:
    """When the server created the upload at ``loras/{user}/{user}_{millis}_{name}`` (server clock, seconds),
    if its name is ``safe_name``. The user id may itself contain ``_``; the folder says where it ends."""
    folder, _, unique = s3_key.rpartition("/")
    user = folder.rsplit("/", 1)[-1]
    if not user or not unique.startswith(user + "_"):
        return None
    millis, _, name = unique[len(user) + 1 :].partition("_")
    return int(millis) / 1000 if millis.isdigit() and name == safe_name else None
