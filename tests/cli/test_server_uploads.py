"""Unfinished uploads on the server after the local resume store was lost: listed, discarded, continued.

Each test has a user of its own (on FastAPI, an API server over the sandbox's real SeaweedFS with its
own token; on the Next.js route, a user added to it), so what the server lists is only what the test
left there.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.limits import MiB
from tests.cli.test_cli import wait_for_parts
from tests.support.api_servers import OwnUser, own_user_server
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.upload_apis import NEXTJS, UploadApi


@pytest.fixture
def user(upload_api: UploadApi, sandbox: Any, tmp_path: Path) -> Iterator[OwnUser]:
    if upload_api.kind == NEXTJS:  # already a user of its own
        yield OwnUser(upload_api.url, upload_api.token, upload_api.user_id)
        return
    with own_user_server(sandbox, tmp_path / "api") as own:
        yield own


def interrupted_upload(cli: Any, user: OwnUser, path: Path, parts: int = 2) -> None:
    """Start uploading ``path``, stop after ``parts`` parts are stored, then lose the local resume store."""
    running = cli.popen(
        "upload",
        str(path),
        "--chunk-size",
        "5MiB",
        "--concurrency",
        "2",
        "--bandwidth-limit",
        "2MiB",  # 20 s for 40 MiB: the stop lands mid-upload even when a busy machine is slow to see the parts
        env=user.env(),
    )
    wait_for_parts(cli.home, parts, running)
    running.send_signal(signal.SIGINT)
    running.communicate(timeout=60)
    assert running.returncode == 130, "paused by Ctrl-C"
    database = cli.home / "data" / "uploads.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"this is not a database any more")  # damaged: set aside, a fresh one is made


def test_list_shows_then_discard_removes_an_upload_the_lost_store_knew(
    cli: Any, user: OwnUser, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB, name="lost.safetensors")
    interrupted_upload(cli, user, sample.path)
    [open_upload] = open_multipart_uploads(s3, sandbox.bucket, user.prefix)

    listing = cli("list", "--json", env=user.env())
    assert listing.code == 0, listing.stderr
    assert listing.json()["uploads"] == []
    [found] = listing.json()["serverUploads"]
    assert found["source"] == "server" and found["displayName"] == "lost.safetensors"
    assert found["id"] == open_upload["UploadId"] and found["s3Key"] == open_upload["Key"]
    assert 10 * MiB <= found["stored"] < sample.size and found["startedAt"] is not None

    human = cli("list", env=user.env())
    assert human.code == 0, human.stderr
    assert "On the server, unknown to this computer" in human.stdout and "lost.safetensors" in human.stdout
    assert found["id"][:12] in human.stdout
    assert "upload the same file again" in human.stderr and "discard ID" in human.stderr

    discarded = cli("discard", found["id"][:12], env=user.env())
    assert discarded.code == 0, discarded.stderr
    assert "Discarded lost.safetensors" in discarded.stderr and "removed from the server" in discarded.stderr
    assert open_multipart_uploads(s3, sandbox.bucket, user.prefix) == []
    assert cli("list", "--json", env=user.env()).json()["serverUploads"] == []
    again = cli("discard", found["id"][:12], env=user.env())
    assert again.code == 2 and "matches no interrupted upload;" in again.stderr


def test_uploading_the_same_file_again_continues_the_upload_found_on_the_server(
    cli: Any, user: OwnUser, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB, name="again.safetensors")
    interrupted_upload(cli, user, sample.path, parts=3)
    [found] = cli("list", "--json", env=user.env()).json()["serverUploads"]
    stored = found["stored"]
    assert stored >= 15 * MiB

    done = cli("upload", str(sample.path), "--json", env=user.env())
    assert done.code == 0, done.stderr
    [result] = done.json()["uploads"]
    assert result["status"] == "completed"
    assert result["s3Key"] == found["s3Key"], "the upload found on the server was continued, not a new one"
    assert result["bytesSent"] <= sample.size - stored, "the parts already stored were not sent again"
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256
    objects = s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=user.prefix).get("Contents", [])
    assert [o["Key"] for o in objects] == [result["s3Key"]]
    assert open_multipart_uploads(s3, sandbox.bucket, user.prefix) == []
    assert cli("list", "--json", env=user.env()).json() == {
        "uploads": [],
        "owedAborts": [],
        "runningElsewhere": [],
        "serverUploads": [],
        "serverProblem": None,
    }


def test_a_different_file_with_the_same_name_is_not_continued_wrongly(
    cli: Any, user: OwnUser, make_file: Any, s3: Any, sandbox: Any
) -> None:
    first = make_file(40 * MiB, name="same.safetensors")
    interrupted_upload(cli, user, first.path)
    [found] = cli("list", "--json", env=user.env()).json()["serverUploads"]
    other = make_file(40 * MiB, name="same.safetensors", seed=1)  # the same name, other bytes
    assert other.sha256 != first.sha256

    done = cli("upload", str(other.path), "--json", env=user.env())
    assert done.code == 0, done.stderr
    [result] = done.json()["uploads"]
    assert result["s3Key"] != found["s3Key"] and result["bytesSent"] == other.size
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == other.sha256
    # The old upload is someone else's bytes: it stays, offered for discard, not silently aborted.
    [still] = cli("list", "--json", env=user.env()).json()["serverUploads"]
    assert still["id"] == found["id"]
    assert [u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, user.prefix)] == [found["id"]]


def test_a_seed_server_without_list_offers_nothing_and_says_nothing(
    cli: Any, user: OwnUser, make_file: Any, s3: Any, sandbox: Any, seed_api: Any
) -> None:
    sample = make_file(40 * MiB, name="seeded.safetensors")
    interrupted_upload(cli, user, sample.path)
    with seed_api(user) as seed:
        listing = cli("list", "--json", env=seed.env())
        assert listing.code == 0, listing.stderr
        assert listing.json() == {
            "uploads": [],
            "owedAborts": [],
            "runningElsewhere": [],
            "serverUploads": [],
            "serverProblem": None,
        }
        human = cli("list", env=seed.env())
        assert human.code == 0 and "No interrupted uploads." in human.stderr
        assert "On the server" not in human.stdout and "could not be asked" not in human.stderr
        done = cli("upload", str(sample.path), "--json", env=seed.env())
        assert done.code == 0, done.stderr
    [result] = done.json()["uploads"]
    assert result["bytesSent"] == sample.size, "without list, nothing could be found to continue"
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256
    assert len(open_multipart_uploads(s3, sandbox.bucket, user.prefix)) == 1, "the old one is still there"


def test_a_refused_token_is_said_in_list_json_not_read_as_nothing_on_the_server(
    cli: Any, user: OwnUser, make_file: Any
) -> None:
    """A script reading ``serverUploads: []`` took a refused token for "nothing on the server" (a CLI audit)."""
    sample = make_file(40 * MiB, name="lost.safetensors")
    interrupted_upload(cli, user, sample.path)
    assert len(cli("list", "--json", env=user.env()).json()["serverUploads"]) == 1
    listing = cli("list", "--json", "--token", "not-the-token", env=user.env())
    assert listing.code == 0, "the local list, list's own job, is given"
    said = listing.json()
    assert said["serverUploads"] == []
    assert said["serverProblem"].startswith("The server could not be asked for unfinished uploads: ")
    assert "token" in said["serverProblem"].lower()
    assert " ".join(listing.stderr.split()) == said["serverProblem"]
