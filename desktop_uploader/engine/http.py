"""HTTP plumbing shared by the API client and the part senders.

One ``requests.Session`` per thread, closed when the thread ends: each worker keeps its own
keep-alive connections, and no lock is shared across the hot path. Sessions send bodies in blocks
of up to 1 MiB instead of urllib3's 16 KiB, which cuts the Python-level loop per GiB sixty-fold;
the part body itself decides how much each read returns, so a slow link still sees small,
pause-friendly blocks.

This module is also the boundary where ``requests`` errors and storage's HTTP statuses become the
engine's own exceptions (see :mod:`desktop_uploader.engine.errors`), each with a sentence for people;
the upload API's answers are read in :mod:`api_answers`.
"""

from __future__ import annotations

import email.utils
import io
import re
import socket
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from desktop_uploader.engine.errors import (
    AuthError,
    ForbiddenError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    Origin,
    RejectedError,
    ServerBusyError,
    StalledError,
    UploaderError,
    UrlExpiredError,
    storage_full,
)
from desktop_uploader.engine.perthread import PerThread

SEND_BLOCK = 1024 * 1024
USER_AGENT = "DesktopUploader"
NEXTJS_NO_ACTION = "x-nextjs-action-not-found"  # Next.js's 409 to a form POST on a route it doesn't have


PACED_BLOCK = 64 * 1024


class PacedBody(io.BytesIO):
    """A request body in memory, handed to the socket a block at a time.

    urllib3 sends a body under the *connect* timeout, and Python applies a socket timeout to a whole
    ``sendall``: given as one ``bytes``, a 4 MiB chunk had to be on its way within 10 s, so on a 3 Mbit/s
    uplink every chunk failed, every retry alike. Block by block, only a link that stops for the connect
    timeout fails. A fresh one per attempt: a retry sends the bytes from the start.
    """

    def read(self, size: int | None = -1) -> bytes:
        return super().read(PACED_BLOCK if size is None or size < 0 else min(size, PACED_BLOCK))


UNSENT_LOW_WATER = 128 * 1024


def socket_options() -> list[tuple[int, int, int | bytes]]:
    """Socket options that keep "sent" honest: bytes handed to the kernel are bytes on the wire.

    A connection's send buffer grows to several MiB (``tcp_wmem``), and the engine counts a byte as
    sent once the kernel takes it. On a 5 MB/s link every new part swallowed ~4 MiB at once: Auto
    read the burst as speed, a pause lost it, and a dropped part's buffer went on crossing the link
    for seconds, as waste. ``TCP_NOTSENT_LOWAT`` (Linux, macOS) lets the kernel hold only what the
    congestion window has in flight plus ``UNSENT_LOW_WATER`` not yet sent, so fast links keep full
    windows and slow ones stop hoarding. ``SO_LINGER`` 0 makes closing a connection a reset: when a
    part is shed, paused or cancelled mid-body, what its buffer still holds is thrown away instead of
    sent to storage that will discard it. A finished request has nothing buffered, so for it the
    reset changes nothing but the handshake.
    """
    options: list[tuple[int, int, int | bytes]] = list(HTTPConnection.default_socket_options)
    notsent = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if notsent is not None:
        options.append((socket.IPPROTO_TCP, notsent, UNSENT_LOW_WATER))
    linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
    options.append((socket.SOL_SOCKET, socket.SO_LINGER, linger))
    return options


class _BigBlockAdapter(HTTPAdapter):
    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.setdefault("blocksize", SEND_BLOCK)
        pool_kwargs.setdefault("socket_options", socket_options())
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def new_session(pool_size: int = 4) -> requests.Session:
    session = requests.Session()
    adapter = _BigBlockAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class Sessions:
    """A session per thread, closed when its thread ends, and all that are left when the owner shuts down.

    A session holds sockets: one kept for every thread that ever lived ran the app out of file
    descriptors in a window left open (see :mod:`desktop_uploader.engine.perthread`).
    """

    def __init__(self) -> None:
        self._sessions: PerThread[requests.Session] = PerThread(new_session, requests.Session.close)

    def get(self) -> requests.Session:
        return self._sessions.get()

    def open_count(self) -> int:
        return self._sessions.open_count()

    def close(self) -> None:
        self._sessions.close()


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{1,500})</Message>")


def storage_error_code(response: requests.Response) -> tuple[str, str]:
    text = response.text[:4096] if response.content else ""
    code = _XML_CODE.search(text)
    message = _XML_MESSAGE.search(text)
    return (code.group(1) if code else "", message.group(1) if message else "")


def api_error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:500]
    return ""


def error_for_s3(
    status: int,
    code: str,
    message: str,
    host: str,
    retry_after: float | None = None,
    *,
    own_credentials: bool = False,
) -> UploaderError:
    """An S3 error answer in words, marked with its origin; its code decides whether trying again can help."""
    error = _s3_error(status, code, message, host, retry_after, own_credentials=own_credentials)
    return error.at(Origin("storage", host, status=status, code=code))


def _s3_error(
    status: int,
    code: str,
    message: str,
    host: str,
    retry_after: float | None,
    *,
    own_credentials: bool,
) -> UploaderError:
    """An S3 error answer in words; its code decides whether trying again can help.

    ``own_credentials``: the request was signed with the user's keys (direct-S3), so a signature
    error means wrong keys; on a presigned URL it means presigned uploads don't work with this store.
    """
    if status == 403 and ("expired" in message.lower() or code in {"ExpiredToken", "RequestExpired"}):
        return UrlExpiredError("The upload link expired; getting a fresh one.")
    full = storage_full(status, code, message, host)
    if full is not None:
        return full
    if code in {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}:
        return IntegrityError("Storage received different bytes than were sent (a damaged transfer); resending.")
    if status in (408, 429) or status >= 500 or code in {"SlowDown", "RequestTimeout", "InternalError"}:
        return ServerBusyError(
            f"Storage at {host} is busy or unavailable (HTTP {status}{' ' + code if code else ''}).",
            status=status,
            retry_after=retry_after,
        )
    if own_credentials and code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}:
        return AuthError(f"Storage at {host} refused your access key or secret ({code}). Check them in Settings.")
    if status == 403:
        return ForbiddenError(
            f"Storage refused the upload ({code or 'HTTP 403'}). Presigned uploads may not work with this storage."
        )
    if status == 404 or code in {"NoSuchUpload", "NoSuchBucket"}:
        return NotFoundError(
            "Storage no longer knows this upload (it was completed or aborted elsewhere)."
            if code != "NoSuchBucket"
            else f"The bucket does not exist at {host}."
        )
    return RejectedError(
        f"Storage refused the part ({code or f'HTTP {status}'}: {message or 'no reason given'}).", status=status
    )


def error_for_storage_response(response: requests.Response) -> UploaderError:
    """A failed PUT to a presigned URL."""
    code, message = storage_error_code(response)
    return error_for_s3(
        response.status_code,
        code,
        message,
        host_of(response.url),
        retry_after_seconds(response.headers.get("Retry-After")),
    )


def tls_failure(text: str, host: str) -> UploaderError:
    """A secure connection that failed, from its OpenSSL text: for the API (requests) and storage (botocore)."""
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return RejectedError(f"The certificate of {host} is not trusted, so the connection was refused.")
    if "WRONG_VERSION_NUMBER" in text:  # TLS spoken to a plain-HTTP server (a CLI audit's https://)
        return NetworkError(f"{host} does not answer secure connections: is its address http:// rather than https://?")
    return NetworkError(f"The secure connection to {host} broke.")


def error_for_exception(exc: requests.RequestException, url: str, read_timeout: float) -> UploaderError:
    host = host_of(url)
    if isinstance(exc, requests.ConnectTimeout):
        return NetworkError(f"Could not connect to {host}: it did not answer in time.")
    if isinstance(exc, requests.ReadTimeout):
        return StalledError(f"The connection to {host} stalled: nothing moved for {read_timeout:g} s.")
    if isinstance(exc, requests.exceptions.SSLError):
        return tls_failure(str(exc), host)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return RejectedError(f"'{url[:80]}' is not a usable address.")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return NetworkError(f"The connection to {host} broke while the answer was arriving.")
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "getaddrinfo" in text or "nodename" in text:
            return NetworkError(f"Could not find {host}: check your internet connection and the server address.")
        if "Connection refused" in text:
            return NetworkError(f"{host} refused the connection: the server may be down.")
        return NetworkError(f"The connection to {host} was lost.")
    return NetworkError(f"Talking to {host} failed ({type(exc).__name__}).")
