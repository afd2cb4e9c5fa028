"""The upload history and the saved queue: what survives a restart, and who may read it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.connection import SANDBOX_LABEL
from desktop_uploader.engine.history import HistoryEntry, HistoryStore
from desktop_uploader.engine.history_recorder import HistoryRecorder, server_names
from desktop_uploader.engine.jobs import ServerConnection
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.saved_queue import SavedQueue, SavedRow, save_queue, take_queue
from desktop_uploader.engine.settings import Settings
from desktop_uploader.sandbox.info import SandboxInfo
from tests.conftest import SampleFile
from tests.engine.conftest import Engine
from tests.support.safetensors_files import whole_models
from tests.support.storage import object_sha256


def entry(name: str, when: float, **changes: Any) -> HistoryEntry:
    values: dict[str, Any] = {
        "file_name": name,
        "local_path": f"/models/{name}",
        "comfyui_path": f"models/loras/{name}",
        "s3_path": f"s3://bucket/loras/{name}",
        "size": 1234,
        "method": "presigned-s3",
        "completed_at": when,
        "server": "https://uploads.example.com",
        "server_key": "https://uploads.example.com",
    }
    values.update(changes)
    return HistoryEntry(**values)


def test_the_history_is_private_survives_reopening_and_lists_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.sqlite3"
    store = HistoryStore(path)
    assert not path.exists()  # nothing on disk until it is used: the window makes one on its own thread
    store.record(entry("old.safetensors", 1000.0))
    store.record(entry("new.safetensors", 2000.0, server="this computer", server_key="sandbox-1"))
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            assert not side.exists() or stat.S_IMODE(side.stat().st_mode) == 0o600

    again = HistoryStore(path)  # a new session
    names = [e.file_name for e in again.entries()]
    assert names == ["new.safetensors", "old.safetensors"]
    newest = again.entries()[0]
    assert newest.comfyui_path == "models/loras/new.safetensors" and newest.server == "this computer"
    assert [e.file_name for e in again.entries("OLD loras")] == ["old.safetensors"]
    assert again.entries("nothing like it") == []
    again.clear()
    assert HistoryStore(path).entries() == []


@pytest.mark.allow_log(r"^WARNING desktop_uploader\.engine\.history: The upload history .* is damaged")
def test_a_damaged_history_is_set_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database, it was cut short by a crash" * 100)
    store = HistoryStore(path)
    assert store.entries() == []
    store.record(entry("after.safetensors", 1.0))
    assert [e.file_name for e in HistoryStore(path).entries()] == ["after.safetensors"]
    assert [p.name for p in tmp_path.glob("history.sqlite3.damaged-*") if not p.name.endswith(".reason")]


def test_a_file_is_hashed_only_when_its_size_matches_an_upload_to_that_server(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    uploaded = tmp_path / "uploaded.safetensors"
    uploaded.write_bytes(b"a" * 4096)
    done = os.stat(uploaded)
    store.record(entry("uploaded.safetensors", 1.0, size=4096, local_path=str(uploaded), mtime_ns=done.st_mtime_ns))

    same = tmp_path / "renamed.safetensors"
    shutil.copyfile(uploaded, same)
    found, digest = store.duplicate_of("https://uploads.example.com", same)
    assert found is not None and found.file_name == "uploaded.safetensors" and digest
    assert store.entries()[0].sha256 == digest  # the entry's hash is kept: its source is not read again

    assert store.duplicate_of("https://other.example.com", same) == (None, "")  # another server: not a duplicate
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"b" * 4096)
    assert store.duplicate_of("https://uploads.example.com", other)[0] is None  # same size, other bytes

    if os.name == "posix" and os.geteuid() != 0:
        smaller = tmp_path / "unreadable.safetensors"
        smaller.write_bytes(b"a" * 100)
        smaller.chmod(0)
        assert store.duplicate_of("https://uploads.example.com", smaller) == (None, "")  # never opened


def test_the_saved_queue_comes_back_once(tmp_path: Path) -> None:
    rows = [SavedRow("/models/a.safetensors", "a", False), SavedRow("/models/b.safetensors", "b", True, "job-b")]
    save_queue(tmp_path, SavedQueue(rows, 1234.5))
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "queue.json").stat().st_mode) == 0o600
    taken = take_queue(tmp_path)
    assert taken == SavedQueue(rows, 1234.5) and taken.paused_ids == {"job-b"}
    assert take_queue(tmp_path) == SavedQueue()  # the queue holds them again: a second start doesn't add them twice


@pytest.mark.allow_log(r"^WARNING desktop_uploader\.engine\.saved_queue: The saved queue .* could not be read")
def test_a_damaged_saved_queue_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "queue.json").write_text("{not json", encoding="utf-8")
    assert take_queue(tmp_path) == SavedQueue()
    assert not (tmp_path / "queue.json").exists()


def test_an_engine_upload_is_recorded_with_its_paths_and_server(
    make_engine: Callable[..., Engine], make_file: Callable[..., SampleFile], tmp_path: Path, s3: Any, sandbox: Any
) -> None:
    engine = make_engine()
    store = HistoryStore(tmp_path / "history.sqlite3")
    HistoryRecorder.attach(store, engine.manager)
    sample = make_file(6 * MiB, "recorded.safetensors")
    job = engine.upload(sample.path)
    assert job.result is not None
    [recorded] = HistoryStore(tmp_path / "history.sqlite3").entries()
    assert recorded.size == sample.size and recorded.local_path == str(sample.path.resolve())
    assert recorded.file_name == Path(job.result.s3_key).name
    assert recorded.comfyui_path == (job.result.comfyui_path or "") and recorded.s3_path
    assert recorded.method == job.result.method and recorded.server == sandbox.api_url
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_direct_upload_is_recorded_against_its_bucket(
    make_engine: Callable[..., Engine],
    make_file: Callable[..., SampleFile],
    tmp_path: Path,
    direct_target: DirectTarget,
) -> None:
    target = dataclasses.replace(direct_target, prefix=f"direct-{uuid.uuid4().hex[:12]}")
    engine = make_engine(Settings(method="direct-s3"), direct=target)
    store = HistoryStore(tmp_path / "history.sqlite3")
    HistoryRecorder.attach(store, engine.manager)
    job = engine.upload(make_file(1 * MiB, "direct.safetensors").path)
    assert job.result is not None, job.message
    [recorded] = store.entries()
    assert recorded.server_key == target.server_id and target.bucket in recorded.server
    assert recorded.method == "direct-s3" and recorded.s3_path.endswith(Path(job.result.s3_key).name)


@pytest.fixture
def model_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    return whole_models(make_file, tmp_path)


def test_a_command_line_upload_is_in_the_history(
    model_file: Callable[..., SampleFile], private_home: Path, sandbox: SandboxInfo
) -> None:
    sample = model_file(2 * MiB, "from-the-cli.safetensors")
    env = {
        **os.environ,
        "DESKTOP_UPLOADER_HOME": str(private_home),
        "DESKTOP_UPLOADER_SERVER": sandbox.api_url,
        "DESKTOP_UPLOADER_TOKEN": sandbox.token,
    }
    done = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "upload", str(sample.path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [recorded] = HistoryStore(private_home / "data" / "history.sqlite3").entries()
    assert recorded.size == sample.size and recorded.local_path == str(sample.path.resolve())
    assert recorded.comfyui_path and recorded.server == sandbox.api_url


def test_the_sandbox_is_named_this_computer_and_known_by_its_identity() -> None:
    sandbox = ServerConnection("http://127.0.0.1:40123", "t", "sandbox-7f3a", SANDBOX_LABEL)
    assert server_names(sandbox, None, "presigned-s3") == ("this computer", "sandbox-7f3a")
    remote = ServerConnection("https://uploads.example.com", "t", "https://uploads.example.com", "uploads.example.com")
    assert server_names(remote, None, "chunked-s3") == ("https://uploads.example.com", "https://uploads.example.com")
