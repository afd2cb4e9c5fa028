"""Unfinished uploads past the age limit are aborted, with their staged chunks; younger ones are left alone."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.limits import MiB
from desktop_uploader.server.chunked import ChunkedService
from desktop_uploader.server.cleanup import Janitor
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.models import ChunkedAbortRequest, ChunkedStartRequest
from desktop_uploader.server.presigned import PresignedService
from desktop_uploader.server.storage import Storage
from tests.support.storage import open_multipart_uploads

AGE = 3600.0


def config_for(sandbox: Any, tmp_path: Path, prefix: str) -> ServerConfig:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({sandbox.token: "u"}), encoding="utf-8")
    return ServerConfig(
        bucket=sandbox.bucket,
        s3_endpoint=sandbox.s3_endpoint,
        s3_access_key=sandbox.access_key,
        s3_secret_key=sandbox.secret_key,
        tokens_file=tokens,
        spool_dir=tmp_path / "spool",
        key_prefix=prefix,
    )


def initiated(s3: Any, bucket: str, key: str) -> datetime:
    (upload,) = open_multipart_uploads(s3, bucket, key)
    started: datetime = upload["Initiated"]
    return started


def services(config: ServerConfig) -> tuple[Storage, ChunkedService]:
    storage = Storage(config)
    config.spool_dir.mkdir(parents=True, exist_ok=True)
    return storage, ChunkedService(config, storage, PresignedService(config, storage))


def start_chunked(chunked: ChunkedService, name: str) -> tuple[str, str]:
    started = chunked.start("u", ChunkedStartRequest(action="start", file_name=name, file_size=10 * MiB))
    return started["s3Key"], started["uploadId"]


def test_a_stale_upload_is_aborted_with_its_staged_chunks_and_a_younger_one_is_left_alone(
    sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    prefix = f"janitor-{uuid.uuid4().hex[:8]}"
    config = config_for(sandbox, tmp_path, prefix)
    storage, chunked = services(config)
    # Written first, so no younger than the old upload: staged bytes whose upload is long gone.
    orphan = f"{chunked.staging_root()}{'0' * 40}/chunk-{0:020d}"
    storage.put_object(orphan, io.BytesIO(b"left over"), 9, "application/octet-stream", {})
    old_key, old_id = start_chunked(chunked, "old.safetensors")
    with chunked.incoming() as sink:
        sink.write(b"staged bytes")
        sink.seek(0)
        chunked.chunk("u", old_id, old_key, 0, sink, 12)
    foreign_key = f"{prefix}-not-ours/u/u_1_x.bin"  # the same letters, not under the prefix's folder
    foreign_id = storage.create_multipart(foreign_key, "application/octet-stream", {})
    old_started = initiated(s3, sandbox.bucket, old_key)
    # Storage stamps uploads to the second. Ask it (not a sleep) until a new upload is a second younger.
    for _ in range(10_000):
        young_key, young_id = start_chunked(chunked, "young.safetensors")
        if initiated(s3, sandbox.bucket, young_key) > old_started:
            break
        chunked.abort("u", ChunkedAbortRequest(action="abort", upload_id=young_id, s3_key=young_key))
    else:
        raise AssertionError("storage's clock never moved on")

    # "Now" is just past the old upload's age limit: the young one is a second short of it.
    janitor = Janitor(storage, chunked, prefix, AGE, clock=lambda: old_started + timedelta(seconds=AGE + 0.5))
    removed = janitor.sweep()

    assert [(r.what, r.name) for r in removed] == [("upload", old_key), ("staged", orphan)]
    assert not open_multipart_uploads(s3, sandbox.bucket, old_key)
    assert not storage.list_objects(chunked.stage_of(old_id)) and storage.existing(orphan) is None
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, young_key)] == [young_id]
    assert storage.list_objects(chunked.stage_of(young_id)), "the young upload's staging is kept"
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, foreign_key)] == [foreign_id]
    assert janitor.sweep() == []  # nothing more to do

    chunked.abort("u", ChunkedAbortRequest(action="abort", upload_id=young_id, s3_key=young_key))
    storage.abort(foreign_key, foreign_id)


def test_the_cleanup_command_sweeps_once_and_says_what_it_removed(sandbox: Any, s3: Any, tmp_path: Path) -> None:
    prefix = f"janitor-{uuid.uuid4().hex[:8]}"
    config = config_for(sandbox, tmp_path, prefix)
    key = f"{prefix}/u/u_1_forgotten.gguf"
    upload_id = Storage(config).create_multipart(key, "application/octet-stream", {})
    env = {
        **os.environ,
        "DESKTOP_UPLOADER_HOME": str(tmp_path / "home"),
        "UPLOAD_API_S3_ACCESS_KEY": sandbox.access_key,
        "UPLOAD_API_S3_SECRET_KEY": sandbox.secret_key,
        "UPLOAD_API_KEY_PREFIX": prefix,
    }
    argv = [
        *(sys.executable, "-m", "desktop_uploader", "cleanup"),
        *("--bucket", sandbox.bucket, "--s3-endpoint", sandbox.s3_endpoint),
        *("--tokens-file", str(config.tokens_file), "--spool-dir", str(config.spool_dir)),
        "--stale-upload-seconds",
    ]
    # An age limit of a day: the upload is younger, so it stays.
    kept = subprocess.run([*argv, "86400"], env=env, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 0, kept.stderr
    assert "0 removed." in kept.stdout and open_multipart_uploads(s3, sandbox.bucket, key)
    # 0: every unfinished upload under the prefix (an operator's choice; `serve` refuses a schedule like it).
    swept = subprocess.run([*argv, "0"], env=env, capture_output=True, text=True, timeout=120)
    assert swept.returncode == 0, swept.stderr
    assert f"aborted {key} (upload {upload_id[:16]}" in swept.stdout and "1 removed." in swept.stdout
    assert not open_multipart_uploads(s3, sandbox.bucket, key)


@pytest.mark.parametrize("stale", ["60", "3599"])
def test_serve_refuses_to_schedule_a_cleanup_that_could_abort_uploads_in_use(
    sandbox: Any, tmp_path: Path, stale: str
) -> None:
    config = config_for(sandbox, tmp_path, "loras")
    answer = subprocess.run(
        [
            *(sys.executable, "-m", "desktop_uploader", "serve", "--port", "0", "--bucket", sandbox.bucket),
            *("--s3-endpoint", sandbox.s3_endpoint, "--tokens-file", str(config.tokens_file)),
            *("--spool-dir", str(config.spool_dir), "--stale-upload-seconds", stale),
        ],
        env={**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 2 and "must be at least --url-expiry-seconds" in answer.stderr


def test_the_schedule_sweeps_on_its_own_until_stopped(sandbox: Any, s3: Any, tmp_path: Path) -> None:
    """What `serve` starts: a thread sweeping every interval (a tiny one here; the clock says a day went by)."""
    prefix = f"janitor-{uuid.uuid4().hex[:8]}"
    config = config_for(sandbox, tmp_path, prefix)
    storage = Storage(config)
    key = f"{prefix}/u/u_1_abandoned.pt"
    storage.create_multipart(key, "application/octet-stream", {})
    a_day_later = initiated(s3, sandbox.bucket, key) + timedelta(days=1)
    stop = Janitor(storage, services(config)[1], prefix, AGE, clock=lambda: a_day_later).every(0.01)
    try:
        for _ in range(10_000):  # until storage shows the sweep happened
            if not open_multipart_uploads(s3, sandbox.bucket, key):
                break
        else:
            raise AssertionError("the scheduled sweep never aborted the upload")
    finally:
        stop()
