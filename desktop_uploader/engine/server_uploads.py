"""Unfinished uploads on the server that no record on this computer knows: shown, continued or discarded.

The resume store is this computer's only memory of an interrupted upload. When it is lost (a damaged
file set aside, a reinstall, another computer), the multipart upload stays on the server, costing
storage until the server's stale-upload cleanup, and uploading the file again would start from 0.
Where the server offers ``list``, these uploads are found here, so that the person can continue one
(upload the same file again: :mod:`desktop_uploader.engine.methods.adopt` checks the stored parts
against the file) or discard it. A server without ``list`` (the seed's) can't be asked: then there is
nothing to offer, and nothing is said.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from desktop_uploader.engine.api_client import ApiClient, RemoteUpload
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import NotFoundError, UploaderError
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)

SHORT_ID = 12  # how many characters of an upload id are shown; any unambiguous start of it is accepted


@dataclass(frozen=True)
class ServerUpload:
    """An unfinished upload the server holds and no record here knows."""

    upload_id: str
    s3_key: str
    name: str  # the file name it is stored under, for people (escape it before printing)
    started_at: float | None  # seconds since the epoch, when the server or the key says
    stored_bytes: int | None = None  # bytes already in storage, when they were asked for

    @property
    def short_id(self) -> str:
        return self.upload_id[:SHORT_ID]


def name_from_key(s3_key: str) -> str:
    """The file name in ``loras/{user}/{user}_{millis}_{name}`` (docs/api.md); for any other key, its last segment.

    The user id may itself contain ``_``: the folder says where it ends. Never raises.
    """
    folder, _, unique = s3_key.rpartition("/")
    user = folder.rsplit("/", 1)[-1]
    if user and unique.startswith(user + "_"):
        millis, sep, name = unique[len(user) + 1 :].partition("_")
        if millis.isdigit() and sep and name:
            return name
    return unique or s3_key


def _started_at(remote: RemoteUpload) -> float | None:
    """When it was started: the server's ``initiated``, else the milliseconds in the key, else unknown."""
    if remote.initiated:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(remote.initiated).timestamp()
    folder, _, unique = remote.s3_key.rpartition("/")
    user = folder.rsplit("/", 1)[-1]
    if user and unique.startswith(user + "_"):
        millis = unique[len(user) + 1 :].partition("_")[0]
        if millis.isdigit():
            return int(millis) / 1000
    return None


def known_to(records: Iterable[UploadRecord]) -> tuple[set[str], set[str]]:
    """The upload ids and keys the store's records hold (owed aborts included: those are known too)."""
    ids, keys = set(), set()
    for record in records:
        if record.upload_id:
            ids.add(record.upload_id)
        if record.s3_key:
            keys.add(record.s3_key)
    return ids, keys


def offers_list(api: ApiClient, control: Control | None = None) -> bool:
    return api.capabilities(control=control).offers("list")


def unknown_uploads(
    api: ApiClient, state: StateStore, *, with_sizes: bool = False, control: Control | None = None
) -> list[ServerUpload]:
    """The server's unfinished uploads that no record in ``state`` knows, oldest first.

    ``[]`` when the server can't ``list``. With ``with_sizes``, each one's stored bytes are asked for
    (one ``status`` call each, where the server offers it); an upload that vanished meanwhile is left out.
    Raises the engine's errors when the server or the store can't be asked.
    """
    caps = api.capabilities(control=control)
    if not caps.offers("list"):
        return []
    remote = api.list_uploads(control=control)
    ids, keys = known_to(state.unfinished())
    found: list[ServerUpload] = []
    for upload in remote:
        if upload.upload_id in ids or upload.s3_key in keys:
            continue
        stored = None
        if with_sizes and caps.offers("status"):
            try:
                stored = sum(max(0, part.size) for part in api.status(upload.upload_id, upload.s3_key, control=control))
            except NotFoundError:  # completed or aborted since the listing (AlreadyStoredError is one too)
                continue
        found.append(
            ServerUpload(upload.upload_id, upload.s3_key, name_from_key(upload.s3_key), _started_at(upload), stored)
        )
    found.sort(key=lambda u: (u.started_at is None, u.started_at or 0.0, u.s3_key))
    return found


def matching(uploads: Iterable[ServerUpload], prefix: str) -> list[ServerUpload]:
    """The uploads whose id starts with ``prefix`` (as ``discard`` takes local ids); none for an empty one."""
    prefix = prefix.strip()
    return [u for u in uploads if prefix and u.upload_id.startswith(prefix)]


def discard(api: ApiClient, upload: ServerUpload, control: Control | None = None) -> bool:
    """Abort ``upload`` on the server; False if it was already gone (completed or aborted elsewhere)."""
    try:
        api.abort(upload.upload_id, upload.s3_key, control=control)
    except NotFoundError:
        log.info("%s was already gone from the server", upload.s3_key)
        return False
    log.info("Discarded %s, an unfinished upload no record here knew", upload.s3_key)
    return True


def discard_all(api: ApiClient, uploads: Iterable[ServerUpload]) -> tuple[int, int]:
    """Abort each of ``uploads``; returns (removed, failed). One failing does not stop the rest."""
    removed = failed = 0
    for upload in uploads:
        try:
            discard(api, upload)
        except UploaderError as exc:
            log.info("Could not discard %s: %s", upload.s3_key, exc.message)
            failed += 1
        else:
            removed += 1
    return removed, failed
