"""``chunked-s3``: bytes go through the API in small sequential chunks, resumable by offset.

The fallback for networks or stores where presigned URLs fail. The server assembles chunks into
legal S3 parts; the client only keeps track of one number, the offset the server acknowledged,
and a 409 tells it where the server really is (after a lost answer, or a crash between a chunk and
its record).
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

from desktop_uploader.engine.api_client import OffsetMismatchError
from desktop_uploader.engine.errors import (
    IntegrityError,
    NotFoundError,
    ProtocolError,
    UnsupportedError,
    UploaderError,
)
from desktop_uploader.engine.events import Retrying
from desktop_uploader.engine.fileid import ensure_unchanged, shrank, unreadable
from desktop_uploader.engine.methods import lost_starts
from desktop_uploader.engine.methods.base import CHUNKED, Completion, JobContext
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.state import UploadRecord

log = logging.getLogger(__name__)
MAX_OFFSET_CORRECTIONS = 20


class ChunkedMethod:
    name = CHUNKED

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        if ctx.api is None:  # never read as "nothing to abort": the ledger keeps it owed
            raise UnsupportedError("Not connected to the server that holds this upload.")
        if not record.upload_id:  # an intent: its start never answered
            lost_starts.abort_leftovers(ctx, record, chunked=True)
        elif record.s3_key:
            with contextlib.suppress(NotFoundError):  # already gone: that is what we wanted
                ctx.api.chunked_abort(record.upload_id, record.s3_key)

    def _resume(self, ctx: JobContext, record: UploadRecord) -> int | None:
        assert ctx.api is not None and record.upload_id and record.s3_key
        ensure_unchanged(ctx.path, record.identity)
        try:
            offset = ctx.api.chunked_status(record.upload_id, record.s3_key, control=ctx.control)
        except NotFoundError:
            ctx.notice("The interrupted upload is no longer on the server; starting it again from the beginning.")
            ctx.state.delete(ctx.job_id)
            return None
        ctx.save(partial(ctx.state.update, ctx.job_id, status="active", message=""))  # a kill now: "interrupted"
        return offset

    def run(self, ctx: JobContext) -> Completion:
        api = ctx.api
        assert api is not None, "chunked uploads need the API"
        record = ctx.record if ctx.record is not None and ctx.record.method == CHUNKED else None
        lost = None
        if record is not None and not record.upload_id:  # its start never answered: clear up after it first
            self.abort(ctx, record)
            lost, record = record, None
        offset = self._resume(ctx, record) if record is not None else None
        if record is None or offset is None:
            intent = lost_starts.intent(ctx, CHUNKED)
            try:
                started = api.chunked_start(ctx.name, ctx.size, display_name=ctx.display_name, control=ctx.control)
            except UnsupportedError:
                # No such route here: nothing was created, so the intent stands for nothing.
                with contextlib.suppress(UploaderError):
                    ctx.state.delete(intent.id)
                raise
            lost_starts.after_start(ctx, intent, started.upload_id, started.attempts, lost=lost, chunked=True)
            chunk = min(started.max_chunk_bytes, api.capabilities().max_chunk_bytes)
            record = ctx.new_record(
                CHUNKED,
                upload_id=started.upload_id,
                s3_key=started.s3_key,
                unique_file_name=started.unique_file_name,
                comfyui_path=started.comfyui_path,
                part_size=chunk,
                part_count=max(1, -(-ctx.size // chunk)),
            )
            ctx.save(partial(ctx.state.create, record))
            offset = 0
        assert record.upload_id and record.s3_key
        chunk = record.part_size
        plan = PartPlan(ctx.size, chunk, record.part_count)
        tracker = ProgressTracker(ctx.job_id, CHUNKED, ctx.size, ctx.emit, parts_total=record.part_count)
        ctx.announce(CHUNKED, plan, offset)
        tracker.baseline(offset, offset // chunk if chunk else 0)
        offset = self._send(ctx, record, offset, chunk, tracker)
        ensure_unchanged(ctx.path, ctx.identity)
        ctx.completing()
        completion = api.chunked_complete(record.upload_id, record.s3_key, control=ctx.control)
        if completion.size is not None and completion.size != ctx.size:
            raise IntegrityError(f"The server stored {completion.size} bytes of {ctx.name}, not {ctx.size}.")
        return Completion(
            s3_key=record.s3_key,
            unique_file_name=completion.unique_file_name or record.unique_file_name or "",
            comfyui_path=completion.comfyui_path or record.comfyui_path,
            network_volume_path=completion.network_volume_path,
            etag=completion.etag,
            size=ctx.size,
            bytes_sent=tracker.bytes_sent,
        )

    def _send(self, ctx: JobContext, record: UploadRecord, offset: int, chunk: int, tracker: ProgressTracker) -> int:
        assert ctx.api is not None and record.upload_id and record.s3_key
        corrections = 0
        try:
            handle = open(ctx.path, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise unreadable(ctx.path, exc) from exc
        try:
            while offset < ctx.size:
                ctx.control.check()
                length = min(chunk, ctx.size - offset)
                handle.seek(offset)
                data = handle.read(length)
                if len(data) != length:
                    raise shrank(ctx.name)
                if ctx.limiter is not None:
                    ctx.limiter.throttle(length, ctx.control.sleep)

                def retried(attempt: int, error: UploaderError, delay: float, at: int = offset) -> None:
                    ctx.emit(
                        Retrying(
                            ctx.job_id, CHUNKED, at // chunk + 1, attempt, ctx.settings.retries, delay, error.message
                        )
                    )

                try:
                    received = ctx.api.send_chunk(
                        record.upload_id, record.s3_key, offset, data, control=ctx.control, on_retry=retried
                    )
                except OffsetMismatchError as mismatch:
                    corrections += 1
                    if not 0 <= mismatch.expected <= ctx.size or corrections > MAX_OFFSET_CORRECTIONS:
                        raise ProtocolError("The server keeps asking for chunks at impossible offsets.") from None
                    log.info("%s: server expects offset %d, not %d", ctx.name, mismatch.expected, offset)
                    offset = mismatch.expected
                    tracker.advance_to(offset)
                    continue
                except OSError as exc:
                    raise unreadable(ctx.path, exc) from exc
                if not offset < received <= ctx.size:
                    raise ProtocolError(f"The server acknowledged an impossible offset ({received}).")
                offset = received
                ctx.save(partial(ctx.state.update, ctx.job_id, chunk_offset=offset))
                tracker.advance_to(offset)
        finally:
            handle.close()
        return offset
