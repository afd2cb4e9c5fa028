"""``direct-s3``: the user's own S3 endpoint and keys, through boto3, with our planning, retry and resume.

boto3 does the signing; everything else is ours: the same part plan, the same scheduler and
retry policy (boto3's own retries are off, so attempts are counted once; see :mod:`s3_client`), the
same progress and resume store. Each part carries its Content-MD5 so storage verifies its bytes,
which also lets boto3 skip hashing every payload with SHA-256 (``payload_signing_enabled=False``),
the main CPU cost of ``upload_file`` over plain HTTP.

The safeguards of the presigned path, with storage asked directly (see :mod:`direct_recovery`): an
intent record names the key before CreateMultipartUpload, so uploads whose create answer was lost are
found and aborted; and before anything is sent again after a lost CompleteMultipartUpload answer,
storage is asked whether it holds the object already.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from functools import partial

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import IntegrityError, NotFoundError, ServerBusyError, TransientError, UploaderError
from desktop_uploader.engine.events import Retrying
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.filenames import safe_basename
from desktop_uploader.engine.limits import DEFAULT_LIMITS
from desktop_uploader.engine.methods import lost_starts
from desktop_uploader.engine.methods.base import DIRECT, Completion, JobContext
from desktop_uploader.engine.methods.direct_recovery import abort_leftovers, after_create, stored_object
from desktop_uploader.engine.methods.multipart import PartQueue, PartScheduler, multipart_etag, plain_etag
from desktop_uploader.engine.methods.s3_client import DirectTarget, S3Client, UploadGoneError
from desktop_uploader.engine.partbody import PartBody, md5_of_span
from desktop_uploader.engine.planner import PartPlan, PartSpan, plan_parts
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.state import SavedPart, UploadRecord

__all__ = ["DirectS3Method", "DirectS3Sender", "DirectTarget"]

log = logging.getLogger(__name__)


class DirectS3Sender:
    hashes_body = False

    def __init__(self, ctx: JobContext, s3: S3Client, key: str, upload_id: str) -> None:
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
        answer = self.s3.once(
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

    def _client(self, ctx: JobContext) -> S3Client:
        """A client whose control-plane calls retry under the job's policy and share one quota with its parts."""

        def retrying(attempt: int, error: UploaderError, delay: float) -> None:
            busy = isinstance(error, ServerBusyError) and error.status in (429, 503)
            ctx.emit(Retrying(ctx.job_id, DIRECT, 0, attempt, policy.attempts, delay, error.message, busy))

        policy = ctx.policy()
        settings = ctx.settings
        return S3Client(self.target, settings.connect_timeout, settings.read_timeout, policy, ctx.quota(), retrying)

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        s3 = self._client(ctx)
        if not record.upload_id and record.s3_key:  # an intent: its create never answered
            abort_leftovers(ctx, s3, record.s3_key)
        elif record.upload_id and record.s3_key:
            with contextlib.suppress(NotFoundError):  # already gone: that is what we wanted
                s3.call("abort_multipart_upload", None, Key=record.s3_key, UploadId=record.upload_id)

    def run(self, ctx: JobContext) -> Completion:
        s3 = self._client(ctx)
        record = ctx.record if ctx.record is not None and ctx.record.method == DIRECT else None
        lost = None
        if record is not None and not record.upload_id:  # its create never answered: clear up after it first
            self.abort(ctx, record)
            lost, record = record, None
        done: dict[int, SavedPart] = {}
        if record is not None:
            resumed = self._resume(ctx, s3, record)
            if isinstance(resumed, Completion):
                return resumed
            if resumed is None:
                record = None
            else:
                plan, done = resumed
        if record is None:
            plan = plan_parts(ctx.size, ctx.settings.chunk_size, DEFAULT_LIMITS)
            record = self._start(ctx, s3, plan, lost)
        assert record.upload_id and record.s3_key
        tracker = ProgressTracker(ctx.job_id, DIRECT, ctx.size, ctx.emit, parts_total=plan.part_count)
        resumed_bytes = sum(p.size for p in done.values())
        ctx.announce(DIRECT, plan, resumed_bytes)
        tracker.baseline(resumed_bytes, len(done))
        queue = PartQueue([n for n in range(1, plan.part_count + 1) if n not in done])
        sender = DirectS3Sender(ctx, s3, record.s3_key, record.upload_id)
        parts = PartScheduler(ctx, plan, sender, queue, tracker, DIRECT, done, s3.quota).run()
        return self._complete(ctx, s3, record, parts, tracker)

    def _resume(
        self, ctx: JobContext, s3: S3Client, record: UploadRecord
    ) -> tuple[PartPlan, dict[int, SavedPart]] | Completion | None:
        """Plan and confirmed parts of an interrupted upload; a Completion if storage holds it; None to start afresh.

        Every part confirmed means the run before got as far as completing, and its answer may have
        been lost: storage is asked for the object before anything else.
        """
        assert record.upload_id and record.s3_key
        ensure_unchanged(ctx.path, record.identity)
        plan = PartPlan(ctx.size, record.part_size, record.part_count)
        saved = ctx.state.parts(ctx.job_id)
        if len(saved) == plan.part_count:
            found = stored_object(ctx, s3, record, saved, 0)
            if found is not None:
                return found
        try:
            return plan, self._stored_parts(s3, ctx.control, record, plan, saved)
        except NotFoundError:
            found = stored_object(ctx, s3, record, saved, 0) if len(saved) < plan.part_count else None
            if found is not None:
                return found
            ctx.notice("The interrupted upload is no longer in storage; starting it again from the beginning.")
            return None

    def _start(self, ctx: JobContext, s3: S3Client, plan: PartPlan, lost: UploadRecord | None) -> UploadRecord:
        unique = f"{int(time.time() * 1000)}_{safe_basename(ctx.name) or 'upload.bin'}"
        key = f"{self.target.prefix.strip('/')}/{unique}" if self.target.prefix.strip("/") else unique
        metadata = {"display-name": urllib.parse.quote(ctx.display_name[:300], safe="")}
        fields = {"server": self.target.server_id, "s3_key": key, "unique_file_name": unique}
        shape = {"part_size": plan.part_size, "part_count": plan.part_count}
        intent = lost_starts.intent(ctx, DIRECT, **fields, **shape)
        answer, attempts = s3.counted(
            "create_multipart_upload",
            ctx.control,
            Key=key,
            ContentType="application/octet-stream",
            Metadata=metadata,
        )
        upload_id = str(answer["UploadId"])
        after_create(ctx, s3, intent, upload_id, attempts, lost)
        record = ctx.new_record(DIRECT, upload_id=upload_id, **fields, **shape)
        ctx.save(partial(ctx.state.create, record))
        return record

    def _complete(
        self, ctx: JobContext, s3: S3Client, record: UploadRecord, parts: dict[int, SavedPart], tracker: ProgressTracker
    ) -> Completion:
        """Complete the upload; when the answer is lost, storage is asked whether the object is there."""
        assert record.upload_id and record.s3_key
        ensure_unchanged(ctx.path, ctx.identity)
        ctx.completing()
        ordered = [parts[n] for n in sorted(parts)]
        try:
            answer = s3.call(
                "complete_multipart_upload",
                ctx.control,
                Key=record.s3_key,
                UploadId=record.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in ordered]},
            )
        except UploadGoneError as gone:  # completed by an attempt whose answer was lost, or aborted elsewhere
            found = stored_object(ctx, s3, record, parts, tracker.bytes_sent)
            if found is None:
                raise NotFoundError(
                    "The upload vanished from storage before it was finished; upload the file again."
                ) from gone
            return found
        except TransientError:  # out of retries; the last attempt may still have completed it
            with contextlib.suppress(UploaderError):
                found = stored_object(ctx, s3, record, parts, tracker.bytes_sent)
                if found is not None:
                    return found
            raise
        size = int(s3.call("head_object", ctx.control, Key=record.s3_key)["ContentLength"])
        if size != ctx.size:
            raise IntegrityError(f"Storage reports {size} bytes for {ctx.name}, not {ctx.size}.")
        expected, got = multipart_etag(ordered), plain_etag(str(answer.get("ETag", "")))
        if expected and "-" in got and got != expected:
            raise IntegrityError(f"Storage assembled {ctx.name} differently from the parts that were sent.")
        return Completion(
            s3_key=record.s3_key,
            unique_file_name=record.unique_file_name or "",
            comfyui_path=None,
            network_volume_path=f"s3://{self.target.bucket}/{record.s3_key}",
            etag=str(answer.get("ETag", "")),
            size=ctx.size,
            bytes_sent=tracker.bytes_sent,
        )

    @staticmethod
    def _stored_parts(
        s3: S3Client, control: Control, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]
    ) -> dict[int, SavedPart]:
        done: dict[int, SavedPart] = {}
        marker = 0
        while True:
            page = s3.call(
                "list_parts",
                control,
                Key=record.s3_key,
                UploadId=record.upload_id,
                PartNumberMarker=marker,
                MaxParts=1000,
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
