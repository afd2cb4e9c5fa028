"""Settings' "Test connection" against the route our users run (start, complete, abort), for real.

That route answers the capabilities GET with 405 whatever its address and token, so the test used to
say "Connected" to a wrong path, a wrong token and the AWS SDK's pinned checksum alike, and each
showed only when the first file failed (a first-time user's audit). The test now starts a one-byte
upload, reads its link and aborts it: each check here also asserts nothing is left in storage.
"""

from __future__ import annotations

from typing import Any

from desktop_uploader.connection import try_server
from desktop_uploader.engine.api_trial import TRIAL_NAME
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.nextjs_route import NextRoute, RouteUser
from tests.support.proxy import Delay, Proxy, RequestInfo
from tests.support.storage import object_sha256, open_multipart_uploads

CONNECTED = (
    "Connected. This server speaks the original contract (start, complete, abort): uploads work, but links that "
    "run out can't be renewed, and unfinished uploads can't be listed there. A test upload started there and was "
    "cancelled."
)


def nothing_left(s3: Any, bucket: str, user: RouteUser) -> None:
    """No trial upload open or stored under the user's keys (the bucket is shared)."""
    assert [u["Key"] for u in open_multipart_uploads(s3, bucket, user.prefix) if TRIAL_NAME in u["Key"]] == []
    stored = s3.list_objects_v2(Bucket=bucket, Prefix=user.prefix).get("Contents", [])
    assert [o["Key"] for o in stored if TRIAL_NAME in o["Key"]] == []


def test_the_route_with_the_sdks_pinned_checksum_fails_the_test_naming_the_fix(
    nextjs_original: NextRoute, s3: Any, sandbox: Any
) -> None:
    ok, said = try_server(nextjs_original.url, nextjs_original.alice.token, Settings())
    assert not ok
    assert said == (
        "The server's upload links demand a fixed checksum (x-amz-checksum-crc32=AAAAAA==, that of an empty "
        "file), so storage would refuse every part; tell whoever runs the server to add "
        "requestChecksumCalculation: 'WHEN_REQUIRED' to the options of its S3Client (AWS SDK v3)."
    )
    nothing_left(s3, sandbox.bucket, nextjs_original.alice)


def test_the_fixed_route_passes_and_keeps_nothing(nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any) -> None:
    assert try_server(nextjs_three_fixed.url, nextjs_three_fixed.alice.token, Settings()) == (True, CONNECTED)
    nothing_left(s3, sandbox.bucket, nextjs_three_fixed.alice)


def test_a_wrong_token_or_path_fails_the_test(nextjs_three_fixed: NextRoute) -> None:
    ok, said = try_server(nextjs_three_fixed.url, "not-the-token", Settings())
    assert not ok and said.startswith("The server did not accept your access token."), said
    ok, said = try_server(f"{nextjs_three_fixed.url}/myapp", nextjs_three_fixed.alice.token, Settings())
    typed = f"{nextjs_three_fixed.url}/myapp"
    assert not ok and said.startswith(f"Nothing at {typed} takes uploads (HTTP 404; the app asked {typed}/api/"), said


def test_a_route_that_was_asleep_passes_the_test(nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any) -> None:
    """A Next.js audit's route took 20 s to answer its first request (a serverless cold start): the test gave
    up after 10 s with "nothing moved", while uploads waited it out. It waits as long as an upload does."""
    woken: list[int] = []

    def cold_start(request: RequestInfo) -> Delay | None:
        if woken:
            return None
        woken.append(request.seq)
        return Delay(12)  # past the 10 s the test used to wait, well within the 60 s an upload waits

    with Proxy.start(nextjs_three_fixed.url) as route:
        route.set_fault_plan(cold_start)
        assert try_server(route.url, nextjs_three_fixed.alice.token, Settings()) == (True, CONNECTED)
        assert route.plan_errors == [] and woken == [1]
    nothing_left(s3, sandbox.bucket, nextjs_three_fixed.alice)


def test_the_routes_own_path_pasted_into_the_address_is_taken_off(
    cli: Any, make_file: Any, nextjs_three_fixed: NextRoute, s3: Any, sandbox: Any
) -> None:
    """A first-time user pasted the route's whole URL; it was answered "no 'start' here (HTTP 404)"."""
    pasted = f"{nextjs_three_fixed.url}/api/user/influencers/presigned-upload/"
    for number, how in enumerate((["--server", pasted], [])):
        sample = make_file(6 * MiB, name=f"pasted-{number}.safetensors", seed=number)
        env = {**nextjs_three_fixed.cli_env(), **({} if how else {"DESKTOP_UPLOADER_SERVER": pasted})}
        result = cli("upload", str(sample.path), "--json", *how, env=env)
        assert result.code == 0, result.stderr
        [upload] = result.json()["uploads"]
        assert upload["status"] == "completed"
        assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
