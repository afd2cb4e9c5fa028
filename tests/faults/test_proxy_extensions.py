"""What the fault suite added to the test proxy: peeking at small request bodies, and replacing a real answer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.support.proxy import Proxy, Replace, RequestInfo, ResetRequest, Respond
from tests.support.test_proxy import MiB, UpstreamServer, pattern, upstream

__all__ = ["upstream"]


@pytest.fixture
def peeking(upstream: UpstreamServer) -> Iterator[Proxy]:
    with Proxy.start(upstream.url, peek_bytes=1024) as started:
        yield started
    assert not started.plan_errors


def test_small_bodies_are_shown_to_the_plan_and_still_relayed_whole(peeking: Proxy, upstream: UpstreamServer) -> None:
    seen: list[RequestInfo] = []
    peeking.set_fault_plan(seen.append)
    answer = requests.post(peeking.url + "/api", json={"action": "start", "n": 1}, timeout=5)
    big = pattern(2 * MiB)
    requests.put(peeking.url + "/big", data=big, timeout=10)
    requests.get(peeking.url + "/nothing", timeout=5)
    assert answer.status_code == 200 and answer.json()["length"] == len(b'{"action": "start", "n": 1}')
    assert json.loads(seen[0].body) == {"action": "start", "n": 1}
    assert seen[1].body == b"" and seen[2].body == b"", "too large, or no body: not peeked"
    assert [s.length for s in upstream.seen] == [len(seen[0].body), len(big), 0]


def test_a_peeked_body_can_still_be_cut_or_answered_by_the_proxy(peeking: Proxy, upstream: UpstreamServer) -> None:
    peeking.set_fault_plan(
        lambda info: ResetRequest(5) if b"cut" in info.body else Respond(503) if b"busy" in info.body else None
    )
    with pytest.raises(requests.ConnectionError):
        requests.post(peeking.url + "/a", json={"cut": True}, timeout=5)
    assert requests.post(peeking.url + "/b", json={"busy": True}, timeout=5).status_code == 503
    assert requests.post(peeking.url + "/c", json={"fine": True}, timeout=5).status_code == 200
    assert [s.complete for s in upstream.seen] == [False, True]
    assert [r.forwarded for r in peeking.stats.records()] == [False, False, True]


def test_replace_lets_the_server_do_the_work_and_sends_another_answer(
    peeking: Proxy,
    upstream: UpstreamServer,
) -> None:
    peeking.set_fault_plan(lambda info: Replace(200, b"<html>gateway</html>") if info.path == "/work" else None)
    session = requests.Session()
    replaced = session.post(peeking.url + "/work", json={"x": 1}, timeout=5)
    after = session.post(peeking.url + "/next", json={"x": 2}, timeout=5)
    assert replaced.status_code == 200 and replaced.content == b"<html>gateway</html>"
    assert after.json()["target"] == "/next", "the connection is still usable"
    assert [s.target for s in upstream.seen] == ["/work", "/next"], "the server saw and answered the request"
    assert peeking.stats.connections() == 1
    assert [(r.action, r.status, r.forwarded) for r in peeking.stats.records()] == [
        ("Replace", 200, True),
        ("Forward", 200, True),
    ]
