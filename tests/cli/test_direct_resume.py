"""``desktop-uploader resume`` of a direct-s3 upload whose CompleteMultipartUpload answer was lost."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from desktop_uploader.cli.session import SECRET_ENV
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings, save_settings
from tests.support.proxy import Action, Proxy, RequestInfo, ResetResponse, Respond
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_resume_after_a_lost_complete_answer_stores_the_file_once(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(12 * MiB)
    prefix = f"cli-direct-{uuid.uuid4().hex[:12]}"
    lost: list[int] = []

    def lose_the_complete_answer(request: RequestInfo) -> Action | None:
        if request.method == "POST" and "uploadId" in request.query and "partNumber" not in request.query and not lost:
            lost.append(request.seq)
            return ResetResponse(0)
        return Respond(503) if request.method == "HEAD" else None  # nor can storage be asked right then

    with Proxy.start(sandbox.s3_endpoint) as proxy:
        settings = Settings(
            method="direct-s3",
            chunk_size=5 * MiB,
            retries=1,
            direct_endpoint=proxy.url,
            direct_bucket=sandbox.bucket,
            direct_access_key=sandbox.access_key,
            direct_prefix=prefix,
        )
        save_settings(cli.home / "config" / "settings.json", settings)
        secret = {SECRET_ENV: sandbox.secret_key}
        proxy.set_fault_plan(lose_the_complete_answer)
        failed = cli("upload", str(sample.path), "--json", env=secret)
        assert failed.code == 1 and lost, failed.stderr

        proxy.set_fault_plan(None)
        resumed = cli("resume", "--all", "--json", env=secret)
    assert resumed.code == 0, resumed.stderr
    [result] = resumed.json()["uploads"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=f"{prefix}/").get("Contents", [])]
    assert keys == [result["s3Key"]], "exactly one object"
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, f"{prefix}/") == []
    assert cli("list", "--json").json()["uploads"] == []
