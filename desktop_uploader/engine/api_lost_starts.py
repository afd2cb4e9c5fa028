"""Uploads that a ``start`` whose answer was lost left on the server: found by name and by when they began.

A start can reach the server and lose its answer (a reset, a timeout, a proxy's error page). The
server then holds a multipart upload nobody knows the id of. ``list`` names each unfinished upload
and says when storage initiated it; uploads of the same file name initiated while our start (with
its retries) was under way, and held by no record of ours, are what such starts left.

The time comes from ``initiated``, not from the key: a server may name keys however it likes. The
server's clock is read from the ``Date`` of the list answer, so a computer whose clock is off does
not look in the wrong place.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from datetime import datetime
from typing import Protocol

import requests

from desktop_uploader.engine.api_capabilities import Capabilities
from desktop_uploader.engine.api_types import RemoteUpload
from desktop_uploader.engine.errors import NotFoundError

log = logging.getLogger(__name__)

CLOCK_SLACK = 3.0  # seconds: the resolution of Date and of storage's stamps, and the time between them


class ListingApi(Protocol):
    """What finding lost starts needs of the API client (which is built on this module, not under it)."""

    def capabilities(self) -> Capabilities: ...
    def list_uploads_and_clock(self) -> tuple[list[RemoteUpload], float]: ...
    def abort(self, upload_id: str, s3_key: str) -> None: ...
    def chunked_abort(self, upload_id: str, s3_key: str) -> None: ...


def clock_offset(response: requests.Response) -> float:
    """How far the server's clock is ahead of ours, from its ``Date`` header (0 without one)."""
    try:
        moment = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return 0.0
    return moment.timestamp() - time.time()


def initiated_at(upload: RemoteUpload) -> float | None:
    """When storage initiated ``upload`` (its clock, epoch seconds), or None if the server didn't say."""
    try:
        moment = datetime.fromisoformat(upload.initiated)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def is_named(upload: RemoteUpload, safe_name: str) -> bool:
    """Whether ``upload`` is of a file called ``safe_name``: the key's last part is the name, maybe
    after a ``{user}_{millis}_`` stamp (the seed's and our server's naming)."""
    last = upload.s3_key.rsplit("/", 1)[-1]
    return last == safe_name or re.fullmatch(r".*_\d{10,}_" + re.escape(safe_name), last) is not None


def abort_lost_starts(
    client: ListingApi, safe_name: str, since: float, until: float, keep: set[str], *, chunked: bool = False
) -> int | None:
    """Abort unfinished uploads of ``safe_name`` initiated between ``since`` and ``until`` (our clock),
    except those in ``keep``. Returns how many were aborted, or None when the server can't list them
    (the caller tells the person once); raises if the server can't be asked now."""
    if not client.capabilities().offers("list"):
        # Info: the person is told once per server (methods/lost_starts.py), not once per file here.
        log.info("This server can't list uploads, so one left by a lost start of %s can't be found", safe_name)
        return None
    uploads, offset = client.list_uploads_and_clock()
    aborted = 0
    for upload in uploads:
        if upload.upload_id in keep or not is_named(upload, safe_name):
            continue
        began = initiated_at(upload)
        if began is None or not since - CLOCK_SLACK <= began - offset <= until + CLOCK_SLACK:
            continue
        log.info("Aborting %s, left by a start whose answer was lost", upload.s3_key)
        try:
            if chunked:
                client.chunked_abort(upload.upload_id, upload.s3_key)
            else:
                client.abort(upload.upload_id, upload.s3_key)
        except NotFoundError:
            continue
        aborted += 1
    return aborted
