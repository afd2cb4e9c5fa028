"""A transparent HTTP/1.1 reverse proxy for tests: it counts what really reaches a server and breaks things on purpose.

Real servers (SeaweedFS, the FastAPI upload API) cannot be told to reset a connection after 3 MiB of a part, to
go silent, or to cut a response short, and a mocked HTTP layer would not show what a real client does when
that happens. So tests put this proxy between the real client and the real server: by default it relays every
byte unchanged (the Host header included, because presigned S3 URLs sign it and are signed for the proxy's own
host:port), and a *fault plan* may pick, per request, an action that a client will observe on the socket.

Design choices, and why:

* ``h11`` parses HTTP on both sides, so framing (Content-Length, chunked, keep-alive, 100-continue, early
  responses) follows the RFC rather than a hand-written parser's idea of it.
* One thread per client connection, each with its own upstream connection (reconnected when the upstream has
  closed it). That keeps every exchange in order without locks, and mirrors keep-alive one to one.
* Bodies are streamed in chunks of at most 64 KiB in both directions; a 64 MiB part never sits in memory.
* Every socket operation polls with a short timeout and checks whether the proxy is stopping (or the
  connection was dropped by :meth:`Proxy.down`). No thread ever closes a socket another thread is blocked on
  (that races with file-descriptor reuse), and :meth:`Proxy.stop` is bounded even with stalled exchanges.
* Faults end connections the way a client can tell apart: a *reset* is ``SO_LINGER`` 0 then ``close()`` (the
  peer gets RST, ``ECONNRESET``); a *clean close* is ``shutdown(SHUT_WR)`` (the peer gets FIN, i.e. EOF) followed
  by a short, bounded drain of what the peer still sends, so the kernel does not turn the close into an RST.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, NoReturn, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

__all__ = [
    "Action",
    "Delay",
    "FaultPlan",
    "Forward",
    "Proxy",
    "ProxyStats",
    "Replace",
    "RequestInfo",
    "RequestRecord",
    "ResetRequest",
    "ResetResponse",
    "Respond",
    "SlowBody",
    "SlowUpload",
    "Stall",
    "Truncate",
]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024  # the most any single read or write moves, so memory stays flat for any body size
_POLL = 0.05  # how long any blocking socket call may wait before re-checking stop/down; bounds stop() latency
_MAX_HEAD = 64 * 1024  # request/response heads; presigned URLs are long, but not this long
_BACKLOG = 128  # many parallel part uploads connect at once
_CONNECT_TIMEOUT = 5.0
_CONTINUE_WAIT = 1.0  # like urllib3/botocore: how long to wait for the upstream's "100 Continue"
_EARLY_RESPONSE_WAIT = 2.0  # after a failed body write, how long the upstream gets to show its early response
_LINGER = 1.0  # how long a clean close keeps draining the peer, so that close() doesn't turn into an RST
_STOP_TIMEOUT = 3.0
_SO_REUSEPORT: int | None = getattr(socket, "SO_REUSEPORT", None)


# --------------------------------------------------------------------------------------------------------------
# What a fault plan sees and returns


@dataclass(frozen=True)
class RequestInfo:
    """A request's head, handed to the fault plan before anything of it has been forwarded.

    ``path`` is percent-decoded and ``query`` parsed (a repeated key keeps its last value) so plans can match
    S3 keys and ``partNumber`` without re-parsing; ``target`` keeps the raw form. Header names are lower-case,
    repeated headers are joined with ``", "``. ``seq`` numbers requests from 1 in arrival order over the
    proxy's life (it survives :meth:`ProxyStats.reset`), so a plan can say "the third request".

    ``body`` is the whole request body when the proxy was started with ``peek_bytes`` and the body, by its
    ``Content-Length``, is no longer than that (so a plan can tell JSON API actions apart); otherwise ``b""``.
    A peeked body is read before the plan runs and then relayed (or cut, or dropped) exactly as any other.
    Requests that announce ``Expect: 100-continue`` or a chunked body are never peeked.
    """

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    seq: int
    body: bytes = b""


@dataclass(frozen=True)
class Forward:
    """Relay the exchange untouched. The default (a plan returning ``None`` means this), so plans name only
    the requests they break."""


@dataclass(frozen=True)
class Respond:
    """Answer from the proxy without contacting the upstream: a throttling 503, a 500, a bogus 200.

    The request body is read and discarded first, then the response is sent and the connection stays
    open for the next request (unless ``headers`` carry ``Connection: close``), exactly like a server that
    rejects after reading, so the client's keep-alive pool is exercised too. ``Content-Length`` is added
    when ``headers`` give no framing. A client that sent ``Expect: 100-continue`` (botocore) is answered at
    once instead, as S3 does, and the connection is then closed cleanly, since the client may or may not
    send the body it announced.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"Respond needs a final status (200-599), not {self.status}")


@dataclass(frozen=True)
class Replace:
    """The server did the work and the client hears something else: a gateway's HTML error page after the
    backend finished, an empty 200, JSON of the wrong shape.

    The request is forwarded in full, the upstream's whole response is read and dropped, and this response is
    sent in its place, framed as :class:`Respond` frames its own (``Content-Length`` added unless ``headers``
    give framing). The client connection stays usable unless ``headers`` carry ``Connection: close``.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"Replace needs a final status (200-599), not {self.status}")


@dataclass(frozen=True)
class ResetRequest:
    """The request never completes upstream and the client sees a connection reset, as when a network path
    dies mid-upload.

    The head and the first ``after_bytes`` of the body are forwarded, then the upstream connection is closed
    (it sees the body end early) and the client connection is reset (RST). The proxy never lets the request
    become complete upstream: with a known ``Content-Length`` at most ``length - 1`` bytes go through; a
    chunked body that ends before ``after_bytes`` is not terminated; and a request without a body is not
    forwarded at all (its head alone would be a complete request). To lose only the answer to a request the
    server did receive, use :class:`ResetResponse`.
    """

    after_bytes: int = 0

    def __post_init__(self) -> None:
        if self.after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")


@dataclass(frozen=True)
class ResetResponse:
    """The server did the work but the client never hears back: the answer is lost to a connection reset.

    The whole request is forwarded, then the proxy waits for the upstream's response and relays its first
    ``after_bytes`` bytes as they appear on the wire (status line, headers and chunk framing count), then
    resets (RST) the client connection. A response shorter than ``after_bytes`` is relayed whole and the
    connection is reset right after. Bytes written just before the reset may still be in flight and be
    discarded by the client's kernel, so a client may see fewer than ``after_bytes``.
    """

    after_bytes: int = 0

    def __post_init__(self) -> None:
        if self.after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")


@dataclass(frozen=True)
class Stall:
    """A server that accepted the request and went silent, to drive the client into its read timeout.

    Nothing is forwarded. The proxy keeps reading (and discarding) the request body so the client's send
    completes and it ends up waiting for a response, then sends nothing for ``seconds`` and closes the
    connection cleanly (FIN). Ends early, with a reset, when the proxy stops or goes down.

    With ``take_bytes_per_second``, the body is taken no faster than that, as by a store whose buffers
    fill as it freezes: the client sees its bytes leave over a while, not in one moment.
    """

    seconds: float
    take_bytes_per_second: int | None = None

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")
        if self.take_bytes_per_second is not None and self.take_bytes_per_second <= 0:
            raise ValueError("take_bytes_per_second must be > 0")


@dataclass(frozen=True)
class Truncate:
    """A response that ends early, to prove the client checks that it read everything.

    The request is forwarded and the response head relayed whole, then only the first ``keep_bytes`` of
    the response body are relayed and the client connection is closed cleanly (FIN, not RST), so the client
    sees a short read (a ``Content-Length`` not met, or a chunked body without its last chunk). A body no
    longer than ``keep_bytes`` is relayed whole and nothing is truncated.
    """

    keep_bytes: int = 0

    def __post_init__(self) -> None:
        if self.keep_bytes < 0:
            raise ValueError("keep_bytes must be >= 0")


@dataclass(frozen=True)
class SlowBody:
    """A slow link on the way back: the request is forwarded, the response head relayed at once, and the
    response body relayed at about ``bytes_per_second`` (in pieces of a twentieth of a second's worth)."""

    bytes_per_second: int

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0")


@dataclass(frozen=True)
class SlowUpload:
    """A slow link on the way up: the request body is taken from the client and forwarded at about
    ``bytes_per_second``, so a client sending faster is held back by TCP, as on a slow uplink."""

    bytes_per_second: int

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0")


@dataclass(frozen=True)
class Delay:
    """A slow server: wait ``seconds`` after the request head arrived, then forward normally. The client's
    body waits in socket buffers meanwhile."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")


Action = Forward | Respond | Replace | ResetRequest | ResetResponse | Stall | Truncate | SlowBody | SlowUpload | Delay
FaultPlan = Callable[[RequestInfo], Action | None]


# --------------------------------------------------------------------------------------------------------------
# Counting


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request, whatever the outcome, so a test can check traffic per request.

    ``body_bytes`` is how much of the request body was written to the upstream; ``forwarded`` says the
    whole request (body included) was; ``status`` is the status the client was sent (the upstream's, a
    :class:`Respond`'s, or the proxy's own 502/400), ``None`` if no response head was sent.
    """

    seq: int
    method: str
    path: str
    query: dict[str, str]
    body_bytes: int
    forwarded: bool
    status: int | None
    action: str


class ProxyStats:
    """Thread-safe counters of what really reached the upstream.

    Two byte counts, because they answer different questions: :meth:`body_bytes` counts only requests the
    upstream received in full (the work a server could act on, e.g. "each part was uploaded once"), and
    :meth:`sent_body_bytes` also counts the partial bodies of interrupted requests (the traffic a retry
    wasted).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._body_bytes: Counter[str] = Counter()
        self._sent_body_bytes: Counter[str] = Counter()
        self._records: list[RequestRecord] = []
        self._connections = 0

    def requests(self, method: str | None = None) -> int:
        """Requests forwarded upstream in full (all methods when ``method`` is None)."""
        with self._lock:
            return _pick(self._requests, method)

    def body_bytes(self, method: str | None = None) -> int:
        """Request-body bytes of requests forwarded upstream in full."""
        with self._lock:
            return _pick(self._body_bytes, method)

    def sent_body_bytes(self, method: str | None = None) -> int:
        """Request-body bytes written upstream, including those of requests that were cut off."""
        with self._lock:
            return _pick(self._sent_body_bytes, method)

    def records(self, method: str | None = None) -> list[RequestRecord]:
        """A snapshot of finished exchanges in the order they ended (forwarded or not; see ``forwarded``)."""
        with self._lock:
            return [r for r in self._records if method is None or r.method == method.upper()]

    def completed(self, method: str | None = None) -> list[RequestRecord]:
        """Records of requests forwarded upstream in full."""
        return [r for r in self.records(method) if r.forwarded]

    def connections(self) -> int:
        """Client connections accepted, to check that a client reuses connections (keep-alive)."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Start counting afresh (between the phases of a test); request sequence numbers continue."""
        with self._lock:
            self._requests.clear()
            self._body_bytes.clear()
            self._sent_body_bytes.clear()
            self._records.clear()
            self._connections = 0

    def _count_sent(self, method: str, count: int) -> None:
        with self._lock:
            self._sent_body_bytes[method] += count

    def _count_forwarded(self, method: str, count: int) -> None:
        with self._lock:
            self._requests[method] += 1
            self._body_bytes[method] += count

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)


def _pick(counter: Counter[str], method: str | None) -> int:
    return sum(counter.values()) if method is None else counter[method.upper()]


# --------------------------------------------------------------------------------------------------------------
# The proxy


class Proxy:
    """A loopback HTTP/1.1 reverse proxy in front of ``upstream`` (``http://host:port``); see the module doc.

    Create it with :meth:`start`; use it as a context manager or call :meth:`stop`.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1", *, peek_bytes: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, not {upstream!r}")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the proxy listens on loopback only, not {host!r}")
        if peek_bytes < 0:
            raise ValueError("peek_bytes must be >= 0")
        self.upstream = upstream
        self.peek_bytes = peek_bytes  # request bodies up to this size are shown to the plan (RequestInfo.body)
        self.host = "127.0.0.1" if host == "localhost" else host
        self._family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._upstream_address = (parts.hostname, parts.port or 80)
        self.stats = ProxyStats()
        self.plan_errors: list[BaseException] = []
        self._plan: FaultPlan | None = None
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._connections: dict[_ClientConnection, threading.Thread] = {}
        self._stopping = threading.Event()
        # Listener state, owned by the accept thread; down()/up() ask for changes and wait under _cond.
        self._cond = threading.Condition()
        self._down_until: float | None = None
        self._wanted = 0
        self._applied = 0
        self._listen_error: OSError | None = None
        self._listener: socket.socket | None = self._bind(0)
        self._listener.listen(_BACKLOG)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._placeholder: socket.socket | None = None
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"proxy:{self.port}:accept", daemon=True)

    @classmethod
    def start(cls, upstream: str, host: str = "127.0.0.1", *, peek_bytes: int = 0) -> Proxy:
        """Bind a free loopback port and serve on a daemon thread (``peek_bytes``: see :class:`RequestInfo`)."""
        proxy = cls(upstream, host, peek_bytes=peek_bytes)
        proxy._accept_thread.start()
        log.debug("proxy %s -> %s started", proxy.url, upstream)
        return proxy

    @property
    def address(self) -> str:
        """``host:port`` as clients put it in the Host header (and presigned URLs sign it)."""
        return f"[{self.host}]:{self.port}" if self._family == socket.AF_INET6 else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def active_connections(self) -> int:
        """Client connections still being served; 0 after the clients are gone shows no thread leaked."""
        with self._lock:
            return len(self._connections)

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """Choose the action for every request from now on (``None``: forward everything).

        The plan runs on connection threads, possibly concurrently, so one with state must lock. If it
        raises or returns something that is not an action, the request is forwarded and the error kept in
        :attr:`plan_errors` (a test should assert that list is empty rather than hunt for a log line).
        """
        self._plan = plan

    def body_bytes(self, method: str | None = "PUT") -> int:
        """Body bytes of requests that reached the upstream in full (PUT by default: the upload traffic)."""
        return self.stats.body_bytes(method)

    def reset(self) -> None:
        """Reset the counters (not the fault plan)."""
        self.stats.reset()

    def down(self, seconds: float | None = None, *, drop_connections: bool = True) -> None:
        """Act like a server that is down: new connections are refused (``ECONNREFUSED``) until :meth:`up`,
        or for ``seconds`` if given (then the proxy comes back on its own).

        The listening socket is closed while a bound, non-listening socket keeps holding the port
        (``SO_REUSEPORT``), so the kernel refuses connections and nothing else can take the port: the proxy
        comes back on the same port, which matters because presigned URLs name it. Connections already
        open are reset too, unless ``drop_connections`` is False, as a crashed server's would be.
        Returns once new connections are refused.
        """
        with self._cond:
            self._down_until = math.inf if seconds is None else time.monotonic() + seconds
            self._wanted += 1
        self._await_listener_change()
        if drop_connections:
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                connection.abort.set()

    def up(self) -> None:
        """Accept connections again, on the same port; returns once it does."""
        with self._cond:
            self._down_until = None
            self._wanted += 1
        self._await_listener_change()
        if self._listen_error is not None:
            raise RuntimeError(f"proxy could not listen on port {self.port} again") from self._listen_error

    def stop(self) -> None:
        """Stop serving and end every connection (reset); bounded even with stalled or slow exchanges.

        Safe to call twice. Threads notice within a poll interval; one that does not within a few seconds
        (it would have to be stuck outside the proxy's own I/O) is left behind as a daemon and logged.
        """
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + _STOP_TIMEOUT
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout=_STOP_TIMEOUT)
        with self._lock:
            threads = list(self._connections.values())
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.debug("proxy %s: %s did not stop in time", self.url, thread.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- listening ---------------------------------------------------------------------------------------------

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if _SO_REUSEPORT is not None:
                # Lets the placeholder hold the port while the listener is closed (see down()).
                sock.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _await_listener_change(self) -> None:
        with self._cond:
            wanted = self._wanted
            done = self._cond.wait_for(
                lambda: self._applied >= wanted or self._stopping.is_set() or not self._accept_thread.is_alive(),
                timeout=_STOP_TIMEOUT,
            )
        if not done:
            raise RuntimeError("the proxy's accept thread did not respond")

    def _sync_listener(self) -> None:
        """Open or close the listener as down()/up() (or the end of a timed down()) ask."""
        with self._cond:
            until, wanted = self._down_until, self._wanted
        want_up = until is None or time.monotonic() >= until
        if want_up and self._listener is None:
            try:
                listener = self._bind(self.port)
                listener.listen(_BACKLOG)
                listener.settimeout(_POLL)
            except OSError as exc:
                log.debug("proxy %s: cannot listen again: %s", self.url, exc)
                self._listen_error = exc
            else:
                self._listener, self._listen_error = listener, None
                if self._placeholder is not None:
                    self._placeholder.close()
                    self._placeholder = None
                log.debug("proxy %s is up", self.url)
        elif not want_up and self._listener is not None:
            if _SO_REUSEPORT is not None and self._placeholder is None:
                try:
                    self._placeholder = self._bind(self.port)
                except OSError as exc:
                    log.debug("proxy %s: cannot hold the port while down: %s", self.url, exc)
            self._listener.close()  # the kernel resets connections still waiting in the backlog
            self._listener = None
            log.debug("proxy %s is down", self.url)
        with self._cond:
            self._applied = max(self._applied, wanted)
            self._cond.notify_all()

    def _accept_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._sync_listener()
                    listener = self._listener
                    if listener is None:
                        self._stopping.wait(_POLL)
                        continue
                    try:
                        sock, peer = listener.accept()
                    except TimeoutError:
                        continue
                    self._spawn(sock, peer)
                except Exception:
                    log.debug("proxy %s: accept loop error", self.url, exc_info=True)
                    self._stopping.wait(_POLL)
        finally:
            for held in (self._listener, self._placeholder):
                if held is not None:
                    with contextlib.suppress(OSError):
                        held.close()
            self._listener = self._placeholder = None
            with self._cond:
                self._cond.notify_all()

    def _spawn(self, sock: socket.socket, peer: tuple[Any, ...]) -> None:
        connection = _ClientConnection(self, sock)
        thread = threading.Thread(target=connection.run, name=f"proxy:{self.port}:client-{peer[1]}", daemon=True)
        with self._lock:
            if self._stopping.is_set():
                _reset_close(sock)
                return
            self._connections[connection] = thread
        self.stats._count_connection()
        thread.start()

    def _forget(self, connection: _ClientConnection) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    # -- per request -------------------------------------------------------------------------------------------

    def _request_info(self, request: h11.Request, body: bytes = b"") -> RequestInfo:
        target = request.target.decode("latin-1")
        parts = urlsplit(target)
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        with self._lock:
            seq = next(self._seq)
        return RequestInfo(
            method=request.method.decode("latin-1"),
            target=target,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            seq=seq,
            body=body,
        )

    def _choose(self, info: RequestInfo) -> Action:
        plan = self._plan
        if plan is None:
            return Forward()
        try:
            action = plan(info)
        except Exception as exc:
            log.debug("proxy %s: fault plan raised for %s %s", self.url, info.method, info.target, exc_info=True)
            self.plan_errors.append(exc)
            return Forward()
        if action is None:
            return Forward()
        if not isinstance(action, Action):
            self.plan_errors.append(TypeError(f"fault plan returned {action!r}, not an action"))
            return Forward()
        return action


# --------------------------------------------------------------------------------------------------------------
# Connections


class _CancelledError(Exception):
    """The proxy is stopping or down() dropped the connection: end it now, with a reset."""


class _ResetClientError(Exception):
    """End the client connection with an RST: a fault, or mirroring an upstream that reset."""


class _CloseClientError(Exception):
    """End the client connection with a clean FIN: a truncation, a stall's end, a 502, an upstream's close."""


class _ClientGoneError(Exception):
    """The client's socket failed; nothing can be sent to it any more."""


class _UpstreamError(Exception):
    """The upstream's socket failed or it spoke garbage; kept apart so the client is told, not blamed."""

    def __init__(self, message: str, *, reset: bool = False, garbage: bool = False) -> None:
        super().__init__(message)
        self.reset = reset  # it reset the connection (so should the client's)
        self.garbage = garbage  # it sent something that is not HTTP


class _EarlyResponseError(Exception):
    """The upstream answered before taking the whole request body (a 403 for a bad signature, a 413)."""

    def __init__(self, first: h11.Response) -> None:
        super().__init__("upstream answered early")
        self.first = first


_Event = h11.Request | h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage | h11.ConnectionClosed


class _Endpoint:
    """A socket and its h11 state machine, whose waits give up when the connection is cancelled."""

    def __init__(
        self, sock: socket.socket, conn: h11.Connection, cancelled: Callable[[], bool], *, upstream: bool
    ) -> None:
        self.sock = sock
        self.conn = conn
        self._cancelled = cancelled
        self._upstream = upstream
        self.eof = False  # the peer closed its side: a protocol error after this is a cut, not garbage
        self.pending: deque[_Event] = deque()  # events read ahead (a peeked body), handed out first

    def _failed(self, exc: Exception) -> Exception:
        if self._upstream:
            return _UpstreamError(str(exc) or type(exc).__name__, reset=isinstance(exc, ConnectionResetError))
        return _ClientGoneError(str(exc) or type(exc).__name__)

    def recv(self, deadline: float | None = None) -> bytes | None:
        """Up to 64 KiB (``b""`` at EOF), or None once ``deadline`` passed."""
        while True:
            if self._cancelled():
                raise _CancelledError
            timeout = _POLL
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return None
            try:
                self.sock.settimeout(timeout)
                data = self.sock.recv(_CHUNK)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._failed(exc) from exc
            self.eof = not data
            return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._cancelled():
                raise _CancelledError
            try:
                self.sock.settimeout(_POLL)
                sent = self.sock.send(view)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._failed(exc) from exc
            view = view[sent:]

    def next_event(self, deadline: float | None = None) -> _Event | None:
        """The next complete event; None once ``deadline`` passed."""
        if self.pending:
            return self.pending.popleft()
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._upstream:
                    raise _UpstreamError(f"bad HTTP from upstream: {exc}", garbage=not self.eof) from exc
                raise
            if event is h11.NEED_DATA:
                data = self.recv(deadline)
                if data is None:
                    return None
                self.conn.receive_data(data)
                continue
            if event is h11.PAUSED:
                # Only the client side can pause (a pipelined request); callers never read that far.
                raise _CloseClientError("unexpected pipelined data")
            return cast(_Event, event)

    def send(self, event: h11.Request | h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage) -> None:
        data = self.conn.send(event)
        if data:
            self.write(data)

    def send_wire(self, event: h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage) -> bytes:
        """The bytes h11 would put on the wire for ``event``, for callers that write only part of them."""
        return self.conn.send(event) or b""


class _Upstream:
    """The upstream connection of one client connection, made lazily and remade when the server closed it."""

    def __init__(self, address: tuple[str, int], cancelled: Callable[[], bool]) -> None:
        self._address = address
        self._cancelled = cancelled
        self.endpoint: _Endpoint | None = None

    def connect(self) -> _Endpoint:
        endpoint = self.endpoint
        if endpoint is not None and endpoint.conn.states == {h11.CLIENT: h11.IDLE, h11.SERVER: h11.IDLE}:
            if not _dropped(endpoint.sock):
                return endpoint
            log.debug("upstream closed an idle connection; reconnecting")
        self.close()
        try:
            sock = socket.create_connection(self._address, timeout=_CONNECT_TIMEOUT)
        except OSError as exc:
            raise _UpstreamError(f"cannot connect to {self._address}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.endpoint = _Endpoint(
            sock, h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD), self._cancelled, upstream=True
        )
        return self.endpoint

    def finish(self) -> None:
        """After a full exchange: keep the connection for the next request if HTTP allows, else drop it."""
        endpoint = self.endpoint
        if endpoint is not None and endpoint.conn.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            endpoint.conn.start_next_cycle()
        else:
            self.close()

    def close(self) -> None:
        """A plain close (FIN): an upstream cut off mid-request then sees exactly the bytes the stats counted."""
        if self.endpoint is not None:
            with contextlib.suppress(OSError):
                self.endpoint.sock.close()
            self.endpoint = None


@dataclass
class _Progress:
    """One exchange's outcome so far, recorded in the stats at most once."""

    info: RequestInfo
    action: Action
    stats: ProxyStats
    body_bytes: int = 0
    forwarded: bool = False
    status: int | None = None
    recorded: bool = False

    def respond(self, status: int) -> None:
        """Call before a response head goes out: the record must exist by the time a client has an answer in
        hand and looks at the stats (the request side is final by then)."""
        self.status = status
        self.record()

    def record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        self.stats._add(
            RequestRecord(
                seq=self.info.seq,
                method=self.info.method,
                path=self.info.path,
                query=self.info.query,
                body_bytes=self.body_bytes,
                forwarded=self.forwarded,
                status=self.status,
                action=type(self.action).__name__,
            )
        )


class _ClientConnection:
    """Serves one client connection on its own thread: a keep-alive loop of exchanges."""

    def __init__(self, proxy: Proxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.abort = threading.Event()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = _Endpoint(
            sock, h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD), self.cancelled, upstream=False
        )
        self.upstream = _Upstream(proxy._upstream_address, self.cancelled)

    def cancelled(self) -> bool:
        return self.abort.is_set() or self.proxy._stopping.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep that ends at once (raising _CancelledError) when the proxy stops or drops the connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.abort.wait(min(left, _POLL)) or self.proxy._stopping.is_set():
                raise _CancelledError

    def run(self) -> None:
        """Never raises: whatever happens ends this connection, not the proxy."""
        reset = False
        try:
            self._serve()
        except (_CancelledError, _ResetClientError) as exc:
            log.debug("proxy %s: resetting client connection: %s", self.proxy.url, exc or type(exc).__name__)
            reset = True
        except (_CloseClientError, _ClientGoneError) as exc:
            log.debug("proxy %s: closing client connection: %s", self.proxy.url, exc)
        except h11.RemoteProtocolError as exc:
            log.debug("proxy %s: bad HTTP from client: %s", self.proxy.url, exc)
            if not self.client.eof:
                self._send_error(exc.error_status_hint, f"bad request: {exc}")
        except Exception:
            log.debug("proxy %s: connection failed", self.proxy.url, exc_info=True)
            reset = True
        finally:
            try:
                self.upstream.close()
                if reset:
                    _reset_close(self.client.sock)
                else:
                    self._close_cleanly()
            except Exception:
                log.debug("proxy %s: error while closing", self.proxy.url, exc_info=True)
            finally:
                self.proxy._forget(self)

    def _close_cleanly(self) -> None:
        """FIN, then drain briefly: closing with unread input would make the kernel send an RST instead."""
        sock = self.client.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER
            while not self.cancelled() and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(min(left, _POLL))
                try:
                    if not sock.recv(_CHUNK):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            sock.close()

    def _serve(self) -> None:
        conn = self.client.conn
        while True:
            event = self.client.next_event()
            if not isinstance(event, h11.Request):
                return  # the client closed its keep-alive connection
            self._exchange(event)
            if conn.states != {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
                return  # Connection: close (either side), or a body left unread
            conn.start_next_cycle()

    def _peek(self, request: h11.Request) -> bytes:
        """Read a small request body ahead so the plan can see it; its events are replayed to whoever reads on."""
        limit = self.proxy.peek_bytes
        if not limit or self.client.conn.they_are_waiting_for_100_continue:
            return b""
        headers = dict(request.headers)
        if b"transfer-encoding" in headers:
            return b""
        length = int(headers.get(b"content-length", b"0"))
        if not 0 < length <= limit:
            return b""
        body = bytearray()
        events: list[_Event] = []
        while True:
            event = self.client.next_event()
            events.append(event)
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.client.pending.extend(events)
                return bytes(body)
            else:
                raise _ClientGoneError(f"unexpected {event!r} in a request body")

    def _exchange(self, request: h11.Request) -> None:
        info = self.proxy._request_info(request, self._peek(request))
        action = self.proxy._choose(info)
        log.debug("proxy %s: #%d %s %s -> %s", self.proxy.url, info.seq, info.method, info.target, action)
        progress = _Progress(info, action, self.proxy.stats)
        try:
            if isinstance(action, Respond):
                self._respond(action, info.method, progress)
            elif isinstance(action, Stall):
                self._stall(action)
            else:
                if isinstance(action, Delay):
                    self.wait(action.seconds)
                self._forward(request, info, action, progress)
        finally:
            progress.record()  # before the connection is reset or closed, for the same reason
            self.client.pending.clear()

    # -- actions that never reach the upstream -----------------------------------------------------------------

    def _discard_request_body(self, deadline: float | None = None, pacer: _Pacer | None = None) -> bool:
        """Read the rest of the request body and drop it; False if ``deadline`` came first."""
        while self.client.conn.their_state is h11.SEND_BODY:
            event = self.client.next_event(deadline)
            if event is None:
                return False
            if pacer is not None and isinstance(event, h11.Data):
                for _ in pacer.pieces(event.data):  # each piece waits for its turn
                    pass
        return True

    def _respond(self, action: Respond, method: str, progress: _Progress) -> None:
        if not self.client.conn.they_are_waiting_for_100_continue:
            self._discard_request_body()
        headers = dict(action.headers or {})
        bodiless = method == "HEAD" or action.status in (204, 304)
        framed = any(name.lower() in ("content-length", "transfer-encoding") for name in headers)
        if not framed and action.status not in (204, 304):
            headers["Content-Length"] = str(len(action.body))
        progress.respond(action.status)
        self.client.send(
            h11.Response(status_code=action.status, headers=list(headers.items()), reason=_reason(action.status))
        )
        if action.body and not bodiless:
            self.client.send(h11.Data(data=action.body))
        self.client.send(h11.EndOfMessage())

    def _stall(self, action: Stall) -> None:
        deadline = time.monotonic() + action.seconds
        rate = action.take_bytes_per_second
        self._discard_request_body(deadline, _Pacer(rate, self.wait) if rate is not None else None)
        # Watch the socket rather than sleep, so a client that gave up frees this thread at once.
        while (data := self.client.recv(deadline)) is not None:
            if not data:
                raise _ClientGoneError("client left during the stall")
        raise _CloseClientError(f"stalled {action.seconds}s")

    def _send_error(self, status: int, message: str, progress: _Progress | None = None) -> None:
        """The proxy's own error response (400 for garbage, 502 for an unreachable upstream), if still possible."""
        if self.client.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"test proxy: {message}\n".encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")]
        if progress is not None:
            progress.respond(status)
        try:
            self.client.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
            self.client.send(h11.Data(data=body))
            self.client.send(h11.EndOfMessage())
        except (_ClientGoneError, _CancelledError, h11.LocalProtocolError) as exc:
            log.debug("proxy %s: could not send %d: %s", self.proxy.url, status, exc)

    # -- forwarding --------------------------------------------------------------------------------------------

    def _forward(self, request: h11.Request, info: RequestInfo, action: Action, progress: _Progress) -> None:
        try:
            upstream = self.upstream.connect()
        except _UpstreamError as exc:
            self._send_error(502, str(exc), progress)
            raise _CloseClientError("upstream unreachable") from exc
        first: h11.Response | None = None
        client_sending = False
        try:
            self._send_request(upstream, request, info, action, progress)
        except _UpstreamError as exc:
            # The upstream stopped taking the body. Often it has answered (and closed): relay that answer,
            # unless a ResetRequest was asked for: the test wants its reset, whatever the upstream thought.
            log.debug("proxy %s: upstream failed while receiving the request: %s", self.proxy.url, exc)
            if isinstance(action, ResetRequest):
                raise _ResetClientError("ResetRequest (the upstream had given up already)") from exc
            first = self._early_response(upstream, exc)
            client_sending = True
        except _EarlyResponseError as early:
            # Refused instead of "100 Continue": the client may or may not send its body now, so the
            # connection cannot be reused (h11 then closes it).
            first = early.first
        self._relay_response(upstream, action, progress, first)
        if client_sending:
            # The client is still sending the body the upstream refused; take it, as the server would have,
            # so the client gets to read the response and keep-alive survives.
            self._discard_request_body(time.monotonic() + 10 * _LINGER)

    def _send_request(
        self, upstream: _Endpoint, request: h11.Request, info: RequestInfo, action: Action, progress: _Progress
    ) -> None:
        limit = self._reset_limit(request, action)
        if limit is not None and limit < 0:
            raise _ResetClientError("ResetRequest of a request without body: not forwarded")
        headers = request.headers.raw_items()
        if not any(name.lower() == b"host" for name, _ in headers):  # an HTTP/1.0 client; h11 sends HTTP/1.1
            host, port = self.proxy._upstream_address
            headers = [(b"Host", f"{host}:{port}".encode()), *headers]
        upstream.send(h11.Request(method=request.method, target=request.target, headers=headers))
        if self.client.conn.they_are_waiting_for_100_continue:
            self._relay_continue(upstream)
        if limit == 0:
            raise _ResetClientError("ResetRequest after the head")
        method = info.method
        pacer = _Pacer(action.bytes_per_second, self.wait) if isinstance(action, SlowUpload) else None
        while True:
            event = self.client.next_event()
            if isinstance(event, h11.Data):
                data = event.data
                cut = limit is not None and progress.body_bytes + len(data) >= limit
                if cut and limit is not None:
                    data = data[: limit - progress.body_bytes]
                for piece in pacer.pieces(data) if pacer is not None and data else (data,) if data else ():
                    upstream.send(h11.Data(data=piece))
                    progress.body_bytes += len(piece)
                    self.proxy.stats._count_sent(method, len(piece))
                if cut:
                    raise _ResetClientError(f"ResetRequest after {progress.body_bytes} body bytes")
            elif isinstance(event, h11.EndOfMessage):
                if limit is not None:
                    raise _ResetClientError(f"ResetRequest: body ended after {progress.body_bytes} bytes")
                upstream.send(h11.EndOfMessage(headers=event.headers))
                progress.forwarded = True
                self.proxy.stats._count_forwarded(method, progress.body_bytes)
                return
            else:
                raise _ClientGoneError(f"unexpected {event!r} in a request body")

    @staticmethod
    def _reset_limit(request: h11.Request, action: Action) -> int | None:
        """How many body bytes a ResetRequest lets through: None without one, -1 to forward nothing."""
        if not isinstance(action, ResetRequest):
            return None
        headers = dict(request.headers)  # h11 has validated these: one Content-Length at most
        if b"transfer-encoding" in headers:
            return action.after_bytes
        length = int(headers.get(b"content-length", b"0"))
        if length == 0:
            return -1
        return min(action.after_bytes, length - 1)

    def _relay_continue(self, upstream: _Endpoint) -> None:
        """Pass the upstream's "100 Continue" on, or its early refusal, so the client decides as it would
        talking to the server directly; a server that ignores Expect gets the body after a second."""
        event = upstream.next_event(time.monotonic() + _CONTINUE_WAIT)
        if event is None:
            return
        if isinstance(event, h11.InformationalResponse):
            self._relay_informational(event)
            return
        if isinstance(event, h11.Response):
            raise _EarlyResponseError(event)
        raise _UpstreamError(f"unexpected {event!r} before the request body")

    def _relay_informational(self, event: h11.InformationalResponse) -> None:
        if event.status_code == 101:
            raise _ResetClientError("protocol upgrades are not supported")
        self.client.send(_informational(event))

    def _early_response(self, upstream: _Endpoint, failure: _UpstreamError) -> h11.Response:
        """The response an upstream sent before giving up on the request body; else mirror its failure."""
        try:
            while True:
                event = upstream.next_event(time.monotonic() + _EARLY_RESPONSE_WAIT)
                if isinstance(event, h11.Response):
                    return event
                if not isinstance(event, h11.InformationalResponse):
                    break
        except _UpstreamError:
            pass
        raise _ResetClientError(f"upstream failed mid-request: {failure}") from failure

    def _relay_response(
        self, upstream: _Endpoint, action: Action, progress: _Progress, first: h11.Response | None
    ) -> None:
        shaper = _Shaper(self.client, action, self.wait)
        event: _Event | None = first
        while True:
            if event is None:
                try:
                    event = upstream.next_event()
                except _UpstreamError as exc:
                    self._upstream_failed_in_response(exc, progress)
            if isinstance(event, h11.InformationalResponse):
                self._relay_informational(event)  # not "the response": never shaped
            elif isinstance(event, h11.Response):
                progress.respond(action.status if isinstance(action, Replace) else event.status_code)
                shaper.head(
                    h11.Response(status_code=event.status_code, headers=event.headers.raw_items(), reason=event.reason)
                )
            elif isinstance(event, h11.Data):
                shaper.body(event.data)
            elif isinstance(event, h11.EndOfMessage):
                shaper.end(h11.EndOfMessage(headers=event.headers))
                self.upstream.finish()
                return
            else:
                self._upstream_failed_in_response(_UpstreamError("upstream closed the connection"), progress)
            event = None

    def _upstream_failed_in_response(self, exc: _UpstreamError, progress: _Progress) -> NoReturn:
        """Tell the client as a direct client would learn it: a reset for a reset, a close for a close, and a
        502 only for garbage the client could not have parsed anyway."""
        self.upstream.close()
        if exc.reset:
            raise _ResetClientError(f"upstream reset: {exc}") from exc
        if exc.garbage and progress.status is None:
            self._send_error(502, str(exc), progress)
        raise _CloseClientError(f"upstream failed: {exc}") from exc


class _Shaper:
    """Writes a response to the client as the action wants it: whole, cut after some wire bytes (ResetResponse),
    cut after some body bytes (Truncate), slowly (SlowBody), or not at all but another in its place (Replace)."""

    def __init__(self, client: _Endpoint, action: Action, wait: Callable[[float], None]) -> None:
        self._client = client
        self._replace = action if isinstance(action, Replace) else None
        self._budget = action.after_bytes if isinstance(action, ResetResponse) else None  # wire bytes left
        self._keep = action.keep_bytes if isinstance(action, Truncate) else None  # body bytes left
        self._pacer = _Pacer(action.bytes_per_second, wait) if isinstance(action, SlowBody) else None

    def head(self, response: h11.Response) -> None:
        if self._replace is not None:
            return
        self._write(self._client.send_wire(response))

    def body(self, data: bytes) -> None:
        if self._replace is not None:
            return
        if self._keep is not None:
            if len(data) > self._keep:
                if self._keep:
                    self._write(self._client.send_wire(h11.Data(data=data[: self._keep])))
                raise _CloseClientError("Truncate: response body cut short")
            self._keep -= len(data)
        pieces = [data] if self._pacer is None else self._pacer.pieces(data)
        for piece in pieces:
            self._write(self._client.send_wire(h11.Data(data=piece)))

    def end(self, trailer: h11.EndOfMessage) -> None:
        if self._replace is not None:
            self._send_replacement(self._replace)
            return
        self._write(self._client.send_wire(trailer))
        if self._budget is not None:
            raise _ResetClientError("ResetResponse: the response was shorter than after_bytes")

    def _send_replacement(self, replace: Replace) -> None:
        headers = dict(replace.headers or {})
        framed = any(name.lower() in ("content-length", "transfer-encoding") for name in headers)
        if not framed and replace.status not in (204, 304):
            headers["Content-Length"] = str(len(replace.body))
        self._client.send(
            h11.Response(status_code=replace.status, headers=list(headers.items()), reason=_reason(replace.status))
        )
        if replace.body and replace.status not in (204, 304):
            self._client.send(h11.Data(data=replace.body))
        self._client.send(h11.EndOfMessage())

    def _write(self, data: bytes) -> None:
        if self._budget is not None and len(data) >= self._budget:
            self._client.write(data[: self._budget])
            raise _ResetClientError("ResetResponse: after_bytes relayed")
        self._client.write(data)
        if self._budget is not None:
            self._budget -= len(data)


def _reason(status: int) -> str:
    """A reason phrase: h11 sends none by default, and botocore misreads a status line without one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _informational(event: h11.InformationalResponse) -> h11.InformationalResponse:
    return h11.InformationalResponse(
        status_code=event.status_code, headers=event.headers.raw_items(), reason=event.reason
    )


class _Pacer:
    """Cuts a body into small pieces and sleeps between them so that the average rate is as asked."""

    def __init__(self, bytes_per_second: int, wait: Callable[[float], None]) -> None:
        self._rate = bytes_per_second
        self._piece = max(1, bytes_per_second // 20)
        self._wait = wait
        self._started = time.monotonic()
        self._sent = 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), self._piece):
            piece = bytes(view[start : start + self._piece])
            self._wait(max(0.0, self._started + self._sent / self._rate - time.monotonic()))
            self._sent += len(piece)
            yield piece


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle upstream connection was closed (or spoke out of turn), as urllib3 checks before reuse."""
    try:
        sock.setblocking(False)
        try:
            sock.recv(1, socket.MSG_PEEK)  # EOF, or bytes nobody asked for: either way unusable
            return True
        finally:
            sock.setblocking(True)
    except BlockingIOError:
        return False
    except OSError:
        return True


def _reset_close(sock: socket.socket) -> None:
    """Close so that the peer sees a connection reset (RST), not an orderly end of stream."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
