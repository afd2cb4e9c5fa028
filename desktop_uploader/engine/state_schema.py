"""The resume store's layout, and the steps that bring an older store up to date."""

from __future__ import annotations

SCHEMA_VERSION = 3  # 2: the checksum algorithm of an upload, and each part's checksum; 3: the file's change time
SCHEMA = """
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    display_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    head_sha256 TEXT NOT NULL,
    tail_sha256 TEXT NOT NULL,
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    method TEXT NOT NULL,
    server TEXT NOT NULL,
    upload_id TEXT,
    s3_key TEXT,
    unique_file_name TEXT,
    comfyui_path TEXT,
    part_size INTEGER NOT NULL DEFAULT 0,
    part_count INTEGER NOT NULL DEFAULT 0,
    chunk_offset INTEGER NOT NULL DEFAULT 0,
    checksum TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE parts (
    upload TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
CREATE TABLE urls (
    upload TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    url TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
"""

# Each step takes the store from the version before it to the next one.
MIGRATIONS = {
    2: (
        "ALTER TABLE uploads ADD COLUMN checksum TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE parts ADD COLUMN checksum TEXT NOT NULL DEFAULT '';"
    ),
    3: "ALTER TABLE uploads ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;",
}
