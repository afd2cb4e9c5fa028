"""``upload --method direct-s3`` from flags alone: the region it signs for and the folder it stores into."""

from __future__ import annotations

import signal
import socket
import uuid
from typing import Any

import pytest

from desktop_uploader.cli.session import SECRET_ENV
from desktop_uploader.engine.limits import MiB
from tests.cli.test_cli import stored_parts, wait_for_parts
from tests.support.logfail import RETRIED
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_region_and_folder_flags_are_signed_and_stored_into(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    """Cloudflare R2 signs for the region "auto", RunPod for its own; a wrong one is refused there."""
    sample = make_file(7 * MiB)
    folder = f"cli-region-{uuid.uuid4().hex[:12]}"
    scopes: set[str] = set()

    def signed_for(request: RequestInfo) -> None:  # relays every request; notes the region it was signed for
        scopes.add(request.headers.get("authorization", "").split("Credential=")[-1].split(",")[0].split("/", 2)[-1])

    with Proxy.start(sandbox.s3_endpoint) as storage:
        storage.set_fault_plan(signed_for)
        flags = ["--s3-endpoint", storage.url, "--bucket", sandbox.bucket, "--access-key", sandbox.access_key]
        result = cli(
            "upload",
            str(sample.path),
            "--method",
            "direct-s3",
            *flags,
            "--region",
            "auto",
            "--prefix",
            f"/{folder}/",
            "--json",
            env={SECRET_ENV: sandbox.secret_key},
        )
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed" and upload["s3Key"].startswith(f"{folder}/")
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, f"{folder}/") == []
    assert scopes == {"auto/s3/aws4_request"}


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_your_own_storage_flags_send_the_file_there_without_naming_the_method(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """An audit gave its endpoint, bucket and key but no --method: the flags were ignored without a word, and
    the file went to the sandbox's server instead (exit 0)."""
    sample = make_file(6 * MiB)
    folder = f"cli-implied-{uuid.uuid4().hex[:12]}"
    flags = ["--s3-endpoint", sandbox.s3_endpoint, "--bucket", sandbox.bucket, "--access-key", sandbox.access_key]
    result = cli("upload", str(sample.path), *flags, "--prefix", folder, "--json", env={SECRET_ENV: sandbox.secret_key})
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert upload["status"] == "completed" and upload["method"] == "direct-s3"
    assert upload["s3Key"].startswith(f"{folder}/")
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=f"{folder}/").get("Contents", [])] == [
        upload["s3Key"]
    ]


def test_your_own_storage_flags_with_another_method_are_refused_before_anything_is_sent(
    cli: Any, make_file: Any
) -> None:
    sample = make_file(6 * MiB)
    result = cli("upload", str(sample.path), "--method", "presigned", "--bucket", "mine", "--region", "auto")
    assert result.code == 2
    assert "--bucket, --region name your own S3 storage: drop them, or use --method direct-s3." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.without_upload_api("refused before anything is sent")
@pytest.mark.parametrize("method", [[], ["--method", "direct-s3"]], ids=["implied", "named"])
def test_an_upload_api_and_your_own_storage_together_are_refused_before_anything_is_sent(
    cli: Any, make_file: Any, method: list[str]
) -> None:
    """A CLI audit gave --server beside its own storage's flags: the server was ignored without a word."""
    sample = make_file(6 * MiB)
    flags = ["--s3-endpoint", "http://127.0.0.1:9", "--bucket", "mine", "--access-key", "K"]
    result = cli("upload", str(sample.path), *method, *flags, "--server", "http://127.0.0.1:9", env={SECRET_ENV: "s"})
    assert result.code == 2
    said = " ".join(result.stderr.split())
    assert "--server names an upload API, and direct-s3 sends to your own S3 storage instead: drop --server" in said
    assert "Traceback" not in said
    listed = cli("list", "--json")
    assert listed.code == 0 and [u for u in listed.json()["uploads"] if u.get("source") != "server"] == []


def own_storage_flags(sandbox: Any) -> list[str]:
    return ["--s3-endpoint", sandbox.s3_endpoint, "--bucket", sandbox.bucket, "--access-key", sandbox.access_key]


def stopped_with_ctrl_c(cli: Any, sample: Any, flags: list[str], sandbox: Any) -> str:
    """Upload ``sample`` to your own storage and Ctrl-C it once a part is stored; what it printed."""
    slowly = ["--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB"]
    before = stored_parts(cli.home)  # another upload's parts, stored already, count too
    running = cli.popen("upload", str(sample.path), *flags, *slowly, env={SECRET_ENV: sandbox.secret_key})
    wait_for_parts(cli.home, before + 1, running)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    return str(out + err)


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_an_upload_to_your_own_storage_is_discarded_there_and_never_starts_the_sandbox(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A direct-s3 audit's ``discard`` knew no --s3-endpoint: it started the local sandbox and left the
    partial upload on the storage, though the resume sentence said "or discard it"."""
    sample = make_file(20 * MiB, name=f"own-discard-{uuid.uuid4().hex[:8]}.safetensors")
    folder = f"cli-discard-{uuid.uuid4().hex[:12]}"
    stopped_with_ctrl_c(cli, sample, [*own_storage_flags(sandbox), "--prefix", folder], sandbox)
    [record] = [u for u in cli("list", "--json").json()["uploads"] if u["file"] == str(sample.path)]
    assert open_multipart_uploads(s3, sandbox.bucket, f"{folder}/") != []

    bare = cli("discard", record["id"][:8])
    assert bare.code == 2
    said = " ".join((bare.stdout + bare.stderr).split())
    assert "was going to the S3 bucket" in said and "discard it with that storage's --s3-endpoint" in said
    assert "sandbox" not in said

    done = cli("discard", record["id"][:8], *own_storage_flags(sandbox), env={SECRET_ENV: sandbox.secret_key})
    assert done.code == 0, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert f"its partial upload was removed from the S3 bucket {sandbox.bucket}" in said and "sandbox" not in said
    assert open_multipart_uploads(s3, sandbox.bucket, f"{folder}/") == []
    assert [u for u in cli("list", "--json").json()["uploads"] if u["file"] == str(sample.path)] == []


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_resume_of_one_upload_without_its_storage_speaks_of_that_upload_only(
    cli: Any, make_file: Any, sandbox: Any
) -> None:
    """A direct-s3 audit's "resume ID" without flags said "… was going to the S3 bucket …" for three other
    uploads as well as the one asked for."""
    folder = f"cli-one-{uuid.uuid4().hex[:12]}"
    samples = [make_file(20 * MiB, name=f"{n}-{uuid.uuid4().hex[:8]}.safetensors") for n in ("first", "second")]
    for sample in samples:
        stopped_with_ctrl_c(cli, sample, [*own_storage_flags(sandbox), "--prefix", folder], sandbox)
    listed = {u["file"]: u["id"] for u in cli("list", "--json").json()["uploads"]}
    asked = cli("resume", listed[str(samples[1].path)][:8])
    assert asked.code == 2
    said = " ".join((asked.stdout + asked.stderr).split())
    assert f"{samples[1].path.stem} was going to the S3 bucket" in said and samples[0].path.stem not in said


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_an_upload_to_your_own_storage_is_resumed_there_and_never_sent_elsewhere(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A CLI audit was told "Resume with: desktop-uploader resume ID" after a direct-s3 upload stopped, but
    ``resume`` knew no --s3-endpoint; and ``resume`` with no flags sent the file to the sandbox instead."""
    sample = make_file(20 * MiB, name=f"own-storage-{uuid.uuid4().hex[:8]}.safetensors")
    folder = f"cli-resume-{uuid.uuid4().hex[:12]}"
    flags = own_storage_flags(sandbox)
    said = stopped_with_ctrl_c(cli, sample, [*flags, "--prefix", folder], sandbox)
    [hint] = [line.strip() for line in said.splitlines() if line.strip().startswith("Resume with:")]
    command = hint.removeprefix("Resume with: desktop-uploader ").split()
    assert command[2:] == [*flags, "--prefix", folder], hint  # the hint repeats the storage, never the secret
    upload_id = command[1]

    bare = cli("resume", upload_id)
    assert bare.code == 2
    assert (
        f"was going to the S3 bucket {sandbox.bucket} ({sandbox.s3_endpoint}): resume it with that storage's "
        "--s3-endpoint, --bucket and --access-key" in " ".join((bare.stdout + bare.stderr).split())
    )

    resumed = cli(*command, "--json", env={SECRET_ENV: sandbox.secret_key})
    assert resumed.code == 0, resumed.stderr
    [upload] = resumed.json()["uploads"]
    assert upload["status"] == "completed" and upload["method"] == "direct-s3"
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sandbox.bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", []) if sample.path.stem in item["Key"]]
    assert keys == [upload["s3Key"]] and keys[0].startswith(f"{folder}/"), "stored once, in your own storage"
    assert open_multipart_uploads(s3, sandbox.bucket, f"{folder}/") == []


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (
            ["--s3-endpoint", "not-a-url", "--bucket", "mine", "--access-key", "K"],
            "--s3-endpoint: The S3 endpoint must start with http:// or https://; got 'not-a-url'.",
        ),
        (  # typed as a browser takes it: the whole address it likely is, offered, not assumed
            ["--s3-endpoint", "s3.example.com", "--bucket", "mine", "--access-key", "K"],
            "--s3-endpoint: The S3 endpoint must start with http:// or https://: did you mean https://s3.example.com?",
        ),
        (  # the bucket's own address pasted as the endpoint: objects landed under a folder named after it
            ["--s3-endpoint", "http://127.0.0.1:9/mine", "--bucket", "mine", "--access-key", "K"],
            "--s3-endpoint: The S3 endpoint is the storage's address alone: http://127.0.0.1:9, without '/mine' "
            "(the bucket has its own field).",
        ),
        (
            ["--s3-endpoint", "https://s3.example.com/some/where", "--bucket", "mine", "--access-key", "K"],
            "--s3-endpoint: The S3 endpoint is the storage's address alone, without a path: https://s3.example.com, "
            "not 'https://s3.example.com/some/where'.",
        ),
        (
            ["--s3-endpoint", "http://127.0.0.1:9", "--bucket", "mine"],
            "Direct uploads need your access key: pass --access-key (the secret goes in DESKTOP_UPLOADER_S3_SECRET)",
        ),
        (
            ["--s3-endpoint", "http://127.0.0.1:9", "--bucket", "Bad_Bucket!", "--access-key", "K"],
            "--bucket: A bucket name holds only letters, digits, dots, hyphens and underscores; 'Bad_Bucket!' has '!'.",
        ),
        (
            ["--s3-endpoint", "http://127.0.0.1:9", "--bucket", "mine/loras", "--access-key", "K"],
            "--bucket: The bucket is one name without '/': give 'mine' as the bucket and 'loras' as the folder in it.",
        ),
        (
            ["--s3-endpoint", "http://127.0.0.1:9", "--bucket", "mine", "--access-key", "K", "--prefix", "../x"],
            "--prefix: The folder in the bucket can't have '.' or '..' in its path: got '../x'.",
        ),
    ],
    ids=[
        "endpoint",
        "endpoint-without-scheme",
        "endpoint-with-bucket",
        "endpoint-with-path",
        "access-key",
        "bucket-character",
        "bucket-folder",
        "prefix-up",
    ],
)
def test_your_own_storage_given_wrong_is_refused_before_anything_is_recorded(
    cli: Any, make_file: Any, flags: list[str], said: str
) -> None:
    """A CLI audit's "--s3-endpoint not-a-url" read "Something unexpected went wrong" and offered a resume; a
    missing access key became a failure kept for a resume that could never work."""
    sample = make_file(6 * MiB)
    result = cli("upload", str(sample.path), *flags, env={SECRET_ENV: "s"})
    assert result.code == 2
    assert said in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert "Resume with" not in result.stdout + result.stderr
    listed = cli("list", "--json")
    assert listed.code == 0 and [u for u in listed.json()["uploads"] if u.get("source") != "server"] == []


def closed_port() -> str:
    """An address on loopback where nobody listens: connections to it are refused."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{spare.getsockname()[1]}"


NO_SUCH_BUCKET = b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"


def no_such_bucket(request: RequestInfo) -> Respond:
    """What AWS answers for a bucket that is not there (SeaweedFS makes the bucket instead)."""
    return Respond(404, NO_SUCH_BUCKET, {"Content-Type": "application/xml"})


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        ("secret", "Check --access-key and DESKTOP_UPLOADER_S3_SECRET, or what the app's Settings hold."),
        ("bucket", "Check --bucket, or the bucket in the app's Settings."),
        ("port", "Could not connect to 127.0.0.1:"),
    ],
)
def test_storage_refusing_what_the_flags_gave_names_the_flags_to_check(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, wrong: str, said: str
) -> None:
    """A CLI audit with a wrong secret was told "Check them in Settings": a window the terminal never showed."""
    sample = make_file(6 * MiB)
    folder = f"cli-refused-{uuid.uuid4().hex[:12]}"
    secret = "not-the-secret" if wrong == "secret" else sandbox.secret_key
    with Proxy.start(sandbox.s3_endpoint) as storage:
        if wrong == "bucket":
            storage.set_fault_plan(no_such_bucket)
        endpoint = closed_port() if wrong == "port" else storage.url
        flags = ["--s3-endpoint", endpoint, "--bucket", sandbox.bucket, "--access-key", sandbox.access_key]
        flags += ["--retries", "2", "--prefix", folder]
        result = cli("upload", str(sample.path), *flags, env={SECRET_ENV: secret})
        assert storage.plan_errors == []
    assert result.code == 1, result.stderr
    shown = " ".join((result.stdout + result.stderr).split())
    assert said in shown and "in Settings" not in shown and "Traceback" not in shown
    # Storage turned the start down, so nothing was started and nothing is kept: no "Resume with" for an upload
    # with nothing stored, which came back as "Interrupted" in the window (a direct-s3 audit); the same command
    # again, with the secret or bucket right, is the way on.
    listed = [u for u in cli("list", "--json").json()["uploads"] if u["file"] == str(sample.path)]
    assert listed == [] and "Resume with" not in shown
    assert s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=f"{folder}/").get("KeyCount", 0) == 0
    assert open_multipart_uploads(s3, sandbox.bucket, f"{folder}/") == []


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_a_mistyped_bucket_is_refused_and_not_made(cli: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    """SeaweedFS makes a bucket on its first upload: a typo'd --bucket was made, and the file stored where
    nobody would look for it (exit 0). Storage is asked first; a bucket it says isn't there is named."""
    sample = make_file(6 * MiB)
    typo = f"{sandbox.bucket}-typo-{uuid.uuid4().hex[:6]}"
    flags = ["--s3-endpoint", sandbox.s3_endpoint, "--bucket", typo, "--access-key", sandbox.access_key]
    result = cli("upload", str(sample.path), *flags, "--json", env={SECRET_ENV: sandbox.secret_key})
    assert result.code == 1, result.stderr
    [upload] = result.json()["uploads"]
    host = sandbox.s3_endpoint.removeprefix("http://")
    said = f"There is no bucket {typo} at {host}. Check --bucket, or the bucket in the app's Settings."
    assert upload["status"] == "failed" and upload["message"] == said
    assert typo not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "Traceback" not in result.stderr and "Resume with" not in result.stderr  # nothing was started to go on
    assert cli("list", "--json").json()["uploads"] == []


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
@pytest.mark.allow_log(*RETRIED)
def test_https_typed_for_a_plain_http_store_says_to_try_http(cli: Any, make_file: Any, sandbox: Any) -> None:
    """A direct-S3 audit typed https:// for the sandbox's plain-HTTP storage and read "Could not connect to
    127.0.0.1:…", though storage was right there."""
    sample = make_file(6 * MiB)
    secure = sandbox.s3_endpoint.replace("http://", "https://", 1)
    flags = ["--s3-endpoint", secure, "--bucket", sandbox.bucket, "--access-key", sandbox.access_key]
    result = cli("upload", str(sample.path), *flags, "--retries", "1", "--json", env={SECRET_ENV: sandbox.secret_key})
    assert result.code == 1, result.stderr
    [upload] = result.json()["uploads"]
    host = sandbox.s3_endpoint.removeprefix("http://")
    assert upload["message"].startswith(
        f"{host} does not answer secure connections: is its address http:// rather than https://?"
    ), upload["message"]
