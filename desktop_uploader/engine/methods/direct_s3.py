"""``direct-s3``: the user's own S3 endpoint and keys, through boto3, with our planning, retry and resume.

boto3 does the signing; everything else is ours: the same part plan, the same scheduler and
retry policy (boto3's own retries are off, so attempts are counted once), the same progress and
resume store. Each part carries its Content-MD5 so storage verifies its bytes, which also lets
boto3 skip hashing every payload with SHA-256 (``payload_signing_enabled=False``), the main CPU
cost of ``upload_file`` over plain HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from functools import partial
from typing import Any

from desktop_uploader.engine.errors import (
    AuthError,
    Interrupted,
    NetworkError,
    NotFoundError,
    StalledError,
    UploaderError,
)
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.filenames import safe_basename
from desktop_uploader.engine.http import error_for_s3, host_of
from desktop_uploader.engine.limits import DEFAULT_LIMITS
from desktop_uploader.engine.methods.base import DIRECT, Completion, JobContext
from desktop_uploader.engine.methods.multipart import PartQueue, PartScheduler, plain_etag
from desktop_uploader.engine.partbody import PartBody, md5_of_span
from desktop_uploader.engine.planner import PartPlan, PartSpan, plan_parts
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirectTarget:
    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str
    prefix: str = "loras"

    @property
    def server_id(self) -> str:
        return f"s3:{self.endpoint or 'aws'}/{self.bucket}"


def translate(exc: Exception, endpoint: str, read_timeout: float) -> UploaderError:
    # boto3 is imported only when a direct upload runs: it costs every CLI command 0.2 s and 24 MiB.
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    host = host_of(endpoint) if endpoint else "AWS S3"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        retry_after = float(headers["retry-after"]) if str(headers.get("retry-after", "")).isdigit() else None
        return error_for_s3(
            status, str(error.get("Code", "")), str(error.get("Message", "")), host, retry_after, own_credentials=True
        )
    if isinstance(exc, NoCredentialsError):
        return AuthError("No S3 access key and secret are set for direct uploads. Add them in Settings.")
    if isinstance(exc, ReadTimeoutError):
        return StalledError(f"The connection to {host} stalled: nothing moved for {read_timeout:g} s.")
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return NetworkError(f"Could not connect to {host}.")
    return NetworkError(f"The connection to {host} failed ({type(exc).__name__}).")


class _S3:
    """A boto3 client with every failure translated to the engine's errors."""

    def __init__(self, target: DirectTarget, connect_timeout: float, read_timeout: float) -> None:
        self.target = target
        self.read_timeout = read_timeout
        import boto3
        from botocore.config import Config

        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=target.endpoint or None,
            region_name=target.region,
            aws_access_key_id=target.access_key or None,
            aws_secret_access_key=target.secret_key or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path", "payload_signing_enabled": False},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"total_max_attempts": 1},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=64,
            ),
        )

    def __call__(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.target.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            ours = _our_error_inside(exc)
            if ours is not None:  # a pause, or the file changing, raised inside the part body
                raise ours from None
            raise translate(exc, self.target.endpoint, self.read_timeout) from exc


def _our_error_inside(exc: BaseException) -> BaseException | None:
    """botocore wraps whatever the request body raised in HTTPClientError; find ours again."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Interrupted | UploaderError):
            return current
        wrapped = getattr(current, "kwargs", {}).get("error") if hasattr(current, "kwargs") else None
        pending += [wrapped if isinstance(wrapped, BaseException) else None, current.__cause__, current.__context__]
    return None


class DirectS3Sender:
    hashes_body = False

    def __init__(self, ctx: JobContext, s3: _S3, key: str, upload_id: str) -> None:
        self.ctx = ctx
        self.s3 = s3
        self.key = key
        self.upload_id = upload_id
        self._md5s: dict[int, str] = {}
        self._lock = threading.Lock()

    def forget(self, number: int) -> None:
        with self._lock:
            self._md5s.pop(number, None)

    def part_checksum(self, number: int) -> str:
        return ""  # boto3 sends what it checksums itself; nothing to list when completing

    def send(self, span: PartSpan, body: PartBody) -> str:
        with self._lock:
            md5 = self._md5s.get(span.number)
        if md5 is None:
            md5 = md5_of_span(self.ctx.path, span.offset, span.size, self.ctx.control)
            with self._lock:
                self._md5s[span.number] = md5
        answer = self.s3(
            "upload_part",
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=span.number,
            Body=body,
            ContentLength=span.size,
            ContentMD5=md5,
        )
        return str(answer["ETag"])


class DirectS3Method:
    name = DIRECT

    def __init__(self, target: DirectTarget) -> None:
        self.target = target

    def _client(self, ctx: JobContext) -> _S3:
        return _S3(self.target, ctx.settings.connect_timeout, ctx.settings.read_timeout)

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        if record.upload_id and record.s3_key:
            with contextlib.suppress(NotFoundError):
                self._client(ctx)("abort_multipart_upload", Key=record.s3_key, UploadId=record.upload_id)

    def run(self, ctx: JobContext) -> Completion:
        s3 = self._client(ctx)
        record = ctx.record if ctx.record is not None and ctx.record.method == DIRECT else None
        done: dict[int, SavedPart] = {}
        if record is not None and record.upload_id and record.s3_key:
            ensure_unchanged(ctx.path, record.identity)
            plan = PartPlan(ctx.size, record.part_size, record.part_count)
            try:
                done = self._stored_parts(s3, record, plan, ctx.state.parts(ctx.job_id))
            except NotFoundError:
                ctx.notice("The interrupted upload is no longer in storage; starting it again from the beginning.")
                record = None
        if record is None:
            plan = plan_parts(ctx.size, ctx.settings.chunk_size, DEFAULT_LIMITS)
            record = self._start(ctx, s3, plan)
        assert record.upload_id and record.s3_key
        tracker = ProgressTracker(ctx.job_id, DIRECT, ctx.size, ctx.emit, parts_total=plan.part_count)
        resumed_bytes = sum(p.size for p in done.values())
        ctx.announce(DIRECT, plan, resumed_bytes)
        tracker.baseline(resumed_bytes, len(done))
        queue = PartQueue([n for n in range(1, plan.part_count + 1) if n not in done])
        sender = DirectS3Sender(ctx, s3, record.s3_key, record.upload_id)
        parts = PartScheduler(ctx, plan, sender, queue, tracker, DIRECT, done).run()
        ensure_unchanged(ctx.path, ctx.identity)
        ctx.completing()
        ordered = [{"PartNumber": n, "ETag": parts[n].etag} for n in sorted(parts)]
        answer = s3(
            "complete_multipart_upload",
            Key=record.s3_key,
            UploadId=record.upload_id,
            MultipartUpload={"Parts": ordered},
        )
        size = int(s3("head_object", Key=record.s3_key)["ContentLength"])
        if size != ctx.size:
            raise NotFoundError(f"Storage reports {size} bytes for {ctx.name}, not {ctx.size}.")
        return Completion(
            s3_key=record.s3_key,
            unique_file_name=record.unique_file_name or "",
            comfyui_path=None,
            network_volume_path=f"s3://{self.target.bucket}/{record.s3_key}",
            etag=str(answer.get("ETag", "")),
            size=ctx.size,
            bytes_sent=tracker.bytes_sent,
        )

    def _start(self, ctx: JobContext, s3: _S3, plan: PartPlan) -> UploadRecord:
        unique = f"{int(time.time() * 1000)}_{safe_basename(ctx.name) or 'upload.bin'}"
        key = f"{self.target.prefix.strip('/')}/{unique}" if self.target.prefix.strip("/") else unique
        metadata = {"display-name": urllib.parse.quote(ctx.display_name[:300], safe="")}
        upload_id = str(
            s3("create_multipart_upload", Key=key, ContentType="application/octet-stream", Metadata=metadata)[
                "UploadId"
            ]
        )
        record = ctx.new_record(
            DIRECT,
            server=self.target.server_id,
            upload_id=upload_id,
            s3_key=key,
            unique_file_name=unique,
            part_size=plan.part_size,
            part_count=plan.part_count,
        )
        ctx.save(partial(ctx.state.create, record))
        return record

    @staticmethod
    def _stored_parts(
        s3: _S3, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]
    ) -> dict[int, SavedPart]:
        done: dict[int, SavedPart] = {}
        marker = 0
        while True:
            page = s3(
                "list_parts", Key=record.s3_key, UploadId=record.upload_id, PartNumberMarker=marker, MaxParts=1000
            )
            for part in page.get("Parts", []):
                number, etag, size = int(part["PartNumber"]), str(part["ETag"]), int(part["Size"])
                mine = saved.get(number)
                if (
                    1 <= number <= plan.part_count
                    and size == plan.span(number).size
                    and mine is not None
                    and plain_etag(mine.etag) == plain_etag(etag)
                ):
                    done[number] = SavedPart(number, etag, size)
            next_marker = int(page.get("NextPartNumberMarker") or 0)
            if not page.get("IsTruncated") or next_marker <= marker:
                return done
            marker = next_marker
