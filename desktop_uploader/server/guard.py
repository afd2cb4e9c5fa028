"""Hostile or broken clients: deadlines, concurrency caps, and the counting of it all.

Two layers, because uvicorn enforces neither deadline itself:

- ``deadline_protocol``: uvicorn's h11 protocol with a *header deadline*. A connection must deliver a
  complete request head within ``header_timeout_seconds`` of opening (or of its first byte after a
  keep-alive pause), or it is answered 408 and closed. uvicorn's keep-alive timer only runs between
  requests and is cancelled by any byte, so a client dripping one header byte at a time
  (slowloris), or one that connects and says nothing, would otherwise hold a connection for ever.
  This has to live in the protocol: an ASGI middleware is only called once the head is complete.
- ``Guard``, an ASGI middleware: a *body stall* limit (no body bytes for ``body_stall_seconds``: 408
  and the connection closed), caps on requests in flight in total and per user (429 with
  Retry-After), and the Prometheus counts of requests, latency, chunked bytes and uploads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from desktop_uploader.server.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Where the route records the action it served, for the metrics (a bounded set of names).
ACTION_KEY = "upload_api.action"
_UNCOUNTED = frozenset({"/healthz", "/metrics"})
_HEAD_LATE = b'{"error": "The request head did not arrive in time."}'
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_HEAD_LATE), _HEAD_LATE)
)


def deadline_protocol(header_timeout: float, metrics: Metrics | None) -> type[H11Protocol]:
    """uvicorn's h11 protocol, cutting connections whose request head takes over ``header_timeout``."""

    class DeadlineProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._arm()  # a new request begins (or goes on arriving): its head is on the clock
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if metrics is not None:
                metrics.cut.labels("headers").inc()
            log.info("Cut a connection from %s: no complete request head within %ss", self.client, header_timeout)
            self.transport.write(_TIMEOUT_408)
            self.transport.close()

    return DeadlineProtocol


class BodyStalled(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, f"The request body stopped arriving for {seconds:g} s; send it again.", {"Connection": "close"}
        )


def _label(scope: Scope, paths: dict[str, str]) -> str:
    return str(scope.get(ACTION_KEY) or paths.get(scope.get("path", ""), "other"))


class Guard:
    """Concurrency caps, the body stall deadline, and request metrics, around the whole application."""

    def __init__(
        self,
        app: App,
        *,
        metrics: Metrics,
        user_of: Callable[[str | None], str | None],
        paths: dict[str, str],
        body_stall_seconds: float,
        max_in_flight: int,
        max_in_flight_per_user: int,
        retry_after_seconds: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.user_of = user_of
        self.paths = paths  # path -> what the uploads through it are called in metrics
        self.body_stall = body_stall_seconds
        self.max_total = max_in_flight
        self.max_user = max_in_flight_per_user
        self.retry_after = retry_after_seconds
        self.total = 0
        self.per_user: Tally[str] = Tally()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in _UNCOUNTED:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization")
        user = self.user_of(authorization.decode("latin-1") if authorization is not None else None)
        cap = "total" if self.total >= self.max_total else None
        if cap is None and user is not None and self.per_user[user] >= self.max_user:
            cap = "user"
        if cap is not None:
            await self._busy(scope, receive, send, cap)
            return
        self.total += 1
        if user is not None:
            self.per_user[user] += 1
        self.metrics.in_flight.inc()
        try:
            await self._observed(scope, receive, send, headers)
        finally:
            self.total -= 1
            self.metrics.in_flight.dec()
            if user is not None:
                self.per_user[user] -= 1
                if not self.per_user[user]:
                    del self.per_user[user]

    async def _busy(self, scope: Scope, receive: Receive, send: Send, cap: str) -> None:
        self.metrics.refused.labels(cap).inc()
        whose = "this server's" if cap == "total" else "your"
        response = JSONResponse(
            {"error": f"Too many requests in flight ({whose} limit); try again in {self.retry_after} s."},
            status_code=429,
            headers={"Retry-After": str(self.retry_after)},
        )
        await response(scope, receive, send)
        self.metrics.requests.labels(_label(scope, self.paths), "429").inc()

    async def _observed(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        began = time.monotonic()
        status = 500
        body_bytes = 0
        more_body = True
        raw_chunk = headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"application/octet-stream"

        async def timed_receive() -> Message:
            nonlocal body_bytes, more_body
            if not more_body:  # the body is done: what is left to wait for is the disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_stall)
            except TimeoutError:
                self.metrics.cut.labels("body").inc()
                log.info("Cut a request from %s: its body stalled for %ss", scope.get("client"), self.body_stall)
                raise BodyStalled(self.body_stall) from None
            body_bytes += len(message.get("body", b""))
            more_body = bool(message.get("more_body")) and message.get("type") == "http.request"
            return message

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, timed_receive, counted_send)
        finally:
            action = _label(scope, self.paths)
            self.metrics.requests.labels(action, str(status)).inc()
            self.metrics.latency.labels(action).observe(time.monotonic() - began)
            if status == 200:
                self._count_upload(scope, action, raw_chunk, body_bytes)

    def _count_upload(self, scope: Scope, action: str, raw_chunk: bool, body_bytes: int) -> None:
        path = self.paths.get(scope.get("path", ""), "")
        if path == "chunked" and raw_chunk:
            self.metrics.chunked_bytes.inc(body_bytes)
        event = action.rpartition("-")[2]
        if path == "legacy":
            self.metrics.uploads.labels("started", path).inc()
            self.metrics.uploads.labels("completed", path).inc()
        elif event in {"start", "complete", "abort"}:
            named = {"start": "started", "complete": "completed", "abort": "aborted"}[event]
            self.metrics.uploads.labels(named, path).inc()
