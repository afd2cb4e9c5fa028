"""The sandbox's storage server answers only through S3: its volume and filer HTTP APIs refuse others."""

from __future__ import annotations

import stat
from pathlib import Path

import requests

from desktop_uploader.sandbox import seaweed
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.storage import s3_client


def test_volume_and_filer_refuse_requests_without_weeds_own_keys(tmp_path: Path) -> None:
    server = seaweed.SeaweedServer.start(tmp_path / "data", access_key="sandbox-ak", secret_key="sandbox-secret-1")
    try:
        ports = dict(zip(seaweed._PORT_NAMES, server.ports, strict=True))
        for name in ("volume.port", "filer.port"):
            answer = requests.get(f"http://127.0.0.1:{ports[name]}/", timeout=5)
            assert answer.status_code == 401, (name, answer.text)
        written = requests.post(f"http://127.0.0.1:{ports['filer.port']}/x.txt", files={"file": b"x"}, timeout=5)
        assert written.status_code == 401, written.text
        s3 = s3_client(SandboxInfo("", "", server.s3_endpoint, "", "sandbox-ak", "sandbox-secret-1", ""))
        s3.create_bucket(Bucket="private-check")
        s3.put_object(Bucket="private-check", Key="k", Body=b"hello" * 1000)
        assert s3.get_object(Bucket="private-check", Key="k")["Body"].read() == b"hello" * 1000
        direct = requests.get(f"http://127.0.0.1:{ports['filer.port']}/buckets/private-check/k", timeout=5)
        assert direct.status_code == 401, "the stored file can't be read around S3"
    finally:
        server.stop()
    keys = tmp_path / "data" / "weed" / ".seaweedfs" / "security.toml"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and stat.S_IMODE(keys.parent.stat().st_mode) == 0o700
