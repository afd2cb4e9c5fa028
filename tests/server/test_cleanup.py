"""Unfinished uploads past the age limit are aborted, with their spools; younger ones are left alone."""

from __future__ import annotations

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
from desktop_uploader.server.chunked import ChunkSpool, SpoolMeta
from desktop_uploader.server.cleanup import Janitor
from desktop_uploader.server.config import ServerConfig
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


def test_a_stale_upload_is_aborted_with_its_spool_and_a_younger_one_is_left_alone(
    sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    prefix = f"janitor-{uuid.uuid4().hex[:8]}"
    config = config_for(sandbox, tmp_path, prefix)
    storage, spool = Storage(config), ChunkSpool(config.spool_dir)
    old_key, young_key = f"{prefix}/u/u_1_old.safetensors", f"{prefix}/u/u_2_young.safetensors"
    foreign_key = f"{prefix}-not-ours/u/u_1_x.bin"  # the same letters, not under the prefix's folder

    old_id = storage.create_multipart(old_key, "application/octet-stream", {})
    spool.create(SpoolMeta(old_id, old_key, "u", 10 * MiB, 8 * MiB))
    foreign_id = storage.create_multipart(foreign_key, "application/octet-stream", {})
    old_started = initiated(s3, sandbox.bucket, old_key)
    # Storage stamps uploads to the second. Ask it (not a sleep) until a new upload is a second younger.
    for _ in range(10_000):
        young_id = storage.create_multipart(young_key, "application/octet-stream", {})
        if initiated(s3, sandbox.bucket, young_key) > old_started:
            break
        storage.abort(young_key, young_id)
    else:
        raise AssertionError("storage's clock never moved on")
    spool.create(SpoolMeta(young_id, young_key, "u", 10 * MiB, 8 * MiB))
    orphan = spool.folder("an-upload-long-gone")
    orphan.mkdir(parents=True)
    (orphan / "spool-3").write_bytes(b"left over")
    long_ago = (old_started - timedelta(seconds=10)).timestamp()
    for path in (orphan / "spool-3", orphan):
        os.utime(path, (long_ago, long_ago))

    # "Now" is just past the old upload's age limit: the young one is a second short of it.
    janitor = Janitor(storage, spool, prefix, AGE, clock=lambda: old_started + timedelta(seconds=AGE + 0.5))
    removed = janitor.sweep()

    assert [(r.what, r.name) for r in removed] == [("upload", old_key), ("spool", orphan.name)]
    assert not open_multipart_uploads(s3, sandbox.bucket, old_key)
    assert not spool.folder(old_id).exists() and not orphan.exists()
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, young_key)] == [young_id]
    assert spool.load(young_id) is not None
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, foreign_key)] == [foreign_id]
    assert janitor.sweep() == []  # nothing more to do

    storage.abort(young_key, young_id)
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
    stop = Janitor(storage, ChunkSpool(config.spool_dir), prefix, AGE, clock=lambda: a_day_later).every(0.01)
    try:
        for _ in range(10_000):  # until storage shows the sweep happened
            if not open_multipart_uploads(s3, sandbox.bucket, key):
                break
        else:
            raise AssertionError("the scheduled sweep never aborted the upload")
    finally:
        stop()
