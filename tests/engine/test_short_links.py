"""Short upload links: signed as briefly as Settings allows, they are still used, not asked for again and again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.proxy import Proxy
from tests.support.storage import object_sha256, open_multipart_uploads


def test_links_that_seem_spent_on_arrival_are_used_not_signed_again_and_again(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    """The shortest lifetime Settings takes, 1 s, counted a second late (the Date header's whole seconds),
    looked spent as it arrived, and the part asked again at once: an audit's 60 parts cost the API 923 sign
    calls, in bursts of 56-93 a second. A link just signed is used as it is: no later one would be longer."""
    sample = make_file(30 * MiB)
    settings = Settings(method="presigned", chunk_size=5 * MiB, auto_part_size=False, concurrency=2)
    with api_server(sandbox, tmp_path / "api", url_expiry_seconds=1) as url, Proxy.start(url) as api:
        engine = make_engine(settings, api_url=api.url)
        job = engine.upload(sample.path)
        calls = api.stats.requests("POST")
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, job.result.s3_key)
    parts = 6
    # start and complete, and per part a signing and at most one more after storage refused a spent link
    assert calls <= 2 + 2 * parts, f"{calls} calls to the API for {parts} parts"
