"""What an operator sees: /healthz, Prometheus /metrics, and a warning before tokens travel in clear."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from desktop_uploader.engine.limits import MiB
from desktop_uploader.server import run
from tests.support.api import PRESIGNED, Api
from tests.support.api_servers import api_server

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - a host name under test; nothing binds it


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = requests.get(url + "/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def served(sandbox: Any, tmp_path: Path) -> Iterator[tuple[str, Api]]:
    with api_server(sandbox, tmp_path / "api") as url:
        yield url, Api(url, sandbox.token)


def test_healthz_answers_without_a_token(served: tuple[str, Api]) -> None:
    url, _ = served
    answer = requests.get(url + "/healthz", timeout=30)
    assert answer.status_code == 200 and answer.json()["ok"] is True


def test_metrics_count_requests_latency_bytes_and_uploads(served: tuple[str, Api], make_file: Any) -> None:
    url, api = served
    started = api.ok(api.presigned({"action": "start", "fileName": "a.safetensors", "totalParts": 2}))
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    assert api.presigned({"action": "start", "fileName": "a.safetensors", "totalParts": "2"}).status_code == 400
    assert requests.post(url + PRESIGNED, data=b"{", headers=api.headers(), timeout=30).status_code == 400
    assert requests.post(url + PRESIGNED, json={"action": "list"}, timeout=30).status_code == 401

    sample = make_file(5 * MiB + 3)
    data = sample.read()
    chunked = api.ok(api.chunked({"action": "start", "fileName": "b.safetensors", "fileSize": sample.size}))
    for offset in range(0, sample.size, 4 * MiB):
        api.ok(api.chunk(chunked["uploadId"], chunked["s3Key"], offset, data[offset : offset + 4 * MiB]))
    assert api.chunk(chunked["uploadId"], chunked["s3Key"], 0, b"x").status_code == 409  # not counted as bytes
    api.ok(api.chunked({"action": "complete", "uploadId": chunked["uploadId"], "s3Key": chunked["s3Key"]}))
    api.ok(api.legacy("c.safetensors", b"small"))

    found = samples(url)
    requests_total = "upload_api_requests_total"
    assert value(found, requests_total, action="start", status="200") == 1
    assert value(found, requests_total, action="abort", status="200") == 1
    # Bodies that never parsed (a type error, broken JSON) are named by their path.
    assert value(found, requests_total, action="presigned", status="400") == 2
    assert value(found, requests_total, action="presigned", status="401") == 1
    assert value(found, requests_total, action="chunked-chunk", status="200") == 2
    assert value(found, requests_total, action="chunked-chunk", status="409") == 1
    assert value(found, requests_total, action="legacy-upload", status="200") == 1
    assert value(found, "upload_api_request_seconds_count", action="start") == 1
    assert value(found, "upload_api_request_seconds_sum", action="chunked-complete") > 0
    assert value(found, "upload_api_chunked_bytes_total") == sample.size
    for event, path in (
        ("started", "presigned"),
        ("aborted", "presigned"),
        ("started", "chunked"),
        ("completed", "chunked"),
        ("started", "legacy"),
        ("completed", "legacy"),
    ):
        assert value(found, "upload_api_uploads_total", event=event, path=path) == 1, (event, path)
    assert value(found, "upload_api_uploads_total", event="completed", path="presigned") == 0
    assert ("upload_api_connections_cut_total", frozenset({("reason", "headers")})) in found
    assert value(found, "upload_api_requests_in_flight") == 0
    # Probes are not requests of the API: scraping does not count itself.
    assert not any(dict(labels).get("action") in {"healthz", "metrics"} for _, labels in found)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_binds_need_no_warning(host: str) -> None:
    assert run.exposure_warning(host) is None


@pytest.mark.allow_log(r"desktop_uploader\.server\.run: Serving plain HTTP on 0\.0\.0\.0: access tokens")
def test_a_plain_http_bind_beyond_loopback_warns_that_tokens_travel_in_clear(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for host in (ALL_INTERFACES, "192.168.1.20", "::", "api.example.com"):
        assert "travel in clear" in (run.exposure_warning(host) or "")

    class BoundError(Exception):
        pass

    def no_bind(host: str, port: int) -> Any:  # tests bind loopback only: stop where the socket would open
        raise BoundError

    monkeypatch.setattr(run, "bind", no_bind)
    with caplog.at_level(logging.WARNING, logger="desktop_uploader.server.run"), pytest.raises(BoundError):
        run.serve_forever(FastAPI(), ALL_INTERFACES, 8000)
    assert any("tokens and uploaded bytes travel in clear" in r.getMessage() for r in caplog.records)


def test_answers_on_a_kept_alive_connection_do_not_wait_for_the_client_s_acks() -> None:
    """The server bound a socket asyncio did not know for TCP, so the connections it accepted kept Nagle on:
    on a kept-alive connection each answer's body waited for the client's delayed ACK of its headers, and
    every API call after an upload's first took 40 ms more (list, start, sign, complete; each chunk)."""
    server = run.ServerThread.start(FastAPI())
    try:
        with requests.Session() as session:
            for _ in range(2):
                assert session.get(server.url + "/openapi.json", timeout=30).status_code == 200
            connections = list(server.server.server_state.connections)
            assert connections, "the connection is kept alive"
            for connection in connections:
                sock = connection.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), "Nagle is on"
    finally:
        server.stop()
