"""Presigned part URLs, and sending a part through one.

``UrlBook`` holds the URLs an upload has been given and asks the server for more (``sign``) as workers
need them: concurrent needs coalesce into one round trip, a URL is not used within a safety margin of
its expiry, and an "expired" 403 re-signs the part without counting as a failed attempt. A server
without ``sign`` can't renew them: a link past its time ends the upload with
:class:`LinksExpiredError`, which lifecycle.py answers by starting over once.
``PresignedSender`` PUTs one part's bytes to its URL, with the checksum or Content-MD5 signed into
it where the server can, and says what storage answered in the engine's errors. Before a byte goes,
it checks the URL for a checksum the server signed in that the part can't match (AWS SDK v3's
defaults pin the empty body's CRC32): storage would refuse every part, so that is said at once, as
:class:`PinnedChecksumError`, instead of being retried as damage in transit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

from desktop_uploader.engine import checksums
from desktop_uploader.engine.api_client import ApiClient, SignedUrl
from desktop_uploader.engine.errors import LinksExpiredError, PinnedChecksumError, ProtocolError, UrlExpiredError
from desktop_uploader.engine.http import Sessions, error_for_exception, error_for_storage_response
from desktop_uploader.engine.methods.base import JobContext
from desktop_uploader.engine.methods.multipart import EtagCheck, PartQueue
from desktop_uploader.engine.partbody import PartBody, md5_of_span
from desktop_uploader.engine.planner import PartSpan
from desktop_uploader.engine.signed_urls import duration, pinned_checksum_problem, signed_lifetime

log = logging.getLogger(__name__)

# URLs are signed a few parts ahead, never thousands at once.
MIN_BATCH = 8
MAX_BATCH = 64


def expiry_margin(lifetime: float) -> float:
    """How long before expiry a URL stops being used: long enough to start a PUT, short enough to use it."""
    return min(60.0, lifetime * 0.25)


@dataclass(frozen=True)
class _Entry:
    url: str
    expires_at: float
    lifetime: float
    digest: str | None


class UrlBook:
    """Presigned URLs by part number; thread-safe; signs on demand in coalesced batches."""

    def __init__(
        self,
        api: ApiClient,
        upload_id: str,
        s3_key: str,
        *,
        can_sign: bool,
        queue: PartQueue | None = None,
        batch: int = MIN_BATCH,
        checksum: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.api = api
        self.clock = clock or api.clock  # the clock the API's answers set deadlines on
        self.checksum = checksum  # the algorithm of the digests signed in; "" when they are Content-MD5s
        self.upload_id = upload_id
        self.s3_key = s3_key
        self.can_sign = can_sign
        self.queue = queue
        self.batch = batch
        self.sign_calls = 0
        # With digests signed in, the URL of each part needs its digest first; this computes it for the
        # parts coming next, so one sign call covers a batch instead of one round trip per part.
        self.digest_ahead: Callable[[int], str | None] | None = None
        self._entries: dict[int, _Entry] = {}
        self._wanted: dict[int, str | None] = {}
        self._signing = False
        self._cond = threading.Condition()

    def add(self, urls: dict[int, SignedUrl], digests: dict[int, str] | None = None, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._cond:
            for number, signed in urls.items():
                lifetime = max(0.0, signed.expires_at - now)
                digest = (digests or {}).get(number)
                self._entries[number] = _Entry(signed.url, signed.expires_at, lifetime, digest)
            self._cond.notify_all()

    def _usable(self, number: int, digest: str | None) -> str | None:
        entry = self._entries.get(number)
        if entry is None or entry.digest != digest:
            return None
        if entry.expires_at - self.clock() <= expiry_margin(entry.lifetime):
            return None
        return entry.url

    def forget(self, number: int) -> None:
        """Drop a URL so the next use signs afresh; without ``sign`` the URL is all there is, so it stays."""
        if not self.can_sign:
            return
        with self._cond:
            self._entries.pop(number, None)

    def expired(self, number: int) -> LinksExpiredError:
        """The end of an upload whose link for ``number`` is past its time, on a server that can't renew it."""
        with self._cond:
            entry = self._entries.get(number) or next(iter(self._entries.values()), None)
        lifetime = 0.0
        if entry is not None:  # as signed, not what was left when we got it (a resumed upload gets less)
            lifetime = signed_lifetime(entry.url) or entry.lifetime
        said = f" after {duration(lifetime)}" if lifetime else ""
        return LinksExpiredError(f"The server's upload links expired{said} and it can't renew them.", lifetime=lifetime)

    def get(self, number: int, digest: str | None = None) -> str:
        with self._cond:
            while True:
                url = self._usable(number, digest)
                if url is not None:
                    return url
                if not self.can_sign:
                    raise self.expired(number)
                self._wanted[number] = digest
                if not self._signing:
                    break
                self._cond.wait()
            self._signing = True
            wanted, self._wanted = self._wanted, {}
        try:
            self._sign(wanted)
        except BaseException:
            with self._cond:
                for other, theirs in wanted.items():
                    if other != number:
                        self._wanted.setdefault(other, theirs)
            raise
        finally:
            with self._cond:
                self._signing = False
                self._cond.notify_all()
                fresh = self._entries.get(number)
        if fresh is not None and fresh.digest == digest:
            # Used as it is, even inside its margin: a 1 s link, known to a second, seemed spent on arrival,
            # and each part was signed about 15 times over (an audit). No link signed later would be longer.
            return fresh.url
        return self.get(number, digest)

    def _sign(self, wanted: dict[int, str | None]) -> None:
        numbers = list(wanted)
        digests = {n: d for n, d in wanted.items() if d}
        # Sign ahead for the next parts, but not on the first call when digests are signed in: the
        # first part byte would wait for checksums over the whole batch (most of a 64 MiB file). The
        # parts sent meanwhile checksum their own bytes, and the next call takes the batch ahead.
        first_with_digests = bool(digests) and self.sign_calls == 0
        if self.queue is not None and (not digests or self.digest_ahead is not None) and not first_with_digests:
            for ahead in self.queue.upcoming(self.batch):
                if len(numbers) >= self.batch:
                    break
                digest = self.digest_ahead(ahead) if digests and self.digest_ahead is not None else None
                if ahead not in wanted and self._usable(ahead, digest) is None:
                    numbers.append(ahead)
                    if digest:
                        digests[ahead] = digest
        signed = self.api.sign(
            self.upload_id,
            self.s3_key,
            sorted(numbers),
            content_md5=None if self.checksum else (digests or None),
            checksums=(digests or None) if self.checksum else None,
            checksum=self.checksum,
        )
        self.sign_calls += 1
        self.add(signed, digests)


class PresignedSender:
    def __init__(
        self,
        ctx: JobContext,
        urls: UrlBook,
        sessions: Sessions,
        *,
        content_md5: bool,
        etag_check: EtagCheck | None,
        checksum: str = "",
    ) -> None:
        self.ctx = ctx
        self.urls = urls
        self.sessions = sessions
        self.content_md5 = content_md5
        self.checksum = checksum  # the upload's checksum algorithm; "" for none
        self.etag_check = etag_check
        self.hashes_body = etag_check is not None
        self._digests: dict[int, str] = {}
        self._lock = threading.Lock()

    def _digest(self, span: PartSpan) -> str:
        with self._lock:
            known = self._digests.get(span.number)
        if known is None:
            where = (self.ctx.path, span.offset, span.size, self.ctx.control)
            known = checksums.checksum_of_span(self.checksum, *where) if self.checksum else md5_of_span(*where)
            with self._lock:
                self._digests[span.number] = known
        return known

    def forget(self, number: int) -> None:
        self.urls.forget(number)
        with self._lock:
            self._digests.pop(number, None)

    def url_digest(self, span: PartSpan) -> str | None:
        """The digest signed into this part's URL: its checksum, its Content-MD5, or none."""
        return self._digest(span) if self.checksum or self.content_md5 else None

    def part_checksum(self, number: int) -> str:
        """The checksum this part was sent with, for completing an upload that has an algorithm."""
        if not self.checksum:
            return ""
        with self._lock:
            return self._digests.get(number, "")

    def send(self, span: PartSpan, body: PartBody) -> str:
        headers: dict[str, str] = {}
        digest = self.url_digest(span)
        if digest is not None and self.checksum:
            headers[checksums.header(self.checksum)] = digest
        elif digest is not None:
            headers["Content-MD5"] = digest
        url = self.urls.get(span.number, digest)
        problem = pinned_checksum_problem(url, self.checksum, digest if self.checksum else None)
        if problem is not None:
            raise PinnedChecksumError(problem)
        settings = self.ctx.settings
        try:
            response = self.sessions.get().put(
                url, data=body, headers=headers, timeout=(settings.connect_timeout, settings.read_timeout)
            )
        except requests.RequestException as exc:
            raise error_for_exception(exc, url, settings.read_timeout) from exc
        if response.status_code >= 300:
            error = error_for_storage_response(response)
            if isinstance(error, UrlExpiredError) and not self.urls.can_sign:  # storage's clock says so
                raise self.urls.expired(span.number) from error
            raise error
        etag = response.headers.get("ETag")
        if not etag:
            raise ProtocolError("Storage accepted a part but sent no ETag for it.")
        if self.etag_check is not None:
            self.etag_check.verify(span.number, body.md5_hex, etag)
        return etag
