"""An upload as the resume store keeps it: the record, its parts, and the store's columns derived from them.

The columns are the record's fields, with the file's identity spread into its own four; nothing
spells them out twice, so a field added to the record is a column the schema must have (the store
checks that when it opens).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from desktop_uploader.engine.fileid import FileIdentity

# The status of a record that stands for an abort we still owe its server (see engine/ledger.py).
OWED_ABORT = "abandoned"


@dataclass(frozen=True)
class UploadRecord:
    id: str
    path: str
    display_name: str
    identity: FileIdentity
    method: str
    server: str
    status: str = "active"
    upload_id: str | None = None
    s3_key: str | None = None
    unique_file_name: str | None = None
    comfyui_path: str | None = None
    part_size: int = 0
    part_count: int = 0
    chunk_offset: int = 0
    # The checksum algorithm storage was told about when the upload started ("crc32c", "crc32"), or "":
    # every part of such an upload must carry that checksum, and completing it must list them all.
    checksum: str = ""
    message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def with_changes(self, **changes: Any) -> UploadRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class SavedPart:
    number: int
    etag: str
    size: int
    checksum: str = ""  # base64, of the upload's checksum algorithm, when it has one


_RECORD_FIELDS = [f.name for f in fields(UploadRecord) if f.name != "identity"]
_IDENTITY_FIELDS = [f.name for f in fields(FileIdentity)]
RECORD_COLUMNS = [*_RECORD_FIELDS, *_IDENTITY_FIELDS]
# What may change after a record is written: not its id, its file, or its timestamps.
UPDATABLE_COLUMNS = frozenset(_RECORD_FIELDS) - {"id", "path", "created_at", "updated_at"}


def record_values(record: UploadRecord) -> dict[str, Any]:
    """The record as column values."""
    return {**{name: getattr(record, name) for name in _RECORD_FIELDS}, **asdict(record.identity)}


def record_from_row(row: sqlite3.Row) -> UploadRecord:
    identity = FileIdentity(**{name: row[name] for name in _IDENTITY_FIELDS})
    return UploadRecord(identity=identity, **{name: row[name] for name in _RECORD_FIELDS})
