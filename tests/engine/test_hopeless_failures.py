"""Failures another try can't change are marked so: the window then offers Remove, not Retry.

A first-time user's refused file type is proved in the window (tests/gui/test_queue.py); here the
engine's side, on a real API whose storage takes smaller files than the one given, and a failure
that Retry can fix (the server's token) for contrast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Failed, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import open_multipart_uploads

ONCE = Settings(retries=1, backoff_base=0.05, backoff_cap=0.1)


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_larger_than_the_storage_takes_fails_with_no_retry_offered(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    sample = make_file(3 * MiB)
    open_before = {u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket)}
    with api_server(sandbox, tmp_path / "small", max_file_size=2 * MiB) as url:
        engine = make_engine(ONCE, api_url=url, token=sandbox.token)
        view = engine.upload(sample.path)
    assert view.status == Status.FAILED
    [failed] = engine.of(view.id, Failed)
    assert failed.message == "This file is 3.0 MiB, larger than the 2.0 MiB this storage accepts."
    assert (failed.retry_helps, failed.resumable) == (False, False)
    assert not list(engine.state.lock_dir.glob("*.lock")), "no lock file stays for an upload nobody can resume"
    open_after = {u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket)}
    assert open_after == open_before, "nothing was left on the server"


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_refused_token_fails_with_retry_offered(make_engine: Any, make_file: Any) -> None:
    """The token can be put right in Settings meanwhile: Retry stays."""
    engine = make_engine(ONCE, token="not-a-token")
    view = engine.upload(make_file(1 * MiB).path)
    [failed] = engine.of(view.id, Failed)
    assert failed.message.startswith("The server did not accept your access token.")
    assert failed.retry_helps
