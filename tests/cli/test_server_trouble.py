"""Trouble behind the upload server is told in the server's own words, with whom to tell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.limits import MiB
from tests.support.api_servers import api_server
from tests.support.logfail import STORAGE_REFUSED
from tests.support.proxy import Proxy, Respond
from tests.support.storage import open_multipart_uploads


@pytest.mark.without_upload_api("a server of its own, whose storage refuses its keys")
@pytest.mark.allow_log(*STORAGE_REFUSED)
def test_a_server_whose_storage_refuses_its_keys_is_quoted_not_called_busy(
    cli: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A Next.js audit's route, given a wrong S3 secret, answered "Storage answered with an error
    (SignatureDoesNotMatch)." with its 502; the app said only "busy or having trouble (HTTP 502 on start)"."""
    sample = make_file(6 * MiB)
    with api_server(sandbox, tmp_path / "api", s3_secret_key="not-the-secret") as url:
        result = cli("upload", str(sample.path), "--server", url, "--token", sandbox.token, "--retries", "1")
    assert result.code == 1, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert (
        "The upload server answered, while starting the upload: Storage answered with an error "
        "(SignatureDoesNotMatch). If this goes on, tell whoever runs that server." in said
    )
    assert "HTTP 502 on" not in said and "Traceback" not in said
    assert open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") == []


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
