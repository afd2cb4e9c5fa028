"""Uploads the server created for a ``start`` whose answer never arrived: found again and aborted.

A start can reach the server and lose its answer: a reset, a timeout, a proxy's error page in its
place, or the app killed while waiting. The server then holds a multipart upload whose id nobody
knows, and it costs storage until someone aborts it. So before calling start, a method writes an
*intent*: the job's resume record without an upload id, stamped with the time. The real record
replaces it once the answer arrives. If it never does, the intent stands for "whatever the server
created for this file name in the time a start (with its retries) can take": aborting the record
lists the user's unfinished uploads and aborts those, except the ones another record of ours holds.

Where that can't be done right away (the server is unreachable), the intent is parked as an owed
abort like any other, and the next session's sweep finishes the job. A server without ``list``
(the seed's) can't be asked; those leftovers can only be reported, not found: the person is told
once per server and session (UNLISTABLE), with what the server needs for it not to happen.
"""

from __future__ import annotations

import logging
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.filenames import safe_basename
from desktop_uploader.engine.methods.base import JobContext
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import OWED_ABORT, UploadRecord

log = logging.getLogger(__name__)

UNLISTABLE = (
    "This server can't list uploads, so a partial upload left by a start whose answer was lost can't be "
    "found and removed: it takes up storage until someone removes it. For that not to happen, the server "
    "needs the 'list' action, or its bucket a lifecycle rule that aborts incomplete multipart uploads "
    "(AbortIncompleteMultipartUpload)."
)


def start_budget(settings: Settings) -> float:
    """The longest a start call with its retries can take: how long after an intent its upload may appear."""
    return settings.retries * (settings.connect_timeout + settings.read_timeout + settings.backoff_cap) + 5.0


def intent(ctx: JobContext, method: str, **fields: Any) -> UploadRecord:
    """Write (and return) the record that says "a start of this file is under way since now"."""
    fields.setdefault("unique_file_name", safe_basename(ctx.name))  # direct-s3 names its own key first
    record = ctx.new_record(method, created_at=time.time(), **fields)
    ctx.save(partial(ctx.state.create, record))
    return record


def withdraw(ctx: JobContext, record: UploadRecord, error: UploaderError) -> None:
    """The start behind ``record`` was refused outright: there is nothing to look for, so the intent goes."""
    if error.created_nothing:
        ctx.save(partial(ctx.state.delete, record.id))


def park(ctx: JobContext, record: UploadRecord) -> None:
    """Leave the search for leftovers of ``record``'s start to the next sweep (an owed abort)."""
    log.warning("%s: uploads left by a lost start could not be checked now; that is retried later", ctx.name)
    ctx.save(partial(ctx.state.create, record.with_changes(id=uuid.uuid4().hex, status=OWED_ABORT)))


def abort_leftovers(ctx: JobContext, record: UploadRecord, *, chunked: bool, kept: str | None = None) -> None:
    """Abort what the start behind ``record`` may have left on the server; raises if it can't be asked now."""
    if ctx.api is None:
        return
    name = record.unique_file_name or safe_basename(Path(record.path).name)
    keep = {r.upload_id for r in ctx.state.unfinished() if r.upload_id}
    if kept:
        keep.add(kept)
    since = record.created_at
    # No control: this also runs while a cancel unwinds the job, when the control says "stop".
    aborted = ctx.api.abort_lost_starts(name, since, since + start_budget(ctx.settings), keep, chunked=chunked)
    if aborted is None:
        ctx.notice_once_per_server("unlistable", UNLISTABLE, "warning")
    elif aborted:
        log.info("%s: aborted %d upload(s) left by a start whose answer was lost", ctx.name, aborted)


def after_start(
    ctx: JobContext, intent: UploadRecord, started: str, attempts: int, *, lost: UploadRecord | None, chunked: bool
) -> None:
    """Once our own start has answered with ``started``, sweep for uploads the sweep before it could miss.

    A start that needed retries may have created uploads before the one it answered with. And a start
    lost in an earlier run (``lost``, already swept for) can reach the server *after* that sweep: the
    server handles requests concurrently, and a resume can follow a crash within milliseconds. By the
    time our own start has been answered, one sent before it has almost always been handled too.
    """
    if attempts > 1:
        after_retried_start(ctx, intent, started, chunked=chunked)
    if lost is not None and time.time() < lost.created_at + start_budget(ctx.settings):
        after_retried_start(ctx, lost, started, chunked=chunked)


def after_retried_start(ctx: JobContext, record: UploadRecord, kept: str, *, chunked: bool) -> None:
    """A start that needed retries may have created uploads before the one it answered with: abort them."""
    try:
        abort_leftovers(ctx, record, chunked=chunked, kept=kept)
    except UploaderError as exc:
        log.warning("%s: could not check for uploads left by a retried start: %s", ctx.name, exc.message)
        park(ctx, record)
