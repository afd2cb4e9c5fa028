"""Continue an upload the server holds for this file although no record here knows it.

When the resume store was lost, uploading the same file again would start from 0 and leave the old
multipart upload orphaned. Instead, before a presigned upload starts, the server's unfinished uploads
of the same file name (:func:`server_uploads.unknown_uploads`) are checked against the file: the parts
must fit one valid plan for its size, and every part's ETag must look like an MD5 (it is one for parts
stored without SSE-KMS or SSE-C), so that it can be compared with the MD5 of the same bytes here.
Parts that match are kept; parts that don't are sent again. The result is a resume record like the
one the lost store held, and the presigned method resumes from it exactly as from any other record
(:meth:`PresignedMethod._resume` and ``_reconcile``), so there is one resume path, not two.

An upload that can't be verified (no part at all, sizes that fit no valid plan, ETags that aren't MD5s,
not a single part matching the file) is not adopted: the file starts afresh and the old upload stays
on the server, where ``list`` and the window keep offering it for discard. It is not aborted here,
because a same-named upload whose bytes don't match is most likely another file (another version, in
another folder, or one uploading from another computer right now): only the person can say it is junk.

The checksum algorithm: S3 wants an upload created with one (``crc32c``) to get that checksum for
every part and in ``complete``, and neither ``list`` nor ``status`` (nor SeaweedFS's ListParts) says
which one an upload has. The adopted record takes the one this app would choose for a fresh upload
with the same settings and server, which is what the lost record most likely held; if storage
disagrees, it refuses the completion or a part (400), the upload fails permanently, and the manager
aborts it as it does any upload that can't go on, so nothing is left orphaned and a retry starts fresh.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

from desktop_uploader.engine import checksums
from desktop_uploader.engine.api_client import Capabilities, RemotePart
from desktop_uploader.engine.errors import NotFoundError, UploaderError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.filenames import safe_basename
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.methods.base import PRESIGNED, JobContext
from desktop_uploader.engine.methods.multipart import plain_etag
from desktop_uploader.engine.partbody import md5_of_span
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.server_uploads import ServerUpload, unknown_uploads
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
# One adoption at a time: two same-named files dropped together must not both take the same upload.
_adopting = threading.Lock()


def plan_of(parts: list[RemotePart], size: int, caps: Capabilities) -> PartPlan | None:
    """The one plan the stored parts fit, or None: equal parts of the largest stored size, the last one shorter."""
    if not parts or size <= 0:
        return None
    part_size = max(part.size for part in parts)
    if part_size <= 0:
        return None
    count = -(-size // part_size)
    limits = caps.limits
    if count > limits.max_parts or part_size > limits.max_part_size:
        return None
    if count > 1 and part_size < limits.min_part_size:
        return None
    plan = PartPlan(size, part_size, count)
    for part in parts:
        if not 1 <= part.number <= count or part.size != plan.span(part.number).size:
            return None
    return plan


def verified_parts(ctx: JobContext, plan: PartPlan, parts: list[RemotePart]) -> dict[int, SavedPart] | None:
    """The stored parts whose bytes are this file's; None if their ETags can't be compared (not MD5s)."""
    if any(not _MD5_HEX.match(plain_etag(part.etag)) for part in parts):
        return None
    kept: dict[int, SavedPart] = {}
    for part in parts:
        span = plan.span(part.number)
        local = base64.b64decode(md5_of_span(ctx.path, span.offset, span.size, ctx.control)).hex()
        if local == plain_etag(part.etag):
            kept[part.number] = SavedPart(part.number, part.etag, part.size)
    return kept


def adopt(ctx: JobContext, caps: Capabilities) -> UploadRecord | None:
    """A resume record for an unknown server-side upload of this file, saved in the store; None to start afresh.

    Only with a server that can ``list``, ``status`` and ``sign`` (the rest of the parts need new URLs).
    Trouble asking the server is not worth failing the upload for: it then simply starts afresh.
    """
    api = ctx.api
    if api is None or not all(caps.offers(action) for action in ("list", "status", "sign")):
        return None
    name = safe_basename(ctx.name)
    with _adopting:
        try:
            candidates = [u for u in unknown_uploads(api, ctx.state, control=ctx.control) if u.name == name]
        except UploaderError as exc:
            log.info("%s: the server's unfinished uploads could not be listed (%s)", ctx.name, exc.message)
            return None
        for upload in reversed(candidates):  # the newest first: the most likely to be this very file
            record = _try(ctx, caps, upload)
            if record is not None:
                return record
    return None


def _try(ctx: JobContext, caps: Capabilities, upload: ServerUpload) -> UploadRecord | None:
    api = ctx.api
    assert api is not None
    try:
        parts = api.status(upload.upload_id, upload.s3_key, control=ctx.control)
    except NotFoundError:  # completed or aborted since the listing
        return None
    except UploaderError as exc:
        log.info("%s: the parts of %s could not be listed (%s)", ctx.name, upload.s3_key, exc.message)
        return None
    plan = plan_of(parts, ctx.size, caps)
    if plan is not None and ctx.on_status is not None:  # hashing what is stored of a big file takes a while
        ctx.on_status(Status.UPLOADING, "Checking an unfinished upload of this file found on the server…")
    kept = verified_parts(ctx, plan, parts) if plan is not None else None
    if plan is None or not kept:
        why = "its parts don't fit this file" if plan is None or kept is None else "its bytes differ from this file"
        log.info("%s: not continuing %s on the server: %s", ctx.name, upload.s3_key, why)
        return None
    algorithm = checksums.choose(caps.checksums) if ctx.settings.verify_integrity else None
    record = ctx.new_record(
        PRESIGNED,
        upload_id=upload.upload_id,
        s3_key=upload.s3_key,
        unique_file_name=upload.s3_key.rsplit("/", 1)[-1],
        part_size=plan.part_size,
        part_count=plan.part_count,
        checksum=algorithm or "",
    )
    ctx.save(lambda: ctx.state.create(record))
    ctx.save(lambda: ctx.state.replace_parts(ctx.job_id, list(kept.values())))
    stored = sum(part.size for part in kept.values())
    log.info(
        "%s: continuing %s found on the server: %d of %d parts verified (%d bytes)",
        ctx.name,
        upload.s3_key,
        len(kept),
        plan.part_count,
        stored,
    )
    ctx.notice(
        f"Continuing the unfinished upload of this file found on the server: {human_bytes(stored)} were already "
        "stored and checked against the file."
    )
    return record
