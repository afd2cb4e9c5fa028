"""A bandwidth cap for tests: one uplink that every part's body crosses, between the real client and storage.

Loopback has no bandwidth limit, so the test proxy (tests/support/proxy.py) forwards every part's body
through one shared token schedule: a home uplink that all parts share (the proxy's own SlowUpload paces
each request on its own, which is a per-connection limit). ``capped`` (a fixture in
tests/engine/conftest.py) installs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tests.support.proxy as proxy_module
from tests.support.proxy import RequestInfo, SlowUpload
from tests.support.storage import object_sha256, open_multipart_uploads


class SharedLink:
    """One uplink of ``rate`` bytes/s for every connection: each piece of every body takes the next slot.

    It also keeps what a user loses on a pause: the bytes that crossed the link for parts whose body has
    not finished crossing (``peak_unfinished`` is the most at any moment). Bytes still in the client's
    socket buffers have cost no link time, so they are not counted; a body cut short stops counting.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._free_at = time.monotonic()
        self._crossing: dict[int, int] = {}
        self.peak_unfinished = 0

    def slot(self, size: int) -> float:
        """When a piece of ``size`` bytes has gone through the link, if it joins the queue now."""
        with self._lock:
            start = max(time.monotonic(), self._free_at)
            self._free_at = start + size / self.rate
            return self._free_at

    def crossed(self, body: int, size: int) -> None:
        with self._lock:
            self._crossing[body] = self._crossing.get(body, 0) + size
            self.peak_unfinished = max(self.peak_unfinished, sum(self._crossing.values()))

    def unfinished(self) -> list[int]:
        """Bytes across the link of each body still crossing it."""
        with self._lock:
            return list(self._crossing.values())

    def finished(self, body: int) -> None:
        with self._lock:
            self._crossing.pop(body, None)


def install_cap(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], SharedLink]:
    """Make the proxy's SlowUpload pace all bodies through one shared link instead of one link each."""

    def install(rate: float) -> SharedLink:
        link = SharedLink(rate)

        class LinkPacer:
            def __init__(self, _bytes_per_second: int, wait: Callable[[float], None]) -> None:
                self._wait = wait

            def pieces(self, data: bytes) -> Iterator[bytes]:
                # The proxy calls this once per chunk it reads from the client; the pacer is per request.
                view = memoryview(data)
                step = max(1, int(link.rate) // 50)
                for start in range(0, len(view), step):
                    piece = bytes(view[start : start + step])
                    self._wait(max(0.0, link.slot(len(piece)) - time.monotonic()))
                    link.crossed(id(self), len(piece))
                    yield piece

            def __del__(self) -> None:
                link.finished(id(self))

        monkeypatch.setattr(proxy_module, "_Pacer", LinkPacer)
        return link

    return install


def slow_parts(request: RequestInfo) -> Any:
    return SlowUpload(1) if request.method == "PUT" else None  # the rate is the shared link's


def assert_stored_once(s3: Any, sandbox: Any, key: str, sha256: str) -> None:
    assert object_sha256(s3, sandbox.bucket, key) == sha256
    listed = s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]
    assert open_multipart_uploads(s3, sandbox.bucket, key) == []
