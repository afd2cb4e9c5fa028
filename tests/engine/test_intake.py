"""Taking in a drop: damaged models set apart, one trip to queue it all, and the sentence about it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_uploader.engine import files
from desktop_uploader.engine.files import collect
from desktop_uploader.engine.intake import AddOutcome, Intake, add_all, damaged, refuse, unusable
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from tests.support.permissions import without_the_power_to_ignore_permissions
from tests.support.safetensors_files import write_safetensors


def test_only_cut_short_safetensors_are_damaged(tmp_path: Path) -> None:
    whole, cut, other = tmp_path / "whole.safetensors", tmp_path / "cut.SAFETENSORS", tmp_path / "notes.ckpt"
    write_safetensors(whole, 4096)
    write_safetensors(cut, 4096)
    cut.write_bytes(cut.read_bytes()[:2000])
    other.write_bytes(b"x" * 100)
    found = damaged([whole, cut, other])
    assert [path for path, _ in found] == [cut]
    assert found[0][1]  # what is wrong, in words

    kept, sentences = refuse([whole, cut, other], found)
    assert kept == [whole, other]
    assert sentences == ["cut.SAFETENSORS was not added because it looks damaged."]


def test_a_drop_is_queued_once_and_duplicates_are_named(tmp_path: Path) -> None:
    files = [tmp_path / f"m{n}.ckpt" for n in range(3)]
    for path in files:
        path.write_bytes(b"x" * 10)
    state = StateStore.open(tmp_path / "state.db")
    manager = UploadManager(Settings(), state, None)
    try:
        known: set[str] = set()
        assert add_all(manager, files[:2], known, start=False) == Intake(2, [], [])
        assert len(known) == 2
        assert add_all(manager, files, known, start=False) == Intake(1, ["m0.ckpt", "m1.ckpt"], [])
        gone = tmp_path / "gone.ckpt"
        taken = add_all(manager, [gone], known, start=False)
        assert taken.added == 0 and len(taken.problems) == 1
    finally:
        manager.close()
        state.close()


def test_a_file_given_twice_or_with_a_link_to_it_is_taken_once_and_said(tmp_path: Path) -> None:
    """An audit's drop of a file twice, or with a link to it, read only "Added 1 file." and no more."""
    model = tmp_path / "same.ckpt"
    model.write_bytes(b"x" * 10)
    link = tmp_path / "link.ckpt"
    link.symlink_to(model)
    found = collect([model, tmp_path / ".." / tmp_path.name / "same.ckpt", link])
    assert found.models == [model]
    assert unusable(found) == [
        "same.ckpt was given twice; it is added once.",
        "link.ckpt is the same file as same.ckpt; it is added once.",
    ]


def test_missing_paths_are_named(tmp_path: Path) -> None:
    found = collect([tmp_path / "nowhere.safetensors"])
    assert unusable(found) == [f"{tmp_path / 'nowhere.safetensors'}: no such file or folder."]


def test_a_dropped_link_that_loops_is_named_as_a_link(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    found = collect([tmp_path / "a.safetensors"])
    assert unusable(found) == [
        f"{tmp_path / 'a.safetensors'} is a link that leads back to itself, so there is no file to upload."
    ]


def test_the_status_sentence() -> None:
    assert AddOutcome(2, [], [], 0).text() == "Added 2 files."
    outcome = AddOutcome(0, ["a", "b", "c", "d"], ["one", "two", "three"], 5)
    assert outcome.text() == "Already in the queue: a, b, c and 1 more. Skipped 5 files that aren't models. one two"
    assert AddOutcome(0, [], ["gone.ckpt: no such file."], 0).text() == "Added 0 files. gone.ckpt: no such file."
    assert AddOutcome(1, ["a"], [], 0).text() == "Added 1 file. Already in the queue: a."
    assert AddOutcome(0, [], [], 0, ["m.safetensors"]).text() == "Going on with m.safetensors from where it stopped."
    assert AddOutcome(1, [], [], 0, ["a", "b"]).text() == "Added 1 file. Going on with a, b from where they stopped."


def test_a_folder_is_queued_in_the_order_a_file_manager_lists_it(tmp_path: Path) -> None:
    """A GUI audit's folder of checkpoints queued as m9, m90, m91… m99, m10: digits are read as numbers."""
    folder = tmp_path / "run"
    for name in ("epoch-10", "epoch-9", "Epoch-2", "epoch-100", "epoch-1"):
        (folder / name).mkdir(parents=True)
        (folder / name / "step-20.safetensors").write_bytes(b"x")
        (folder / name / "step-3.safetensors").write_bytes(b"x")
    found = collect([folder])
    assert [f"{p.parent.name}/{p.name}" for p in found.models[:4]] == [
        "epoch-1/step-3.safetensors",
        "epoch-1/step-20.safetensors",
        "Epoch-2/step-3.safetensors",
        "Epoch-2/step-20.safetensors",
    ]
    assert [p.parent.name for p in found.models[::2]] == ["epoch-1", "Epoch-2", "epoch-9", "epoch-10", "epoch-100"]


def test_hidden_folders_are_searched_for_models_only_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of models is named as skipped; a .git of many files is not walked to its end for that."""
    monkeypatch.setattr(files, "HIDDEN_LOOK", 10)
    (tmp_path / "visible.ckpt").write_bytes(b"v")
    (tmp_path / ".cache" / "hub").mkdir(parents=True)
    (tmp_path / ".cache" / "hub" / "a.safetensors").write_bytes(b"a")
    (tmp_path / ".git" / "deeper").mkdir(parents=True)
    for number in range(20):
        (tmp_path / ".git" / f"object-{number}").write_bytes(b"o")
    (tmp_path / ".git" / "deeper" / "past-budget.ckpt").write_bytes(b"x")
    (tmp_path / ".hidden.ckpt").write_bytes(b"h")
    found = collect([tmp_path])
    assert found.models == [tmp_path / "visible.ckpt"]
    assert found.hidden_models == [tmp_path / ".hidden.ckpt", tmp_path / ".cache" / "hub" / "a.safetensors"]
    assert found.empty_folders == []
    assert collect([tmp_path / ".cache"]).models == [tmp_path / ".cache" / "hub" / "a.safetensors"], "given, not hidden"


def test_a_dropped_folder_that_cant_be_opened_is_named_not_counted_as_empty(tmp_path: Path) -> None:
    """What the window says of a drop holding a folder without permission (it read as empty, so no word)."""
    write_safetensors(tmp_path / "models" / "a.safetensors", 4096)
    for name in ("one", "two"):
        write_safetensors(tmp_path / "models" / name / "b.safetensors", 4096)
        (tmp_path / "models" / name).chmod(0)
    drop = (
        "import json, sys; from desktop_uploader.engine.files import collect; "
        "from desktop_uploader.engine.intake import unusable; found = collect(sys.argv[1:]); "
        "print(json.dumps([[p.name for p in found.models], [str(p) for p in found.empty_folders], unusable(found)]))"
    )
    try:  # the drop is read on a worker thread, as here in a process bound by permissions as a person is
        done = subprocess.run(
            [*without_the_power_to_ignore_permissions(), sys.executable, "-c", drop, str(tmp_path / "models")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        for name in ("one", "two"):
            (tmp_path / "models" / name).chmod(0o755)
    models, empty, sentences = json.loads(done.stdout)
    assert models == ["a.safetensors"] and empty == []
    assert sentences == ["Couldn't look inside 2 folders, e.g. models/one: permission denied."]


def test_a_folder_that_can_be_listed_but_not_entered_is_named_and_the_rest_still_goes(tmp_path: Path) -> None:
    """An odd-inputs audit: a folder of mode 600 (its names readable, its files not) crashed the CLI with
    "Something went wrong" and made the window drop the whole drop without a word: Python 3.11's
    ``Path.is_file`` raises for a file in it instead of answering."""
    write_safetensors(tmp_path / "models" / "a.safetensors", 4096)
    write_safetensors(tmp_path / "models" / "noexec" / "inside.safetensors", 4096)
    (tmp_path / "models" / "noexec").chmod(0o600)
    drop = (
        "import json, sys; from desktop_uploader.engine.files import collect; "
        "from desktop_uploader.engine.intake import unusable; found = collect(sys.argv[1:]); "
        "print(json.dumps([[p.name for p in found.models], [str(p) for p in found.empty_folders], unusable(found)]))"
    )
    given = [str(tmp_path / "models" / "noexec" / "inside.safetensors"), str(tmp_path / "models")]
    try:
        done = subprocess.run(
            [*without_the_power_to_ignore_permissions(), sys.executable, "-c", drop, *given],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        (tmp_path / "models" / "noexec").chmod(0o755)
    models, empty, sentences = json.loads(done.stdout)
    assert models == ["a.safetensors"] and empty == [], "a folder holding one it couldn't enter is not empty"
    assert sentences == ["Couldn't look inside models/noexec: permission denied."], "once, however it was met"
