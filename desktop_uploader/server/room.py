"""Room on the disk of a store that runs on this machine (the sandbox's SeaweedFS): checked at start.

SeaweedFS turns every volume read-only once less than 1 % of its disk is free, and then answers each
part ``500 InternalError``, which reads as a busy store: a first-time user who tried a 20 GB checkpoint
on the test storage of a laptop with 15 GB free would fill the disk to the brim, watch every part be
retried, and be told the storage was busy. A file that can't fit above that reserve is refused at
start, in words, before a byte is sent. Uploads already under way are not counted: the check is the
disk as it is now, which catches the one big file, not two that each fit alone.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.server.errors import ApiError

log = logging.getLogger(__name__)

RESERVE_PERCENT = 1  # what SeaweedFS keeps free (its -minFreeSpace default, which `weed mini` doesn't take)


def room_left(folder: Path) -> int:
    """Bytes the store may still write in ``folder`` before its disk's reserve; 0 when past it."""
    usage = shutil.disk_usage(folder)
    return max(0, usage.free - usage.total * RESERVE_PERCENT // 100)


def check_room(folder: Path | None, file_size: int | None) -> None:
    """Raise a 507 when a file of ``file_size`` can't fit on the disk of a store writing to ``folder``."""
    if folder is None or file_size is None:
        return
    try:
        room = room_left(folder)
    except OSError:
        return  # the store's folder can't be looked at: the store will say what it says
    if file_size > room:
        # What to do first, in the few words a row shows: "…room for only…" was cut before its remedy (a re-check).
        log.info("Refused %d bytes: %d left above the %d %% reserve in %s", file_size, room, RESERVE_PERCENT, folder)
        raise ApiError(
            507,
            f"Not enough disk space for this file ({human_bytes(file_size)}): free some space on the disk the storage "
            f"writes to, which has room for {human_bytes(room)} more, then try again.",
        )
