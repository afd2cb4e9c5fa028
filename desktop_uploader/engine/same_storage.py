"""Uploads begun at one server address that the connected server lists as its own: the same storage.

A record names the server it was begun on by address (only the app's own sandbox has a lasting id).
A CLI audit started ``desktop-uploader sandbox --data-dir D`` itself, killed it mid-upload and started
it again on the same data: new ports, so ``resume`` said the parts were "stored on
http://127.0.0.1:44879 … switch back to it", an address that would never come back, and the aborts
owed there were owed for ever. The server's ``list`` answers with the user's open multipart uploads,
and an upload id is storage's own: a record whose upload id and key the connected server lists is
held by that server's storage, whatever address it was begun at. Such a record moves to the
connected server, where it is resumed or aborted as any other (the ledger's rule holds: an abort
goes only to a target that holds the upload).
"""

from __future__ import annotations

import dataclasses
import logging

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.methods.base import PRESIGNED
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)


def move_to_listing_server(
    records: list[UploadRecord], api: ApiClient | None, server_id: str, state: StateStore
) -> list[UploadRecord]:
    """Those of ``records`` the connected server lists as its own, now recorded as its (one ``list`` call)."""
    candidates = [r for r in records if r.method == PRESIGNED and r.upload_id and r.server != server_id]
    if api is None or not server_id or not candidates:
        return []
    try:
        listed = {(upload.upload_id, upload.s3_key) for upload in api.list_uploads()}
    except UploaderError as exc:  # a server without 'list', or unreachable: nothing can be told
        log.info("Could not ask %s which uploads it holds: %s", server_id, exc.message)
        return []
    moved = []
    for record in candidates:
        if (record.upload_id, record.s3_key) not in listed:
            continue
        try:
            state.update(record.id, server=server_id)
        except UploaderError:
            continue
        log.info("Upload %s, begun at %s, is held by %s: the same storage", record.id, record.server, server_id)
        moved.append(dataclasses.replace(record, server=server_id))
    return moved
