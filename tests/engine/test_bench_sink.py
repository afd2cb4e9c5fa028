"""A smoke test of the benchmark harness: the discard sink answers real uploads, ours and boto3's.

The benchmarks themselves never run in the suite (they take an hour and measure; tests don't
assert numbers). This only keeps the sink honest: what it counts is what was sent, and both an S3
SDK and our engine (through the real API in front of it) complete against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from benchmarks.sink import SinkServer
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    server = SinkServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_boto3_uploads_to_the_sink_and_every_byte_is_counted(sink: SinkServer, make_file: Any) -> None:
    sample = make_file(17 * MiB)
    client = boto3.client(
        "s3",
        endpoint_url=sink.endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.upload_file(str(sample.path), "bench", "smoke/model.safetensors")
    stats = sink.sink.stats()
    assert stats["payload_bytes"] == sample.size
    assert [u["parts"] for u in stats["uploads"].values()] == [3]  # 8 + 8 + 1 MiB: boto3's default parts
    assert client.head_object(Bucket="bench", Key="smoke/model.safetensors")["ContentLength"] == sample.size


def test_our_engine_completes_against_the_sink_through_the_api(
    sink: SinkServer, make_engine: Any, make_file: Any, sandbox: Any, tmp_path: Path
) -> None:
    sample = make_file(21 * MiB)
    with api_server(sandbox, tmp_path / "api", s3_endpoint=sink.endpoint, bucket="bench") as url:
        engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB), api_url=url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    stats = sink.sink.stats()
    assert stats["payload_bytes"] == sample.size
    assert all(u["completed"] for u in stats["uploads"].values())
