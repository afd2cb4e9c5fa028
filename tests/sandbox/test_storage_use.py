"""``desktop-uploader sandbox --empty``: the test uploads deleted, never from under a running sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop_uploader.connection import launch_sandbox
from desktop_uploader.engine.history import HistoryStore
from desktop_uploader.engine.limits import MiB
from desktop_uploader.paths import HOME_ENV, resolve_paths
from desktop_uploader.sandbox.storage_use import IN_USE
from tests.support.safetensors_files import write_safetensors
from tests.support.storage import s3_client


def command(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop_uploader", *words], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_command_empties_a_stopped_sandbox_and_refuses_a_running_one(tmp_path: Path) -> None:
    env = {**os.environ, HOME_ENV: str(tmp_path / "home"), "COLUMNS": "200"}
    paths = resolve_paths(env).ensure()
    model = tmp_path / "tried.safetensors"
    write_safetensors(model, 3 * MiB)
    uploaded = command(env, "upload", str(model), "--json")  # no server set up: to the sandbox, started for it
    assert uploaded.returncode == 0, uploaded.stderr
    [upload] = json.loads(uploaded.stdout)["uploads"]
    history = HistoryStore.in_data_dir(paths.data_dir)
    assert [entry.size for entry in history.entries()] == [3 * MiB]

    running = launch_sandbox(paths)
    try:
        refused = command(env, "sandbox", "--empty")
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"desktop-uploader: {IN_USE}"
        for_a_script = command(env, "sandbox", "--empty", "--json")  # a CLI audit's script got nothing to parse
        assert for_a_script.returncode == 1 and for_a_script.stderr.strip() == f"desktop-uploader: {IN_USE}"
        assert json.loads(for_a_script.stdout) == {
            "dataDir": str(paths.sandbox_dir),
            "emptied": False,
            "freedBytes": 0,
            "leftBytes": 0,
            "error": IN_USE,
        }
        stored = s3_client(running.info).head_object(Bucket=running.info.bucket, Key=upload["s3Key"])
        assert stored["ContentLength"] == 3 * MiB, "nothing was taken from under the running sandbox"
    finally:
        running.stop()

    emptied = command(env, "sandbox", "--empty", "--json")
    assert emptied.returncode == 0, emptied.stderr
    answer = json.loads(emptied.stdout)
    assert answer["emptied"] is True and answer["freedBytes"] >= 3 * MiB
    assert (answer["leftBytes"], answer["dataDir"], "error" in answer) == (0, str(paths.sandbox_dir), False)
    assert history.entries() == [], "a file tried again is not 'already uploaded' to a store that was emptied"
    again = launch_sandbox(paths)
    try:
        listed = s3_client(again.info).list_objects_v2(Bucket=again.info.bucket)
        assert listed.get("KeyCount", 0) == 0, "the new store is empty"
    finally:
        again.stop()
    said = command(env, "sandbox", "--empty")  # and in words, for people
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"Emptied the test storage in {paths.sandbox_dir}: ")
    assert said.stdout.strip().endswith(" freed.")


def test_emptying_a_folder_that_holds_no_test_storage_says_so_and_leaves_it_untouched(tmp_path: Path) -> None:
    """A CLI audit ran ``--empty --data-dir`` on a folder of its own files: "Emptied … 0 B freed", a lock left
    there, and a missing folder created."""
    env = {**os.environ, HOME_ENV: str(tmp_path / "home")}
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    missing = tmp_path / "nowhere"
    for folder in (mine, missing):
        said = command(env, "sandbox", "--empty", "--data-dir", str(folder))
        assert said.returncode == 0, said.stderr
        assert said.stdout.strip() == f"Nothing to empty: {folder} holds no test storage."
        for_a_script = command(env, "sandbox", "--empty", "--json", "--data-dir", str(folder))
        assert for_a_script.returncode == 0 and json.loads(for_a_script.stdout)["emptied"] is False
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and not missing.exists()
