"""Trouble behind the upload server is told in the server's own words, with whom to tell."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.locks import UploadLocks
from tests.cli.test_cli import wait_for_parts
from tests.engine.test_abort_ledger import OTHER_BUCKET
from tests.support.api_servers import api_server
from tests.support.logfail import STORAGE_REFUSED
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.mark.without_upload_api("a server of its own, whose storage refuses its keys")
@pytest.mark.allow_log(*STORAGE_REFUSED)
def test_a_server_whose_storage_refuses_its_keys_is_quoted_not_called_busy(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A Next.js audit's route, given a wrong S3 secret, answered "Storage answered with an error
    (SignatureDoesNotMatch)." with its 502; the app said only "busy or having trouble (HTTP 502 on start)"."""
    sample = make_file(6 * MiB, name=f"refused-keys-{uuid.uuid4().hex[:8]}.safetensors")
    with api_server(sandbox, tmp_path / "api", s3_secret_key="not-the-secret") as url:
        result = cli("upload", str(sample.path), "--server", url, "--token", sandbox.token, "--retries", "1")
    assert result.code == 1, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert (
        "The upload server reported a problem (while starting the upload): Storage answered with an error "
        "(SignatureDoesNotMatch). If this goes on, tell whoever runs that server." in said
    )
    assert "HTTP 502 on" not in said and "Traceback" not in said
    left = [
        u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") if sample.path.stem in u["Key"]
    ]
    assert left == []


@pytest.mark.without_upload_api("a redirect in front of the sandbox's own server")
@pytest.mark.parametrize("status", [301, 308])
def test_a_server_address_that_redirects_names_the_address_to_use(
    cli: Any, make_file: Any, sandbox: Any, status: int
) -> None:
    """A Next.js audit's site redirected (example.com → www.example.com): requests followed it without the
    token, and the app said "did not accept your access token" though the token was right."""
    sample = make_file(6 * MiB)
    with Proxy.start(sandbox.api_url) as moved:
        moved.set_fault_plan(
            lambda request: Respond(status, b"", {"Location": sandbox.api_url.rstrip("/") + request.path})
        )
        result = cli("upload", str(sample.path), "--server", moved.url, "--token", sandbox.token)
        assert moved.plan_errors == []
        asked = moved.stats.records()
    assert result.code == 1, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert (
        f"The server address {moved.url} redirects to {sandbox.api_url.rstrip('/')}: use that address instead." in said
    )
    assert "access token" not in said and "Traceback" not in said
    assert len(asked) == 1, "said at the first answer: not retried, no other method tried"


@pytest.mark.without_upload_api("a proxy in front of the sandbox's own server, which takes the lock at a set moment")
def test_an_upload_another_command_takes_while_resume_starts_is_said_not_a_crash(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A resume audit ran two ``resume --all`` half a second apart: the second listed the upload, the first
    took it while the second started, and the second ended in a KeyError ("Something went wrong").

    Here the other command is this test: it takes the upload's lock at the moment the resuming command
    makes its first request to the server (sending the abort an earlier discard still owes), which is
    after it listed the upload and before it takes it."""
    tag = uuid.uuid4().hex[:8]  # the sandbox is shared: these names, and what is left open, are this test's
    kept = make_file(40 * MiB, name=f"kept-{tag}.safetensors")
    given_up = make_file(40 * MiB, name=f"given-up-{tag}.safetensors")
    with Proxy.start(sandbox.api_url, peek_bytes=4096) as api:
        env = {"DESKTOP_UPLOADER_SERVER": api.url, "DESKTOP_UPLOADER_TOKEN": sandbox.token}
        for number, sample in enumerate((kept, given_up), start=1):
            running = cli.popen(
                "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB",
                env=env,
            )  # fmt: skip
            wait_for_parts(cli.home, 2 * number, running)
            running.send_signal(signal.SIGINT)
            running.communicate(timeout=60)
        listed = cli("list", "--json", env=env).json()["uploads"]
        uploads = {Path(u["file"]).name: u["id"] for u in listed}
        assert sorted(uploads) == [given_up.path.name, kept.path.name], listed
        refused = Respond(503, b'{"error": "not now"}')
        api.set_fault_plan(lambda request: refused if b'"abort"' in request.body else None)
        assert cli("discard", uploads[given_up.path.name], env=env).code == 1, "its abort is owed"

        locks = UploadLocks(cli.home / "data" / "locks")
        taken: list[Any] = []

        def take_when_asked(request: RequestInfo) -> None:
            if b'"abort"' in request.body and not taken:
                taken.append(locks.acquire(uploads[kept.path.name]))

        api.set_fault_plan(take_when_asked)
        try:
            result = cli("resume", "--all", env=env)
        finally:
            for lock in taken:
                lock.release()
        assert api.plan_errors == [] and taken, "the lock was taken between the listing and the resume"
        api.set_fault_plan(None)
        # Discarded as a person would: that also sends the abort the other one owes, on connecting.
        assert cli("discard", uploads[kept.path.name], env=env).code == 0
    said = " ".join((result.stdout + result.stderr).split())
    assert result.code == 1, said
    assert (
        f"'{uploads[kept.path.name][:8]}' ({kept.path.stem}) is being uploaded by another Desktop Uploader "
        "window or command right now" in said
    )
    assert "Something went wrong" not in said and "Going on with" not in said
    ours = [u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") if tag in u["Key"]]
    assert ours == [], "nothing of this test is left open in the shared sandbox"


@pytest.mark.without_upload_api("a second server of its own, on a bucket of its own")
def test_the_resume_hint_of_an_upload_started_on_another_server_names_that_server(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A Next.js audit's ``resume ID`` was told the upload's parts are on another server, "switch back to it",
    and then handed ``Resume with: desktop-uploader resume ID``, the command that had just failed."""
    if OTHER_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=OTHER_BUCKET)
    sample = make_file(40 * MiB, name=f"elsewhere-{uuid.uuid4().hex[:8]}.safetensors")
    with api_server(sandbox, tmp_path / "server-b", bucket=OTHER_BUCKET) as other:
        there = {"DESKTOP_UPLOADER_SERVER": other, "DESKTOP_UPLOADER_TOKEN": sandbox.token}
        running = cli.popen(
            "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB",
            env=there,
        )  # fmt: skip
        wait_for_parts(cli.home, 2, running)
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=60)
        [upload] = cli("list", "--json").json()["uploads"]

        here = cli("resume", upload["id"][:8])  # with the sandbox's server, not the one it started on
        assert here.code == 1, here.stderr
        said = " ".join((here.stdout + here.stderr).split())
        assert f"is stored on {other.rstrip('/')}, where its upload started" in said
        hint = f"Resume with: desktop-uploader resume {upload['id'][:8]} --server {other.rstrip('/')}"
        assert hint in said

        again = cli(*hint.removeprefix("Resume with: desktop-uploader ").split(), "--json", env=there)
    assert again.code == 0, again.stderr
    [done] = again.json()["uploads"]
    assert done["status"] == "completed"
    assert object_sha256(s3, OTHER_BUCKET, done["s3Key"]) == sample.sha256
    assert open_multipart_uploads(s3, OTHER_BUCKET, "loras/") == []


def test_a_token_pasted_with_its_bearer_word_is_taken(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    """A Next.js audit pasted the token as "Bearer …", copied from a request's header: "not accepted"."""
    sample = make_file(6 * MiB, name=f"bearer-{uuid.uuid4().hex[:8]}.safetensors")
    result = cli("upload", str(sample.path), "--server", cli.api.url, "--token", f"Bearer {cli.api.token} ", "--json")
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
