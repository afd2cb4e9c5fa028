"""A slow but steady uplink never fails an upload: only a link that stops does.

urllib3 sends a request body under the *connect* timeout, and Python applies a socket timeout to a whole
``sendall``: a body handed over as one 4 MiB piece had to be on its way within 10 s, so on a 3 Mbit/s
uplink every chunk of the fallback path failed, every retry alike. Bodies now go out a block at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_uploader.engine.events import Retrying, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.proxy import Proxy, RequestInfo, SlowUpload
from tests.support.storage import object_sha256


def test_a_chunk_on_a_slow_uplink_is_not_cut_by_the_connect_timeout(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    """One chunk larger than the socket buffers on both sides (which would otherwise swallow it whole),
    on a link that takes five times the connect timeout to carry it."""
    sample = make_file(24 * MiB)

    def slow_chunks(request: RequestInfo) -> Any:
        return SlowUpload(5_000_000) if request.method == "POST" and "offset" in request.query else None

    with (
        api_server(sandbox, tmp_path / "api", chunk_max_bytes=24 * MiB) as url,
        Proxy.start(url) as api_proxy,
    ):
        api_proxy.set_fault_plan(slow_chunks)
        engine = make_engine(
            Settings(method="chunked", connect_timeout=1.0, retries=1, backoff_base=0.1), api_url=api_proxy.url
        )
        job = engine.upload(sample.path)
        chunks = [r for r in api_proxy.stats.records("POST") if "offset" in r.query]
    assert job.status == Status.COMPLETED, job.message
    assert not engine.of(job.id, Retrying)
    assert len(chunks) == 1  # sent once, in about five seconds
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
