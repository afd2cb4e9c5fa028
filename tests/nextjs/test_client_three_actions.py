"""Our CLI against the route our users run: three actions (start, complete, abort), on AWS SDK v3.

Two routes, both for real under ``next start`` (tests/nextjs/conftest.py), their part URLs signed for a
counting proxy in front of SeaweedFS (``route.storage``), so what reaches storage is counted where the
bytes land:

* ``nextjs_original``: the SDK's default checksums pin ``x-amz-checksum-crc32=AAAAAA==`` (an empty body's)
  into every part URL. The upload must stop before a part goes, name the pin and the fix, and leave
  nothing open on the server.
* ``nextjs_three_fixed``: the same route with the one-line fix (WHEN_REQUIRED). Uploads store
  byte-identical, the self-test passes, a killed upload resumes with only its missing parts, and links
  that expire mid-upload (the route can't renew them) start the upload over once, with a notice.

Each check of storage looks only under the route's own users' keys (the bucket is shared).
"""

from __future__ import annotations

import calendar
import contextlib
import signal
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings, save_settings
from tests.cli.test_cli import wait_for_parts
from tests.support.nextjs_route import NextRoute, RouteUser, nextjs_route
from tests.support.proxy import Proxy, RequestInfo, RequestRecord
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import wait_until

RETRIED = ("retrying in", "failed (attempt")  # how the log says a part or an upload is tried again


def part_puts(storage: Proxy, name: str) -> list[RequestRecord]:
    """Every part PUT for the file ``name`` that storage received (the route names keys ``<user>_<ms>_<name>``)."""
    return [r for r in storage.stats.records("PUT") if "partNumber" in r.query and r.path.endswith(f"_{name}")]


def keys_of(s3: Any, bucket: str, user: RouteUser, name: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=user.prefix).get("Contents", [])
    return [o["Key"] for o in listed if o["Key"].endswith(f"_{name}")]


def open_uploads_of(s3: Any, bucket: str, user: RouteUser, name: str) -> list[dict[str, Any]]:
    return [u for u in open_multipart_uploads(s3, bucket, user.prefix) if u["Key"].endswith(f"_{name}")]


def stored_once(s3: Any, bucket: str, user: RouteUser, name: str, key: str, sha256: str) -> None:
    """The object has exactly the file's bytes, is the only one for that file, and nothing is left open."""
    assert object_sha256(s3, bucket, key) == sha256
    assert keys_of(s3, bucket, user, name) == [key], "exactly one object"
    assert not open_uploads_of(s3, bucket, user, name)


def app_log(home: Path) -> str:
    log = home / "logs" / "desktop-uploader.log"
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


# --- the route as it is today: the SDK's pinned checksum --------------------------------------------


def test_pinned_checksum_fails_at_once_naming_the_fix_and_leaves_nothing_open(
    cli: Any, make_file: Any, nextjs_original: NextRoute, s3: Any, sandbox: Any
) -> None:
    storage = nextjs_original.storage
    assert storage is not None
    name = "pinned.safetensors"
    sample = make_file(12 * MiB, name=name)  # three parts of 5 MiB, 5 MiB and 2 MiB

    result = cli("upload", str(sample.path), "--chunk-size", "5MiB", env=nextjs_original.cli_env())

    shown = result.stdout + result.stderr
    assert result.code != 0, shown
    assert "x-amz-checksum-crc32=AAAAAA==" in result.stdout, shown
    assert "requestChecksumCalculation: 'WHEN_REQUIRED'" in result.stdout, shown
    assert "damaged" not in shown
    assert "chunked" not in result.stdout, "reported under the method that failed, not the fallback it tried"
    assert len(part_puts(storage, name)) <= 1, "at most one part may reach storage"
    # That count means something: the route's part URLs do lead through the counting proxy.
    api = nextjs_original.api()
    probe = api.ok(api.presigned({"action": "start", "fileName": "probe.safetensors", "totalParts": 1}))
    api.ok(api.presigned({"action": "abort", "uploadId": probe["uploadId"], "s3Key": probe["s3Key"]}))
    assert urllib.parse.urlsplit(probe["presignedUrls"][0]).netloc == storage.address
    assert not open_uploads_of(s3, sandbox.bucket, nextjs_original.alice, name), "the upload was aborted"
    assert keys_of(s3, sandbox.bucket, nextjs_original.alice, name) == []
    log = app_log(cli.home)
    assert "x-amz-checksum-crc32=AAAAAA==" in log, log
    assert not [line for line in log.splitlines() if any(word in line for word in RETRIED)], "nothing was retried"
    assert "Traceback" not in shown


# --- the route with the one-line fix ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "name"),
    [
        (0, "empty.bin"),
        (1, "one-byte.bin"),
        (6 * MiB, "six.safetensors"),
        (64 * MiB, "sixty-four.safetensors"),
        (300 * MiB, "three-hundred.safetensors"),  # 60 parts; about 8 s here through the proxy, checks included
    ],
)
def test_files_store_byte_identical(
    cli: Any, make_file: Any, nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any, size: int, name: str
) -> None:
    sample = make_file(size, name=name)
    result = cli("upload", str(sample.path), "--json", "--chunk-size", "5MiB", env=nextjs_three_fixed.cli_env())
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed" and upload["method"] == "presigned-s3", upload
    stored_once(s3, sandbox.bucket, nextjs_three_fixed.alice, name, upload["s3Key"], sample.sha256)
    assert s3.head_object(Bucket=sandbox.bucket, Key=upload["s3Key"])["ContentLength"] == size


@pytest.mark.parametrize("set_in", ["settings", "environment"])
def test_self_test_passes(cli: Any, nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any, set_in: str) -> None:
    """Set only in the environment, the server was used while the self-test said "none configured, so a
    private local sandbox" (a first-time user's audit)."""
    if set_in == "settings":
        (cli.home / "config").mkdir(parents=True, exist_ok=True)
        save_settings(cli.home / "config" / "settings.json", Settings(server_url=nextjs_three_fixed.url))
    env = {"QT_QPA_PLATFORM": "offscreen", **nextjs_three_fixed.cli_env()}
    passed = cli("--self-test", env=env)
    assert passed.code == 0, passed.stdout + passed.stderr
    assert f"server: {nextjs_three_fixed.url}" in passed.stdout and "none configured" not in passed.stdout
    assert "(the test file stays there: delete it when you like)" in passed.stdout
    # The original route's complete says no etag: the self-test says what it could not compare, and no more.
    assert (
        "PASSED: stored; this server doesn't report the stored object's checksum, "
        "so the bytes couldn't be compared end to end" in passed.stdout
    ), passed.stdout
    [stored] = [line.split("stored as ", 1)[1].strip() for line in passed.stdout.splitlines() if "stored as " in line]
    key = stored.split(f"s3://{sandbox.bucket}/", 1)[1]
    assert key.startswith(nextjs_three_fixed.alice.prefix)
    assert s3.head_object(Bucket=sandbox.bucket, Key=key)["ContentLength"] == 12 * MiB + 12345


def recorded_parts(home: Path) -> set[int]:
    """The parts the killed upload's resume record holds: what it knows storage has."""
    with contextlib.closing(sqlite3.connect(home / "data" / "uploads.sqlite3", timeout=5)) as db:
        return {int(row[0]) for row in db.execute("SELECT number FROM parts")}


def test_a_killed_upload_resumes_sending_only_the_missing_parts(
    cli: Any, make_file: Any, nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any
) -> None:
    storage = nextjs_three_fixed.storage
    assert storage is not None
    name = "killed.safetensors"
    sample = make_file(40 * MiB, name=name)  # 8 parts of 5 MiB
    env = nextjs_three_fixed.cli_env()
    flags = ("--chunk-size", "5MiB", "--concurrency", "1")
    running = cli.popen("upload", str(sample.path), *flags, "--bandwidth-limit", "2MiB", env=env)
    try:
        wait_for_parts(cli.home, 2, running)
    finally:
        running.send_signal(signal.SIGKILL)
        running.communicate(timeout=60)
    # The part on its way when the process died has reached its end at the proxy, one way or the other.
    wait_until(lambda: storage.active_connections == 0, 30, "the killed upload's connections to end")
    known = recorded_parts(cli.home)
    [before] = open_uploads_of(s3, sandbox.bucket, nextjs_three_fixed.alice, name)
    listed = s3.list_parts(Bucket=sandbox.bucket, Key=before["Key"], UploadId=before["UploadId"])
    at_storage = {p["PartNumber"] for p in listed.get("Parts", [])}
    assert known and known <= at_storage, (known, at_storage)
    assert len(known) < 8, "killed too late to prove anything"
    sent_before = {r.query["uploadId"] for r in part_puts(storage, name)}
    assert sent_before == {before["UploadId"]}
    first_seq = max(r.seq for r in storage.stats.records())

    resumed = cli("resume", "--all", "--json", *flags, env=env)

    assert resumed.code == 0, resumed.stderr
    [result] = resumed.json()["uploads"]
    assert result["s3Key"] == before["Key"], "the same upload went on; no second one was started"
    stored_once(s3, sandbox.bucket, nextjs_three_fixed.alice, name, result["s3Key"], sample.sha256)
    sent = [r for r in part_puts(storage, name) if r.seq > first_seq]
    assert sorted(int(r.query["partNumber"]) for r in sent) == sorted(set(range(1, 9)) - known), "only the missing"
    assert all(r.status == 200 for r in sent)


def test_links_that_expire_mid_upload_start_over_once_and_store_the_file(
    cli: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    name = "expiring.safetensors"
    sample = make_file(12 * MiB, name=name)  # three parts of 5 MiB, 5 MiB and 2 MiB, one at a time
    held: list[str] = []

    def expiry_of(request: RequestInfo) -> float:
        """When storage stops honouring this link: its own X-Amz-Date + X-Amz-Expires."""
        signed = calendar.timegm(time.strptime(request.query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        return signed + int(request.query["X-Amz-Expires"])

    def hold_the_first_part_2_until_its_link_expired(request: RequestInfo) -> None:
        if request.method == "PUT" and request.query.get("partNumber") == "2" and not held:
            held.append(request.query["uploadId"])
            # The link's second is whole (X-Amz-Date) and so is storage's check: one more second is past it.
            expired = expiry_of(request) + 1
            wait_until(lambda: time.time() > expired, 60, "the link of part 2 to expire")

    # 8 s links. The client stops using one in the last quarter of its life, so after starting over all
    # three parts must start within ~6 s of the new start (5 s links left too little on a busy machine);
    # and the held part waits ~8 s, under the ~10 s after which storage gives up on a silent request.
    env = {"UPLOADER_ACTIONS": "original", "UPLOADER_CHECKSUMS": "when-required", "UPLOAD_API_URL_EXPIRY_SECONDS": "8"}
    with nextjs_route(sandbox, tmp_path / "route", storage_proxy=True, **env) as route:
        assert route.storage is not None
        route.storage.set_fault_plan(hold_the_first_part_2_until_its_link_expired)
        result = cli(
            "upload", str(sample.path), "--json", "--chunk-size", "5MiB", "--concurrency", "1", env=route.cli_env()
        )
        puts = part_puts(route.storage, name)
        assert route.storage.plan_errors == []

    assert result.code == 0, result.stdout + result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed", upload
    stored_once(s3, sandbox.bucket, route.alice, name, upload["s3Key"], sample.sha256)
    assert "The server's upload links expired after 8 s and it can't renew them: started again." in result.stderr
    uploads = list(dict.fromkeys(r.query["uploadId"] for r in puts))
    assert len(uploads) == 2 and uploads[0] == held[0], "started over once, on a new upload"
    numbers = [(r.query["uploadId"] == held[0], r.query["partNumber"], r.status) for r in puts]
    assert numbers == [(True, "1", 200), (True, "2", 403), (False, "1", 200), (False, "2", 200), (False, "3", 200)]
