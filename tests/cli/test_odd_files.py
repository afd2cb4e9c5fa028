"""Odd file names and odd files, as the real CLI meets them: each is refused (or warned about) alone."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.errors import FileUnreadableError
from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore, UploadRecord
from desktop_uploader.logsetup import configure_logging
from tests.support.permissions import without_the_power_to_ignore_permissions
from tests.support.safetensors_files import write_safetensors
from tests.support.storage import object_sha256


def test_a_name_that_is_not_text_is_refused_alone_and_the_rest_goes_on(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    good = make_file(6 * MiB, name="good.ckpt")
    bad = Path(os.fsdecode(os.fsencode(good.path.parent) + b"/caf\xe9.ckpt"))
    bad.write_bytes(b"x" * 1000)
    result = cli("upload", str(bad), str(good.path), "--json", "--files-at-once", "2")
    assert result.code == 1, result.stderr
    uploads = {Path(u["file"]).name: u for u in result.json()["uploads"]}
    assert uploads["good.ckpt"]["status"] == "completed", uploads
    assert object_sha256(s3, sandbox.bucket, uploads["good.ckpt"]["s3Key"]) == good.sha256
    [refused] = [u for u in uploads.values() if u["status"] == "failed"]
    assert "caf\\xe9.ckpt can't be uploaded: its name has bytes that aren't valid text" in refused["message"]
    assert "caf\\xe9.ckpt can't be uploaded" in result.stderr and "Traceback" not in result.stderr


def test_logging_a_name_that_is_not_text_neither_raises_nor_prints(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", True)  # configure_logging turns it off; restored after
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    log_file = tmp_path / "logs" / "app.log"
    configure_logging(log_file, console_level=logging.INFO)
    try:
        assert logging.raiseExceptions is False
        logging.getLogger("desktop_uploader.test").info("Uploading %s", os.fsdecode(b"caf\xe9.safetensors"))
        ours = next(h for h in root.handlers if getattr(h, "_desktop_uploader", False))
        assert isinstance(ours, logging.FileHandler)
        ours.flush()
        ours.stream.close()
        ours.stream = _FullDisk()  # a handler that can't write any more
        logging.getLogger("desktop_uploader.test").info("after the log file broke")
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_desktop_uploader", False)]:
            root.removeHandler(handler)
            handler.close()
    assert "Uploading caf\\udce9.safetensors" in log_file.read_text(encoding="utf-8")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert "after the log file broke" in err, "the other handler carried on"


class _FullDisk:
    def write(self, _: str) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


# ESC sequences (colour, an OSC 8 link, a window title), a carriage return, rich markup and an emoji code
# (a file name can't hold '/', so no closing tag here; the missing file below has one).
HOSTILE = "a\x1b[31mred\x1b]8;;evil.example\x07[bold]b[red]:smile:\r\x1b]0;title\x07.ckpt"
HOSTILE_SHOWN = "a\\x1b[31mred\\x1b]8;;evil.example\\x07[bold]b[red]:smile:\\r\\x1b]0;title\\x07.ckpt"


def test_names_are_printed_escaped_never_as_terminal_control_or_markup(cli: Any, make_file: Any) -> None:
    sample = make_file(1000, name=HOSTILE)
    result = cli("upload", str(sample.path))
    assert result.code == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\r" not in stream and "😄" not in stream
    summary = result.stdout.splitlines()
    assert summary[1].startswith(f"✓ {HOSTILE_SHOWN}  (presigned-s3, 1000 B"), summary
    assert HOSTILE_SHOWN[:30] in result.stderr, "the progress bar shows the name escaped too"

    missing = cli("upload", "[/bold]gone.safetensors")
    assert missing.code == 2, missing.stderr
    assert missing.stderr == "desktop-uploader: [/bold]gone.safetensors: no such file or folder.\n"


def test_list_shows_a_hostile_name_and_server_message_escaped(cli: Any) -> None:
    state = StateStore.open(cli.home / "data" / "uploads.sqlite3")
    state.create(
        UploadRecord(
            id="feedfacefeedface",
            path="/nowhere/x.ckpt",
            display_name=HOSTILE,
            identity=FileIdentity(10, 1, "a", "b"),
            method="presigned-s3",
            server=cli.api.server_id,
            status="failed",
            message="[red]\x1b]0;storage said\x07",
        )
    )
    state.close()
    result = cli("list")
    assert result.code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    [row] = [line for line in result.stdout.splitlines() if line.startswith("│ feedface")]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[1] == f"x.ckpt “{HOSTILE_SHOWN}”" and cells[4] == "failed", cells  # its file, and its chosen name
    [reason] = [line for line in result.stdout.splitlines() if line.startswith("feedface")]
    assert reason == "feedface: [red]\\x1b]0;storage said\\x07"  # under the table, escaped


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.without_upload_api("refused by the CLI before any server is asked")
def test_a_pipe_a_device_or_a_socket_is_refused_for_what_it_is(cli: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with socket.socket(socket.AF_UNIX) as listening:
        sock = tmp_path / "s.ckpt"
        listening.bind(str(sock))
        for path, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a device"), (sock, "a socket")):
            result = cli("upload", str(path))
            assert result.code == 2, result.stderr
            assert (
                result.stderr
                == f"desktop-uploader: {path} is {kind}, not a file; only regular files can be uploaded.\n"
            )


def test_an_empty_file_is_uploaded_after_a_warning(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    empty = make_file(0, name="empty.ckpt")
    result = cli("upload", str(empty.path), "--json")
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed"
    assert "empty.ckpt: This file is empty (0 bytes)" in result.stderr, "said on stderr with --json too"
    assert s3.head_object(Bucket=sandbox.bucket, Key=upload["s3Key"])["ContentLength"] == 0
    human = cli("upload", str(empty.path))
    assert human.code == 0, human.stderr
    assert "empty.ckpt: This file is empty (0 bytes); it will be uploaded as it is." in human.stderr
    [bar] = [line for line in human.stderr.splitlines() if line.startswith("empty.ckpt ") and "done" in line]
    assert " 0 B " in bar and "1/1" not in bar, bar  # its bar's total is 1 so that it fills; it read "1/1 bytes"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
def test_the_engine_refuses_a_pipe_dropped_on_the_app(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    state = StateStore.open(tmp_path / "state.sqlite3")
    manager = UploadManager(Settings(), state, None)
    try:
        with pytest.raises(FileUnreadableError, match=r"pipe.safetensors can't be uploaded: it is a named pipe"):
            manager.add(fifo)
        assert manager.jobs() == []
    finally:
        manager.close()
        state.close()


def test_a_cut_short_safetensors_file_is_refused_unless_sent_anyway(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    whole = make_file(3 * MiB, name="whole.safetensors")
    cut = make_file(3 * MiB, name="cut.safetensors")
    with open(cut.path, "r+b") as handle:
        handle.truncate(2 * MiB)  # a download that stopped two thirds of the way
    result = cli("upload", str(cut.path), str(whole.path), "--json")
    assert result.code == 1, result.stderr
    uploads = {Path(u["file"]).name: u for u in result.json()["uploads"]}
    assert uploads["whole.safetensors"]["status"] == "completed"
    assert uploads["cut.safetensors"] == {
        "file": str(cut.path),
        "status": "failed",
        "message": "cut.safetensors was not uploaded because it looks damaged. It is 2.0 MiB, but its header "
        "describes 3.0 MiB. It looks cut short, like a download that did not finish.",
    }
    assert "To upload it as it is, add --send-anyway." in result.stderr

    only = cli("upload", str(cut.path))
    assert only.code == 1 and "looks damaged" in only.stderr and "Traceback" not in only.stderr

    sent = cli("upload", str(cut.path), "--send-anyway", "--json")
    assert sent.code == 0, sent.stderr
    [upload] = sent.json()["uploads"]
    assert upload["status"] == "completed" and upload["s3Key"].endswith("cut.safetensors")
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == hashlib.sha256(cut.path.read_bytes()).hexdigest()
    assert "cut.safetensors looks damaged. It is 2.0 MiB" in sent.stderr and "Sending it anyway" in sent.stderr


@pytest.mark.without_upload_api("help text only")
def test_the_help_explains_send_anyway(cli: Any) -> None:
    result = cli("upload", "--help")
    assert "--send-anyway" in result.stdout and "incomplete or damaged" in result.stdout


@pytest.mark.without_upload_api("the configured server does not exist")
def test_the_self_test_prints_a_hostile_server_address_escaped(cli: Any) -> None:
    from desktop_uploader.engine.settings import save_settings

    save_settings(cli.home / "config" / "settings.json", Settings(server_url="http://evil\x1b]0;title\x07.example"))
    result = cli("--self-test", server=False, env={"QT_QPA_PLATFORM": "offscreen"})
    assert result.code == 1
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "FAILED: a server is configured (http://evil\\x1b]0;title\\x07.example)" in result.stdout, result.stdout


def test_a_file_named_like_an_option_is_told_how_to_name_it(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    """A CLI audit's "-x.ckpt" got "the following arguments are required: FILE|DIR" and no way forward."""
    dashed = make_file(1 * MiB, name="-x.ckpt")
    told = cli("upload", "-x.ckpt", cwd=dashed.path.parent)
    assert told.code == 2
    assert "To upload -x.ckpt, write it as ./-x.ckpt" in told.stderr, told.stderr
    done = cli("upload", "./-x.ckpt", "--json", cwd=dashed.path.parent)  # the advice, followed
    assert done.code == 0, done.stderr
    [upload] = done.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == dashed.sha256


def test_a_link_is_uploaded_under_its_own_name_as_in_a_hugging_face_snapshot(
    cli: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """Hugging Face keeps a snapshot's files as links into ``blobs/``: resolved, ``model.safetensors`` became a
    file named by its hash, refused as "of type '(none)'", and a snapshot folder as holding no models."""
    blob = tmp_path / "hub" / "blobs" / "3f2a9c0d1e7b"
    sha256 = write_safetensors(blob, 6 * MiB)
    snapshot = tmp_path / "hub" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    link = snapshot / "model.safetensors"
    link.symlink_to(os.path.relpath(blob, snapshot))
    for given in (link, snapshot):
        result = cli("upload", str(given), "--json")
        assert result.code == 0, result.stderr
        [upload] = result.json()["uploads"]
        assert upload["status"] == "completed" and upload["s3Key"].endswith("_model.safetensors"), upload
        assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sha256


@pytest.mark.fastapi_only("what a folder holds is read on this computer, the same before any server")
def test_a_folder_that_cant_be_opened_is_said_so_not_called_empty(
    cli: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A CLI audit, as another user, was told "no files in this folder" of a folder it had no permission to
    open: walking skips what it can't open without a word."""
    models = tmp_path / "models"
    sha256 = write_safetensors(models / "a.safetensors", 6 * MiB)
    write_safetensors(models / "locked" / "b.safetensors", 6 * MiB)
    write_safetensors(tmp_path / "closed" / "c.safetensors", 6 * MiB)
    (models / "locked").chmod(0)
    (tmp_path / "closed").chmod(0)
    command = [sys.executable, "-m", "desktop_uploader", "upload"]

    def as_another_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*without_the_power_to_ignore_permissions(), *command, *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=cli.env(),
            check=False,
        )

    try:
        inside = as_another_user("--json", str(models))
        told = as_another_user(str(models / "a.safetensors"), str(models / "locked"))
        closed = as_another_user("--json", str(tmp_path / "closed"))
    finally:
        (models / "locked").chmod(0o755)
        (tmp_path / "closed").chmod(0o755)
    said = " ".join(inside.stderr.split())
    assert "Couldn't look inside models/locked: permission denied." in said
    assert "no files" not in said
    # What could be read still goes; what the folder holds didn't, so the command doesn't end as if all had.
    assert inside.returncode == 1, inside.stderr
    report = json.loads(inside.stdout)
    [upload] = report["uploads"]
    assert Path(upload["file"]).name == "a.safetensors" and upload["status"] == "completed"
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sha256
    [folder] = report["unsearchedFolders"]
    assert folder["folder"] == str(models / "locked") and folder["status"] == "failed"
    # Without --json, the summary ends saying so: the first warning scrolled away above the bars.
    assert told.returncode == 1, told.stderr
    summary = " ".join(told.stdout.split())
    assert summary.startswith("1 of 1 uploaded"), summary
    assert summary.endswith(f"Couldn't look inside {models / 'locked'}: permission denied. Nothing in it was sent.")
    said = " ".join(closed.stderr.split())
    assert closed.returncode == 2, closed.stderr
    assert f"Couldn't look inside {tmp_path.name}/closed: permission denied." in said
    assert "Nothing to upload." in said and "no files" not in said


def test_a_long_name_in_a_wide_script_is_stored_shortened_not_failed_at_the_end(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """An odd-inputs audit: 76 CJK characters (240 bytes, legal on ext4) passed a cap counted in characters,
    were sent in full, and failed at completion on every try: SeaweedFS's "entry name too long"."""
    wide = make_file(6 * MiB + 1, name="模" * 76 + ".safetensors")
    done = cli("upload", str(wide.path), "--json")
    assert done.code == 0, done.stderr
    [upload] = done.json()["uploads"]
    stored = upload["s3Key"].rsplit("/", 1)[-1]
    assert len(stored.encode()) <= 255 and stored.endswith("模.safetensors")
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == wide.sha256


def test_a_name_that_is_only_its_type_is_stored_as_unnamed(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    """ "_.safetensors" lost its type to the name's cleaning and was refused as a file "without a type"."""
    bare = make_file(1 * MiB, name="_.safetensors")
    done = cli("upload", str(bare.path), "--json")
    assert done.code == 0, done.stderr
    [upload] = done.json()["uploads"]
    assert upload["s3Key"].endswith("_unnamed.safetensors")
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == bare.sha256


def test_a_file_given_twice_by_two_names_is_sent_once_and_said(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """An odd-inputs audit gave a file and a link to it: one was sent, and the other never mentioned."""
    top = make_file(1 * MiB, name="top.safetensors")
    link = top.path.parent / "link-to-top.safetensors"
    link.symlink_to(top.path.name)
    result = cli("upload", str(top.path), str(link), str(top.path), "--json")
    assert result.code == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "link-to-top.safetensors is the same file as top.safetensors; it is sent once." in said
    assert "top.safetensors was given twice; it is sent once." in said
    [upload] = result.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == top.sha256


def test_a_type_with_a_look_alike_letter_is_named_for_it(cli: Any, make_file: Any) -> None:
    """An odd-inputs audit's ".safetensоrs" (a Cyrillic о) was refused as "Files of type '.safetensоrs' are
    not accepted. Allowed types: .safetensors, …", which reads as refusing the very type it allows."""
    odd = make_file(1 * MiB, name="lora.safetens\u043ers")
    result = cli("upload", str(odd.path), "--json")
    assert result.code == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert (
        "lora.safetens\u043ers: Its type, .safetens\u043ers, has characters that only look like plain letters: "
        "\u043e (cyrillic small letter o). Rename the file with plain letters to upload it as a model." in said
    ), said
    [upload] = result.json()["uploads"]
    assert upload["status"] == "failed"
