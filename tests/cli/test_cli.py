"""The command line as a user (or a script) meets it."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import secrets
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from desktop_uploader.cli import glue_values
from desktop_uploader.engine.fileid import identify
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import wait_until


def test_upload_a_folder_with_json_results(cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path) -> None:
    first = make_file(7 * MiB, name="a.safetensors")
    second = make_file(1 * MiB, name="nested/b.ckpt")
    (first.path.parent / "notes.txt").write_text("not a model")
    make_file(1000, name=".cache/aside.safetensors")
    result = cli("upload", str(first.path.parent), "--json", "--concurrency", "2")
    assert result.code == 0, result.stderr
    said = "Skipped the hidden file .cache/aside.safetensors. Hidden names start with a dot; name a file itself"
    assert said in " ".join(result.stderr.split())  # the terminal wraps it
    uploads = {Path(u["file"]).name: u for u in result.json()["uploads"]}
    assert set(uploads) == {"a.safetensors", "b.ckpt"}
    for sample in (first, second):
        entry = uploads[sample.path.name]
        assert entry["status"] == "completed" and entry["method"] == "presigned-s3"
        assert entry["comfyUIPath"].startswith(cli.api.comfyui_prefix)
        assert entry["networkVolumePath"] == f"s3://{sandbox.bucket}/{entry['s3Key']}"
        assert object_sha256(s3, sandbox.bucket, entry["s3Key"]) == sample.sha256


def test_human_output_and_the_log_explain_a_raised_part_size(cli: Any, make_file: Any, private_home: Path) -> None:
    sample = make_file(11 * MiB)
    result = cli("upload", str(sample.path), "--chunk-size", "512KiB")
    assert result.code == 0, result.stderr
    assert "1 of 1 uploaded" in result.stdout and "ComfyUI: /runpod-volume/loras/" in result.stdout
    assert re.search(rf"✓ {sample.path.name}  \(presigned-s3, 11\.0 MiB in \d+\.\d s\)", result.stdout), result.stdout
    assert "below the 5.0 MiB minimum" in result.stderr
    log = (private_home / "logs" / "desktop-uploader.log").read_text()
    assert "Chunk size 512.0 KiB is below the 5.0 MiB minimum" in log
    assert "presigned-s3 upload of 11534336 bytes in 3 parts of 5242880 bytes" in log
    assert "part size 524288 bytes as set (before S3's limits); parts in flight on Auto" in log  # who chose what
    assert "completed via presigned-s3" in log


def test_a_corrupt_state_file_does_not_stop_the_cli(
    cli: Any, make_file: Any, private_home: Path, s3: Any, sandbox: Any
) -> None:
    state = private_home / "data" / "uploads.sqlite3"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\x00garbage" * 512)
    sample = make_file(2 * MiB)
    result = cli("upload", str(sample.path), "--json")
    assert result.code == 0, result.stderr
    assert "damaged and has been set aside" in result.stderr and "Traceback" not in result.stderr
    [kept] = [p for p in state.parent.glob("uploads.sqlite3.damaged-*") if not p.name.endswith(".reason")]
    assert kept.read_bytes() == b"\x00garbage" * 512, "the damaged file is kept as it was"
    assert kept.with_name(kept.name + ".reason").read_text().strip(), "with the reason beside it"
    [upload] = result.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, upload["s3Key"])
    assert cli("list").code == 0


@pytest.mark.without_upload_api("refused by the CLI before any server is asked")
def test_usage_errors_exit_2_with_a_sentence(cli: Any, make_file: Any, tmp_path: Path) -> None:
    sample = make_file(1000)
    for args, phrase in (
        (("upload", str(tmp_path / "missing.bin")), "no such file or folder"),
        (("upload", str(sample.path), str(tmp_path / "missing.bin")), "folder. Nothing was uploaded: check the name"),
        (("upload", str(sample.path), "--concurrency", "0"), "0 parts can't be sent: give at least 1"),
        (("upload", str(sample.path), "--concurrency", "many"), "'many' is not a number of parts"),
        (
            ("upload", str(sample.path), "--concurrency", "1000"),
            "--concurrency: 1000 parts at once is too many: give 1",
        ),
        (("upload", str(sample.path), "--preset", "Turbo"), "invalid choice: 'Turbo'"),
        (
            ("upload", str(sample.path), "--retries", "0"),
            "--retries counts the tries of each part, the first one included: give 1 (no retry) to 50; got 0.",
        ),
        (("upload", str(sample.path), "--retries", "51"), "--retries: Retries must be between 1 and 50"),
        (("upload", str(sample.path), "--files-at-once", "0"), "--files-at-once: Files at once must be between 1"),
        (  # an audit's upload at 5 bytes a second looked hung
            ("upload", str(sample.path), "--bandwidth-limit", "5"),
            "'5' has no unit; did you mean 5MB/s? Give one, as in 5MB/s, 4MiB/s or 40Mbit/s (0: no limit).",
        ),
        (("upload",), "required"),
        (("resume", "nope"), "'nope' matches no interrupted upload; see 'desktop-uploader list'."),
        (("list", "extra"), "desktop-uploader list: unrecognized arguments: extra See 'desktop-uploader list --help'."),
    ):
        result = cli(*args)
        assert result.code == 2, (args, result.stderr)
        assert phrase in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
        if "desktop-uploader upload:" in result.stderr:  # argparse's: one sentence, not the usage block
            assert "usage:" not in result.stderr and "See 'desktop-uploader upload --help'." in result.stderr


@pytest.mark.without_upload_api("nothing is configured, and nothing is started to be asked")
def test_discarding_a_mistyped_id_with_no_server_set_up_starts_nothing(cli: Any) -> None:
    """It started the sandbox, SeaweedFS and all, only to say the id matched nothing (a CLI audit)."""
    result = cli("discard", "nope", server=False)
    assert result.code == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert said == "desktop-uploader: 'nope' matches no interrupted upload; see 'desktop-uploader list'."
    assert not (cli.home / "data" / "sandbox").exists(), "the sandbox was started"


@pytest.mark.without_upload_api("refused by the CLI before any server is asked")
def test_a_link_that_leads_nowhere_is_named_as_a_link(cli: Any, tmp_path: Path) -> None:
    """The audit's loop was listed by ``ls`` and reported as "no such file"."""
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    (tmp_path / "gone.safetensors").symlink_to(tmp_path / "elsewhere" / "model.safetensors")
    loop = cli("upload", str(tmp_path / "a.safetensors"))
    assert loop.code == 2 and "a.safetensors is a link that leads back to itself" in " ".join(loop.stderr.split())
    dangling = cli("upload", str(tmp_path / "gone.safetensors"))
    assert dangling.code == 2
    assert f"gone.safetensors is a link to {tmp_path / 'elsewhere' / 'model.safetensors'}, which doesn't exist" in (
        " ".join(dangling.stderr.split())
    )


def upload_to_a_site(cli: Any, path: Path, handler: Any) -> tuple[str, Any]:
    """``upload`` with ``--server`` at a real web server on loopback that is not an upload API: its address
    (without a trailing slash) and the CLI's result."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{web.server_address[1]}"
            return url, cli("upload", str(path), "--server", url, "--token", "a-token-of-twenty-chars")
        finally:
            web.shutdown()


@pytest.mark.without_upload_api("the address given is a plain web server's")
def test_an_address_that_is_not_an_upload_server_is_said_at_once(cli: Any, make_file: Any, tmp_path: Path) -> None:
    """The audit's mistake: a web server's address, answered 501 to every POST, was "busy" and retried for 26 s."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    url, result = upload_to_a_site(cli, make_file(1000).path, handler)
    url += "/"
    assert result.code == 1
    said = " ".join(result.stdout.split())
    assert f"Nothing at {url}api/user/influencers/presigned-upload takes uploads (HTTP 501). Check the server " in said
    assert "address: the site's own (like https://example.com), or the upload route's full address." in said
    assert "busy" not in result.stdout + result.stderr


class WebPages(http.server.BaseHTTPRequestHandler):
    """A site that answers every request with its home page (as a single-page app's host does)."""

    asked: ClassVar[list[str]] = []

    def _page(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        WebPages.asked.append(f"{self.command} {self.path}")
        page = b"<!DOCTYPE html><html><body><h1>Welcome to our site</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_GET = do_POST = do_PUT = _page  # noqa: N815 - the names http.server calls

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.without_upload_api("the address given is a site that answers with its home page")
def test_an_address_answering_with_a_web_page_is_said_at_once(cli: Any, make_file: Any) -> None:
    """A Next.js audit's address answered 200 with an HTML page: "sent something that is not JSON to
    'capabilities'; it may be misconfigured or overloaded", after 13 s of retries."""
    WebPages.asked = []
    url, result = upload_to_a_site(cli, make_file(1000).path, WebPages)
    assert result.code == 1
    said = " ".join(result.stdout.split())
    route = f"{url}/api/user/influencers/presigned-upload"
    assert f"Nothing at {route} takes uploads (it answered with a web page, HTTP 200). Check the server " in said
    assert "JSON" not in result.stdout + result.stderr and "overloaded" not in result.stdout + result.stderr
    asked = [a for a in WebPages.asked if a.endswith("/presigned-upload")]
    assert len(asked) == len(set(asked)) == 2, WebPages.asked  # what it offers, then a start: each asked once


def test_a_mistyped_route_address_is_named_as_typed_with_the_ending_it_needs(
    cli: Any, make_file: Any, upload_api: Any
) -> None:
    """A Next.js audit typed the route's full address with one letter off, and read it back with the route's
    path pasted after it, told to give "the upload route's full address": as it had."""
    typed = f"{upload_api.url}/api/user/influencer/presigned-upload"
    result = cli("upload", str(make_file(1000).path), "--server", typed, "--token", upload_api.token)
    assert result.code == 1
    said = " ".join(result.stdout.split())
    assert f"Nothing at {typed} takes uploads (HTTP 404; the app asked {typed}/api/user/influencers/" in said, said
    assert "or the upload route's full address, which ends in /api/user/influencers/presigned-upload." in said


@pytest.mark.without_upload_api("the addresses given are the storage's, and the API's in the wrong scheme")
def test_the_storage_s_address_or_https_to_a_plain_server_is_said_for_what_it_is(
    cli: Any, make_file: Any, sandbox: Any
) -> None:
    """A CLI audit gave the sandbox's S3 port as --server ("The server refused capabilities (HTTP 403)") and
    https:// for a plain-HTTP server ("The secure connection to … broke")."""
    token = ["--token", "a-token-of-twenty-chars"]
    storage = cli("upload", str(make_file(1000).path), "--server", sandbox.s3_endpoint, *token)
    said = " ".join((storage.stdout + storage.stderr).split())
    assert storage.code == 1
    assert "answers as S3 storage (" in said and "not as an upload server: check the server address" in said, said
    secure = sandbox.api_url.replace("http://", "https://", 1)
    tls = cli("upload", str(make_file(1000).path), "--server", secure, *token)
    said = " ".join((tls.stdout + tls.stderr).split())
    assert tls.code == 1
    assert "does not answer secure connections: is its address http:// rather than https://?" in said, said


def test_a_wrong_token_fails_with_a_clear_message(cli: Any, make_file: Any) -> None:
    result = cli("upload", str(make_file(1000).path), env={"DESKTOP_UPLOADER_TOKEN": "wrong-token-wrong-token"})
    assert result.code == 1
    assert "did not accept your access token" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_token_that_starts_with_a_dash_is_taken_as_the_token(cli: Any, make_file: Any) -> None:
    """argparse read "--token -qXK…" as an option and refused it: one sandbox token in 64 starts so."""
    result = cli(
        "upload", str(make_file(1000).path), "--token", "-not-the-token", "--display-name", "-dash.safetensors"
    )
    assert result.code == 1, result.stdout + result.stderr
    assert "did not accept your access token" in result.stdout
    glued = glue_values(["--token", "-t", "--display-name", "x", "--token"])
    assert glued == ["--token=-t", "--display-name", "x", "--token"]


@pytest.mark.without_upload_api("refused by the CLI before any server is asked")
def test_a_token_without_a_server_is_refused_not_sent_to_the_sandbox(cli: Any, make_file: Any) -> None:
    """A CLI audit gave --token alone: the file went to the local sandbox instead, and the run said ✓, exit 0."""
    env = {"DESKTOP_UPLOADER_SERVER": "", "DESKTOP_UPLOADER_TOKEN": ""}
    result = cli("upload", str(make_file(1000).path), "--token", "my-token", server=False, env=env)
    assert result.code == 2, result.stdout + result.stderr
    assert "--token was given but no server: add --server URL (the sandbox needs none)." in result.stderr
    assert "sandbox (starting it" not in result.stdout + result.stderr, "the sandbox was not started"


@pytest.mark.without_upload_api("refused by the CLI before any server is asked")
def test_an_unreadable_file_fails_with_a_clear_message(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    (folder / "inner.bin").write_bytes(b"x")
    fifo_like = tmp_path / "gone.safetensors"
    result = cli("upload", str(fifo_like))
    assert result.code == 2 and "no such file" in result.stderr


def stored_parts(home: Path) -> int:
    database = home / "data" / "uploads.sqlite3"
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM parts").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def wait_for_parts(home: Path, count: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    def stored() -> bool:
        assert process.poll() is None, process.communicate()
        return stored_parts(home) >= count

    wait_until(stored, timeout, f"{count} parts stored")


def stopped_midway(cli: Any, path: Path, signum: int = signal.SIGINT) -> tuple[int, str, str]:
    """An upload stopped by ``signum`` once two parts are stored: its exit code, stdout and stderr.

    20 s at 2 MiB/s, so the signal lands mid-upload even when a busy machine is slow to notice two parts.
    """
    running = cli.popen("upload", str(path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB")
    wait_for_parts(cli.home, 2, running)
    running.send_signal(signum)
    out, err = running.communicate(timeout=60)
    return running.returncode, out, err


def test_ctrl_c_pauses_then_list_and_discard(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    sample = make_file(40 * MiB)
    code, out, err = stopped_midway(cli, sample.path)
    assert code == 130, err  # paused by the person, as a shell reports Ctrl-C; not "failed"
    assert (
        "Pausing… (what is stored is kept; how to go on follows)" in err
        and "Resume with: desktop-uploader resume" in out
    )
    assert "--all" not in err + out, "the hint names this upload, not every one on the computer (a CLI audit)"
    kept = re.search(r"\(paused, presigned-s3\) · ([\d.]+) MiB of 40\.0 MiB stored", out)
    assert kept is not None, out

    listing = cli("list", "--json")
    assert listing.code == 0
    [record] = listing.json()["uploads"]
    assert record["file"] == str(sample.path) and record["status"] == "paused"
    assert 10 * MiB <= record["stored"] < sample.size
    assert f"{record['stored'] / MiB:.1f}" == kept.group(1)  # what the pause said is what the record holds
    assert open_multipart_uploads(s3, sandbox.bucket, record["s3Key"])
    human = cli("list")
    assert record["id"][:8] in human.stdout and "Resume with" in human.stderr

    discarded = cli("discard", record["id"][:8])
    assert discarded.code == 0, discarded.stderr
    assert "removed from the server" in discarded.stderr
    assert not open_multipart_uploads(s3, sandbox.bucket, record["s3Key"])
    listing = cli("list", "--json").json()
    assert (listing["uploads"], listing["owedAborts"]) == ([], [])


@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)], ids=["term", "hup"])
def test_a_stop_signal_pauses_like_ctrl_c_and_says_so_in_its_exit_code(
    cli: Any, make_file: Any, signum: signal.Signals
) -> None:
    """``kill`` (or a shutdown) ended a CLI audit's upload without a word, its parts in flight lost; so did
    closing the terminal window (SIGHUP)."""
    sample = make_file(40 * MiB)
    code, out, err = stopped_midway(cli, sample.path, signum)
    assert code == 128 + signum, err
    assert "Pausing" in err and "Resume with: desktop-uploader resume" in out
    kept = re.search(r"\(paused, presigned-s3\) · ([\d.]+) MiB of 40\.0 MiB stored", out)
    assert kept is not None and float(kept.group(1)) >= 10, out
    [paused] = cli("list", "--json").json()["uploads"]
    assert paused["stored"] == float(kept.group(1)) * MiB
    assert cli("discard", paused["id"]).code == 0  # the bucket is shared: leave no upload open in it


def test_list_says_why_an_upload_stopped_in_a_whole_sentence_under_its_table(
    cli: Any, make_file: Any, tmp_path: Path
) -> None:
    """The reason sat in the State column, folded a word a line beside a folded file name (a CLI audit)."""
    sample = make_file(40 * MiB, name=f"moved-{secrets.token_hex(4)}.safetensors")
    stopped_midway(cli, sample.path)
    [paused] = cli("list", "--json").json()["uploads"]
    aside = sample.path.rename(tmp_path / "aside.bin")
    moved = cli("resume", paused["id"])
    assert moved.code == 1 and "Going on with" not in moved.stdout + moved.stderr, (
        "a resume audit read it, then why not"
    )

    human = cli("list")
    [row] = [line for line in human.stdout.splitlines() if line.startswith("│ " + paused["id"][:8])]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[4] == "failed", cells
    assert cells[1] == sample.path.name, "the file's own name, its extension too (the display name was ambiguous)"
    said = (
        f"{paused['id'][:8]}: {sample.path.name} was deleted or moved. "
        "Put it back to go on, or discard the upload to delete any of it already stored."
    )
    assert said in " ".join(human.stdout.split())
    aside.rename(sample.path)
    discarded = cli("discard", paused["id"])  # the bucket is shared: leave no upload open in it
    assert discarded.code == 0, discarded.stderr
    said = " ".join((discarded.stdout + discarded.stderr).split())
    assert f"Discarded {sample.path.name};" in said, "named as 'list' names it, its type too (it read 'moved-…;')"


def test_the_same_upload_run_again_after_ctrl_c_goes_on_where_it_stopped(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A first-time user runs the same command again rather than ``resume``: that must not store the file twice."""
    sample = make_file(40 * MiB, name=f"again-{secrets.token_hex(4)}.safetensors")  # the bucket is shared
    stopped_midway(cli, sample.path)
    [paused] = cli("list", "--json").json()["uploads"]

    again = cli("upload", str(sample.path))
    assert again.code == 0, again.stderr
    assert f"Going on with {sample.path.name} where it stopped" in again.stderr
    assert f"{paused['stored'] // MiB}.0 MiB of 40.0 MiB already stored" in again.stderr
    # A resume audit read "40.0 MiB in 5.8 s" as this run's speed: the summary says what this run sent.
    took = re.search(
        rf"✓ {sample.path.name}  \(presigned-s3, 40\.0 MiB; ([\d.]+) MiB sent in [\d.]+ s, the rest", again.stdout
    )
    assert took is not None, again.stdout
    assert float(took.group(1)) <= (sample.size - paused["stored"]) / MiB
    stored = s3.list_objects_v2(Bucket=sandbox.bucket).get("Contents", [])
    assert [o["Key"] for o in stored if o["Key"].endswith(sample.path.name)] == [paused["s3Key"]]
    assert f"S3:      s3://{sandbox.bucket}/{paused['s3Key']}" in again.stdout
    assert object_sha256(s3, sandbox.bucket, paused["s3Key"]) == sample.sha256
    # This file's keys only: the bucket is shared with tests that may leave an upload open on purpose.
    assert open_multipart_uploads(s3, sandbox.bucket, paused["s3Key"]) == []
    listing = cli("list", "--json").json()
    assert (listing["uploads"], listing["owedAborts"]) == ([], [])


def test_an_upload_running_in_one_process_cannot_be_resumed_or_discarded_by_another(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB)
    # 40 s at 1 MiB/s: the two CLI runs below take seconds each on a busy machine, and must see it running.
    running = cli.popen(
        "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "1MiB"
    )
    try:
        wait_for_parts(cli.home, 1, running)
        assert cli("list", "--json").json()["uploads"] == [], "a running upload is not 'interrupted'"
        resumed = cli("resume", "--all")
        assert resumed.code == 0 and "Nothing to resume" in resumed.stderr
    finally:
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=60)
    [record] = cli("list", "--json").json()["uploads"]  # paused now: resumable from here
    finished = cli("resume", record["id"], "--json")
    assert finished.code == 0, finished.stderr
    going_on = re.search(
        r"Going on with (\S+) where it stopped: ([\d.]+) MiB of 40\.0 MiB already stored\.", finished.stderr
    )
    assert going_on and float(going_on[2]) >= 5, finished.stderr  # what was kept, said before the rest is sent
    assert going_on[1] == sample.path.name, 'the file\'s name, as "upload" says it (an audit saw it without .ckpt)'
    [result] = finished.json()["uploads"]
    assert result["s3Key"] == record["s3Key"], "the same upload went on; no second one was started"
    assert result["bytesSent"] <= result["size"] - 5 * MiB, "this run's bytes: not the part stored before"
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, result["s3Key"])


def test_an_upload_whose_process_was_killed_is_listed_as_interrupted(cli: Any, make_file: Any) -> None:
    sample = make_file(40 * MiB)
    # 40 s at 1 MiB/s: still running when the first part is stored, whatever the machine's load.
    running = cli.popen(
        "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "1MiB"
    )
    try:
        wait_for_parts(cli.home, 1, running)
    finally:
        running.kill()  # SIGKILL: the record stays "active", and nobody is left to say otherwise
        running.communicate(timeout=60)
    [record] = cli("list", "--json").json()["uploads"]
    assert record["file"] == str(sample.path) and record["status"] == "interrupted"
    human = cli("list")
    [row] = [line for line in human.stdout.splitlines() if record["id"][:8] in line]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[4] == "interrupted", cells
    assert "active" not in human.stdout and "Resume with" in human.stderr
    finished = cli("resume", record["id"], "--json")
    assert finished.code == 0, finished.stderr


def test_a_resumed_upload_whose_process_was_killed_is_listed_as_interrupted_not_paused(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A big-file audit paused with Ctrl-C, resumed, and killed the resume: 'list' said "paused"."""
    sample = make_file(40 * MiB)
    code, _, _ = stopped_midway(cli, sample.path)
    assert code == 130
    [paused] = cli("list", "--json").json()["uploads"]
    assert paused["status"] == "paused"
    resuming = cli.popen("resume", paused["id"], "--bandwidth-limit", "1MiB")
    try:
        wait_for_parts(cli.home, stored_parts(cli.home) + 1, resuming)
    finally:
        resuming.kill()
        resuming.communicate(timeout=60)
    [killed] = cli("list", "--json").json()["uploads"]
    assert (killed["id"], killed["status"], killed["message"]) == (paused["id"], "interrupted", "")
    finished = cli("resume", killed["id"], "--json")
    assert finished.code == 0, finished.stderr
    [result] = finished.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256


def test_self_test_against_a_configured_server(cli: Any) -> None:
    from desktop_uploader.engine.settings import Settings, save_settings

    (cli.home / "config").mkdir(parents=True, exist_ok=True)
    save_settings(cli.home / "config" / "settings.json", Settings(server_url=cli.api.url))
    passed = cli("--self-test", env={"QT_QPA_PLATFORM": "offscreen"})
    assert passed.code == 0, passed.stdout + passed.stderr
    assert f"server: {cli.api.url}" in passed.stdout
    assert "PASSED: storage's multipart ETag matches the file's parts" in passed.stdout
    failed = cli("--self-test", env={"QT_QPA_PLATFORM": "offscreen", "DESKTOP_UPLOADER_TOKEN": "wrong-token-1234567"})
    assert failed.code == 1 and "FAILED:" in failed.stdout and "access token" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr


def test_self_test_against_a_seed_server_says_what_it_could_not_check(
    cli: Any, sandbox: Any, s3: Any, seed_api: Any
) -> None:
    from desktop_uploader.engine.settings import Settings, save_settings

    (cli.home / "config").mkdir(parents=True, exist_ok=True)
    with seed_api() as seed:
        save_settings(cli.home / "config" / "settings.json", Settings(server_url=seed.url))
        checked = cli("--self-test", env={"QT_QPA_PLATFORM": "offscreen", **seed.env()})
    assert checked.code == 0, checked.stdout + checked.stderr
    assert f"server: {seed.url}" in checked.stdout and "FAILED" not in checked.stdout
    assert (
        "PASSED: stored; this server doesn't report the stored object's checksum, "
        "so the bytes couldn't be compared end to end" in checked.stdout
    )
    [stored] = [line.split("stored as ", 1)[1].strip() for line in checked.stdout.splitlines() if "stored as " in line]
    key = stored.split(f"s3://{sandbox.bucket}/", 1)[1]
    assert s3.head_object(Bucket=sandbox.bucket, Key=key)["ContentLength"] == 12 * MiB + 12345


def test_an_abort_owed_to_another_server_is_listed_and_kept_by_a_session_elsewhere(
    cli: Any, make_file: Any, private_home: Path
) -> None:
    """The CLI's sweep used to send it to the connected server, read "no such upload" as done, and drop it."""
    sample = make_file(1 * MiB, name="given-up-elsewhere.safetensors")
    unanswered = make_file(1 * MiB, name="unanswered-start.safetensors")
    state = StateStore.open(private_home / "data" / "uploads.sqlite3")
    # Given up, its upload known; and a start answered with a 502, which may or may not have made one there.
    for number, (path, upload_id) in enumerate([(sample.path, "held-by-the-other-server"), (unanswered.path, "")]):
        state.create(
            UploadRecord(
                id=f"{number:032x}",
                path=str(path),
                display_name=path.name,
                identity=identify(path),
                method="presigned-s3",
                server="https://uploads.example.com",
                status=OWED_ABORT,
                upload_id=upload_id,
                s3_key=f"loras/u/{path.name}",
            )
        )
    state.close()

    assert cli("upload", str(make_file(1 * MiB, name="today.safetensors").path)).code == 0
    listing = " ".join(cli("list").stderr.split())
    assert "1 partial upload given up here is still to be removed from https://uploads.example.com" in listing
    assert (
        "1 upload start that got no clear answer may have left a partial upload on https://uploads.example.com: "
        "it is looked for and removed the next time the app connects there." in listing
    )
    assert "discarded" not in listing, "a Next.js audit had discarded nothing"
    owed = cli("list", "--json").json()["owedAborts"]
    assert {o["file"] for o in owed} == {sample.path.name, unanswered.path.name}
