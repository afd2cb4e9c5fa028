"""What ``direct-s3`` does when an answer from storage was lost: find what storage did, never upload twice.

Two answers matter. A lost answer to CreateMultipartUpload leaves an upload nobody knows the id of,
costing storage until aborted; a lost answer to CompleteMultipartUpload leaves the object stored
while the app thinks it failed, and starting again would store it a second time under a new key.

Unlike the API's start, direct-s3 chooses the object's key itself before creating the upload, so the
intent written first (see :mod:`lost_starts`) names the key, which is unique to that start (a
millisecond stamp and the file name): every multipart upload for that key that no record of ours
holds is a leftover, found by ListMultipartUploads, whenever it was initiated. No time window is
needed, so the store's clock can't make us miss one.

For a lost complete, HeadObject on the key says whether the object is there; it is ours when its
size is the file's and its ETag is the multipart ETag of our parts (from the saved parts' ETags,
or, when not every part was saved, from the file's part MD5s).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable

from desktop_uploader.engine.errors import NotFoundError, RejectedError, UploaderError
from desktop_uploader.engine.methods import lost_starts
from desktop_uploader.engine.methods.base import Completion, JobContext
from desktop_uploader.engine.methods.multipart import multipart_etag, plain_etag
from desktop_uploader.engine.methods.s3_client import S3Client
from desktop_uploader.engine.partbody import md5_of_span
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)


def expected_etag(ctx: JobContext, plan: PartPlan, saved: dict[int, SavedPart]) -> str | None:
    """The multipart ETag our parts give: from the saved ETags if every part has one, else from the file."""
    if sorted(saved) == list(range(1, plan.part_count + 1)):
        known = multipart_etag(list(saved.values()))
        if known is not None:
            return known
    parts = []
    for number in range(1, plan.part_count + 1):
        span = plan.span(number)
        md5 = base64.b64decode(md5_of_span(ctx.path, span.offset, span.size, ctx.control)).hex()
        parts.append(SavedPart(number, md5, span.size))
    return multipart_etag(parts)


def stored_object(
    ctx: JobContext, s3: S3Client, record: UploadRecord, saved: dict[int, SavedPart], bytes_sent: int
) -> Completion | None:
    """The object our upload became, if storage holds it (its complete answered, or its answer was lost)."""
    assert record.s3_key
    try:
        head = s3.call("head_object", ctx.control, Key=record.s3_key)
    except NotFoundError:
        return None
    size, etag = int(head.get("ContentLength", -1)), plain_etag(str(head.get("ETag", "")))
    if size != ctx.size:
        log.info("%s: %s holds %d bytes, not %d; not this upload's object", ctx.name, record.s3_key, size, ctx.size)
        return None
    plan = PartPlan(ctx.size, record.part_size, record.part_count)
    expected = expected_etag(ctx, plan, saved)
    if expected is None or etag != expected:
        log.info("%s: %s has ETag %s, not %s; not this upload's object", ctx.name, record.s3_key, etag, expected)
        return None
    log.info("%s: %s is already stored (%d bytes, ETag %s); nothing to send", ctx.name, record.s3_key, size, etag)
    if not bytes_sent:
        ctx.notice("This file was already uploaded completely; nothing had to be sent again.")
    return Completion(
        s3_key=record.s3_key,
        unique_file_name=record.unique_file_name or "",
        comfyui_path=None,
        network_volume_path=f"s3://{s3.target.bucket}/{record.s3_key}",
        etag=str(head.get("ETag", "")),
        size=ctx.size,
        bytes_sent=bytes_sent,
    )


def abort_leftovers(ctx: JobContext, s3: S3Client, key: str, kept: str | None = None) -> int:
    """Abort every multipart upload for ``key`` that no record of ours holds; raises if storage can't be asked."""
    keep = {r.upload_id for r in ctx.state.unfinished() if r.upload_id}
    if kept:
        keep.add(kept)
    found: list[str] = []
    markers: dict[str, str] = {}
    while True:
        try:  # no control: this also runs while a cancel unwinds the job, when the control says "stop"
            page = s3.call("list_multipart_uploads", None, Prefix=key, **markers)
        except (NotFoundError, RejectedError):  # no bucket (any more): no upload can be left in it
            return 0
        found += [str(u["UploadId"]) for u in page.get("Uploads", []) if u.get("Key") == key]
        if not page.get("IsTruncated"):
            break
        markers = {"KeyMarker": str(page["NextKeyMarker"]), "UploadIdMarker": str(page["NextUploadIdMarker"])}
    aborted = 0
    for upload_id in found:
        if upload_id in keep:
            continue
        try:
            s3.call("abort_multipart_upload", None, Key=key, UploadId=upload_id)
        except NotFoundError:  # gone already: what we wanted
            continue
        aborted += 1
    if aborted:
        log.info("%s: aborted %d upload(s) left by a create whose answer was lost", ctx.name, aborted)
    return aborted


def after_create(
    ctx: JobContext, s3: S3Client, intent: UploadRecord, started: str, attempts: int, lost: UploadRecord | None
) -> None:
    """Once create has answered with ``started``, abort the uploads a retried or an earlier lost create left.

    A lost create of an earlier run was swept before this one, but storage may have handled it only
    after that sweep (requests run concurrently); by the time our own create has answered, it almost
    always has. Mirrors :func:`lost_starts.after_start`.
    """
    sweeps: list[tuple[UploadRecord, Callable[[], object]]] = []
    if attempts > 1 and intent.s3_key:
        sweeps.append((intent, lambda: abort_leftovers(ctx, s3, intent.s3_key or "", started)))
    if lost is not None and lost.s3_key and time.time() < lost.created_at + lost_starts.start_budget(ctx.settings):
        sweeps.append((lost, lambda: abort_leftovers(ctx, s3, lost.s3_key or "", started)))
    for record, sweep in sweeps:
        try:
            sweep()
        except UploaderError as exc:
            log.warning("%s: could not check for uploads left by a retried create: %s", ctx.name, exc.message)
            lost_starts.park(ctx, record)
