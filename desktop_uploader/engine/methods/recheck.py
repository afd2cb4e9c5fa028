"""Before completing an upload whose file was touched, every stored part is checked against the file.

Resuming trusts the file's identity (fileid.py): its size, modification time, and first and last MiB.
A big-file audit overwrote 1 MiB in the middle of a paused upload's file, put the mtime back with
``touch -r``, and resumed: the command said "completed" and storage held a mix of both versions,
the old bytes in the parts sent before and the new ones after. The inode's change time can't be set
back, so when it moved (between runs or during one) each part is read again and compared with what
storage acknowledged for it: its checksum where the upload has one, else its ETag, an MD5 for parts
stored without SSE-KMS or SSE-C. Any difference, or a part that can't be compared, ends the upload
before ``complete``: nothing mixed is ever stored, and "start again" sends the file as it is now.
A file only moved away and back, or chmod-ed, reads the same and completes, after one more read.
"""

from __future__ import annotations

import base64
import logging
import re

from desktop_uploader.engine.checksums import checksum_of_span
from desktop_uploader.engine.errors import FileChangedError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.fileid import touched_since
from desktop_uploader.engine.methods.base import JobContext
from desktop_uploader.engine.methods.multipart import plain_etag
from desktop_uploader.engine.partbody import md5_of_span
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


def ensure_parts_match(ctx: JobContext, record: UploadRecord, plan: PartPlan, parts: dict[int, SavedPart]) -> None:
    """Raise FileChangedError unless every part stored is this file's bytes, when the file was touched."""
    if not touched_since(ctx.path, ctx.identity, record.identity):
        return
    log.info("%s: the file's change time moved during its upload; checking every part against it", ctx.name)
    if ctx.on_status is not None:  # reading a big file again takes a while
        ctx.on_status(Status.UPLOADING, "The file was touched while it uploaded: checking it against what is stored…")
    for number in range(1, plan.part_count + 1):
        part, span = parts.get(number), plan.span(number)
        if part is None or not _same_bytes(ctx, record, part, span.offset, span.size):
            log.info("%s: part %d differs from the file, or can't be compared with it", ctx.name, number)
            raise FileChangedError(
                f"{ctx.name} was changed while it was uploading, so the parts already stored no longer match it. "
                "Start the upload again to send the new version."
            )


def _same_bytes(ctx: JobContext, record: UploadRecord, part: SavedPart, offset: int, size: int) -> bool:
    if part.size != size:
        return False
    if record.checksum and part.checksum:
        return checksum_of_span(record.checksum, ctx.path, offset, size, ctx.control) == part.checksum
    etag = plain_etag(part.etag)
    if not _MD5_HEX.match(etag):
        return False
    return base64.b64decode(md5_of_span(ctx.path, offset, size, ctx.control)).hex() == etag
