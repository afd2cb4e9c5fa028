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

from desktop_uploader.engine.errors import IntegrityError, NotFoundError, ServerBusyError, TransientError, UploaderError
from desktop_uploader.engine.events import Retrying
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.filenames import safe_basename
from desktop_uploader.engine.limits import DEFAULT_LIMITS
from desktop_uploader.engine.methods import lost_starts
from desktop_uploader.engine.methods.base import DIRECT, Completion, JobContext
from desktop_uploader.engine.methods.direct_recovery import abort_leftovers, after_create, stored_object
from desktop_uploader.engine.methods.lifecycle import run_multipart
from desktop_uploader.engine.methods.multipart import PartQueue, multipart_etag, plain_etag
from desktop_uploader.engine.methods.s3_client import DirectTarget, S3Client, UploadGoneError, bucket_missing
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
        return run_multipart(ctx, DirectS3Backend(self, ctx, self._client(ctx)))


class DirectS3Backend:
    """The user's own S3's side of the multipart lifecycle (see :mod:`lifecycle`), for one run."""

    method = DIRECT
    where = "in storage"
    completes_again = False  # storage forgets a completed upload: HeadObject says whether it became the object

    def __init__(self, owner: DirectS3Method, ctx: JobContext, s3: S3Client) -> None:
        self.owner = owner
        self.target = owner.target
        self.ctx = ctx
        self.s3 = s3

    def abort(self, record: UploadRecord) -> None:
        self.owner.abort(self.ctx, record)

    def adopt(self) -> UploadRecord | None:
        return None  # every direct-s3 key names its own start, so a lost store leaves nothing to take over

    def stored(self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]) -> Completion | None:
        return stored_object(self.ctx, self.s3, record, saved, 0)

    def sender(self, record: UploadRecord, plan: PartPlan, queue: PartQueue) -> DirectS3Sender:
        assert record.upload_id and record.s3_key
        return DirectS3Sender(self.ctx, self.s3, record.s3_key, record.upload_id)

    def create(self, lost: UploadRecord | None) -> tuple[PartPlan, UploadRecord]:
        ctx, s3 = self.ctx, self.s3
        try:  # a mistyped bucket was made by a store that makes one on the first upload (a direct-s3 audit)
            missing = bucket_missing(s3)
        except TransientError:
            missing = False  # the create below retries what may work next time, and says why if it can't
        if missing:
            where = f"{self.target.bucket} at {self.target.place}"
            raise NotFoundError(f"There is no bucket {where}. Check the bucket name in Settings.")
        plan = plan_parts(ctx.size, ctx.follow_link(self.target.server_id), DEFAULT_LIMITS)
        unique = f"{int(time.time() * 1000)}_{safe_basename(ctx.name) or 'upload.bin'}"
        key = self.target.key_for(unique)
        metadata = {"display-name": urllib.parse.quote(ctx.display_name[:300], safe="")}
        fields = {"server": self.target.server_id, "s3_key": key, "unique_file_name": unique}
        shape = {"part_size": plan.part_size, "part_count": plan.part_count}
        intent = lost_starts.intent(ctx, DIRECT, **fields, **shape)
        try:
            answer, attempts = s3.counted(
                "create_multipart_upload",
                ctx.control,
                Key=key,
                ContentType="application/octet-stream",
                Metadata=metadata,
            )
        except UploaderError as exc:
            # A wrong secret or a wrong port kept the intent, and with it a "resumable" upload with nothing
            # stored, which came back as Interrupted after a restart (a direct-s3 audit).
            lost_starts.withdraw(ctx, intent, exc)
            raise
        upload_id = str(answer["UploadId"])
        after_create(ctx, s3, intent, upload_id, attempts, lost)
        record = ctx.new_record(DIRECT, upload_id=upload_id, **fields, **shape)
        ctx.save(partial(ctx.state.create, record))
        return plan, record

    def complete(self, record: UploadRecord, parts: dict[int, SavedPart], tracker: ProgressTracker) -> Completion:
        """Complete the upload; when the answer is lost, storage is asked whether the object is there."""
        ctx, s3 = self.ctx, self.s3
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

    def confirmed_parts(
        self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]
    ) -> dict[int, SavedPart]:
        """The parts storage lists with the ETags we saved for them (raises NotFoundError if the upload is gone)."""
        s3, control = self.s3, self.ctx.control
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
