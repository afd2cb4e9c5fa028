"""``presigned-s3``: the API hands out presigned UploadPart URLs; parts go straight to storage.

Signing. With a server that offers ``sign``, URLs are fetched lazily: ``start`` asks for one batch,
and workers that need a URL join the next ``sign`` call, so concurrent requests coalesce into one
round trip and a 10,000-part file never holds 10,000 URLs (which would expire before use anyway).
A URL is not used within a safety margin of its expiry, and an "expired" 403 re-signs the part
without counting as a failed attempt. With the seed's server (no ``sign``), the URLs from
``start`` are all there is; they are kept in the resume store so a crash can resume within their
lifetime; once their time is past (read from each URL's own ``X-Amz-Date`` and ``X-Amz-Expires``,
as that server answers no ``expiresAt``), the upload is started over, once (lifecycle.py). A
checksum the server signed into its URLs that the parts can't match is refused before a byte is
sent. (The URLs and the sending of one part: presigned_parts.py.)

Integrity. When the server can sign a checksum (CRC32C or CRC32, see :mod:`checksums`), the upload
is started with that algorithm, each part's checksum is computed first and signed into its URL, and
storage refuses damaged bytes itself; completing lists every part's checksum, as S3 requires for
such an upload. Otherwise, when it can sign Content-MD5, the same with MD5 (five times the CPU). Failing
both, the MD5 is computed while streaming and compared with the returned ETag (see
:class:`EtagCheck`), and the final multipart ETag is checked against the parts' MD5s.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time

from desktop_uploader.engine import checksums
from desktop_uploader.engine.api_client import (
    AlreadyStoredError,
    ApiClient,
    Capabilities,
    RemotePart,
    SignedUrl,
    StartedUpload,
)
from desktop_uploader.engine.api_client import Completion as ApiCompletion
from desktop_uploader.engine.errors import (
    IntegrityError,
    NotFoundError,
    UnsupportedError,
    UploaderError,
)
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.http import Sessions
from desktop_uploader.engine.methods import lost_starts
from desktop_uploader.engine.methods.adopt import adopt
from desktop_uploader.engine.methods.base import PRESIGNED, Completion, JobContext
from desktop_uploader.engine.methods.lifecycle import run_multipart
from desktop_uploader.engine.methods.multipart import EtagCheck, PartQueue, multipart_etag, plain_etag
from desktop_uploader.engine.methods.presigned_parts import (
    MAX_BATCH,
    MIN_BATCH,
    PresignedSender,
    UrlBook,
)
from desktop_uploader.engine.partbody import md5_of_span
from desktop_uploader.engine.planner import PartPlan, plan_parts
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)


def _url_batch(ctx: JobContext) -> int:
    """Links per sign call: two per part in flight (on Auto, the level it starts at, learned or not)."""
    parts = ctx.concurrency() if ctx.concurrency is not None else ctx.settings.concurrency
    return max(MIN_BATCH, min(MAX_BATCH, 2 * max(1, parts)))


class PresignedMethod:
    name = PRESIGNED

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        if ctx.api is None:  # never read as "nothing to abort": the ledger keeps it owed
            raise UnsupportedError("Not connected to the server that holds this upload.")
        if not record.upload_id:  # an intent: its start never answered
            lost_starts.abort_leftovers(ctx, record, chunked=False)
        elif record.s3_key:
            with contextlib.suppress(NotFoundError):  # already gone: that is what we wanted
                ctx.api.abort(record.upload_id, record.s3_key)

    def run(self, ctx: JobContext) -> Completion:
        api = ctx.api
        assert api is not None, "presigned uploads need the API"
        caps = api.capabilities(control=ctx.control)
        if not caps.presigned:
            raise UnsupportedError("This server has presigned uploads switched off.")
        return run_multipart(ctx, PresignedBackend(self, ctx, api, caps))


class PresignedBackend:
    """The upload API's side of the multipart lifecycle (see :mod:`lifecycle`), for one run."""

    method = PRESIGNED
    where = "on the server"
    completes_again = True  # the API's complete answers with the object when it was completed already

    def __init__(self, owner: PresignedMethod, ctx: JobContext, api: ApiClient, caps: Capabilities) -> None:
        self.owner = owner
        self.ctx = ctx
        self.api = api
        self.caps = caps
        self.started: StartedUpload | None = None
        self.urls: UrlBook | None = None

    def abort(self, record: UploadRecord) -> None:
        self.owner.abort(self.ctx, record)

    def adopt(self) -> UploadRecord | None:
        return adopt(self.ctx, self.caps)

    def create(self, lost: UploadRecord | None) -> tuple[PartPlan, UploadRecord]:
        ctx, api, caps = self.ctx, self.api, self.caps
        plan = plan_parts(ctx.size, ctx.follow_link(ctx.server_id), caps.limits)
        algorithm = checksums.choose(caps.checksums) if ctx.settings.verify_integrity else None
        batch = _url_batch(ctx) if caps.url_batch and plan.part_count > _url_batch(ctx) else None
        intent = lost_starts.intent(ctx, PRESIGNED, part_size=plan.part_size, part_count=plan.part_count)
        try:
            started = api.start(
                ctx.name,
                plan.part_count,
                ctx.size,
                display_name=ctx.display_name,
                url_batch=batch,
                checksum=algorithm,
                control=ctx.control,
            )
        except UploaderError as exc:
            lost_starts.withdraw(ctx, intent, exc)
            raise
        lost_starts.after_start(ctx, intent, started.upload_id, started.attempts, lost=lost, chunked=False)
        log.info("%s: started %s (upload %s…)", ctx.name, started.s3_key, started.upload_id[:12])
        self.started = started
        record = ctx.new_record(
            PRESIGNED,
            upload_id=started.upload_id,
            s3_key=started.s3_key,
            unique_file_name=started.unique_file_name,
            comfyui_path=started.comfyui_path,
            part_size=plan.part_size,
            part_count=plan.part_count,
            checksum=started.checksum,
        )
        try:
            ctx.state.create(record)
            if not caps.offers("sign"):
                now_wall, now = time.time(), api.clock()  # the clock the links' deadlines are on
                ctx.state.save_urls(
                    ctx.job_id, {n: (u.url, now_wall + (u.expires_at - now)) for n, u in started.urls.items()}
                )
        except UploaderError as exc:
            ctx.notice(f"{exc.message} The upload goes on, but can't resume after a crash.", "warning")
        return plan, record

    def confirmed_parts(
        self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]
    ) -> dict[int, SavedPart] | Completion | None:
        """Parts the server lists that are ours; without ``status`` (the seed's server) the saved ones."""
        ctx = self.ctx
        assert record.upload_id and record.s3_key
        if not self.caps.offers("status"):
            return saved
        try:
            remote = {p.number: p for p in self.api.status(record.upload_id, record.s3_key, control=ctx.control)}
        except AlreadyStoredError as stored:
            if stored.completion.size == ctx.size:
                return self._stored(ctx, record, stored.completion)
            ctx.notice("The interrupted upload is no longer on the server; starting it again from the beginning.")
            ctx.state.delete(ctx.job_id)
            return None
        done = self._reconcile(ctx, plan, saved, remote)
        ctx.save(lambda: ctx.state.replace_parts(ctx.job_id, list(done.values())))
        return done

    def stored(self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]) -> Completion | None:
        return None  # the server's status says "already stored" itself, and completing again answers the same

    def sender(self, record: UploadRecord, plan: PartPlan, queue: PartQueue) -> PresignedSender:
        ctx, caps = self.ctx, self.caps
        urls = UrlBook(
            self.api,
            record.upload_id or "",
            record.s3_key or "",
            can_sign=caps.offers("sign"),
            queue=queue,
            batch=_url_batch(ctx),
            checksum=record.checksum,
        )
        if self.started is not None:
            urls.add(self.started.urls)
        elif not caps.offers("sign"):
            stored = ctx.state.urls(ctx.job_id)
            now_wall, now = time.time(), urls.clock()
            urls.add({n: SignedUrl(u, now + (expires - now_wall)) for n, (u, expires) in stored.items()})
        self.urls = urls
        # An upload started with a checksum algorithm takes it on every part, whatever the settings say now.
        content_md5 = not record.checksum and caps.content_md5 and ctx.settings.verify_integrity
        sender = PresignedSender(
            ctx,
            urls,
            self.owner.sessions,
            content_md5=content_md5,
            etag_check=EtagCheck() if ctx.settings.verify_integrity and not (content_md5 or record.checksum) else None,
            checksum=record.checksum,
        )
        if sender.checksum or sender.content_md5:
            urls.digest_ahead = lambda number: sender.url_digest(plan.span(number))
        return sender

    @staticmethod
    def _stored(ctx: JobContext, record: UploadRecord, found: ApiCompletion) -> Completion:
        log.info("%s: %s is already stored (%d bytes); nothing to send", ctx.name, record.s3_key, ctx.size)
        ctx.notice("This file was already uploaded completely; nothing had to be sent again.")
        return Completion(
            s3_key=record.s3_key or "",
            unique_file_name=found.unique_file_name or record.unique_file_name or "",
            comfyui_path=found.comfyui_path or record.comfyui_path,
            network_volume_path=found.network_volume_path,
            etag=found.etag,
            size=ctx.size,
            bytes_sent=0,
        )

    @staticmethod
    def _reconcile(
        ctx: JobContext, plan: PartPlan, saved: dict[int, SavedPart], remote: dict[int, RemotePart]
    ) -> dict[int, SavedPart]:
        """Parts both sides agree on; a part only the server has is kept if its ETag is our bytes' MD5."""
        done: dict[int, SavedPart] = {}
        for number, part in remote.items():
            if not 1 <= number <= plan.part_count:
                continue
            span = plan.span(number)
            etag, size = part.etag, part.size
            if size != span.size:
                continue
            mine = saved.get(number)
            if mine is not None and plain_etag(mine.etag) == plain_etag(etag):
                done[number] = SavedPart(number, etag, size, mine.checksum)
                continue
            with contextlib.suppress(UploaderError, ValueError):
                local = md5_of_span(ctx.path, span.offset, span.size, ctx.control)
                if base64.b64decode(local).hex() == plain_etag(etag):
                    done[number] = SavedPart(number, etag, size)
        return done

    @staticmethod
    def _part_checksums(
        ctx: JobContext, record: UploadRecord, ordered: list[SavedPart], parts: dict[int, SavedPart]
    ) -> dict[int, str]:
        """Every part's checksum, for an upload with an algorithm; one the store lacks is computed again."""
        if not record.checksum:
            return {}
        plan = PartPlan(ctx.size, record.part_size, record.part_count)
        found = {}
        for part in ordered:
            if part.checksum:
                found[part.number] = part.checksum
            else:  # known only from the server's listing (a part whose answer was lost): from the file
                span = plan.span(part.number)
                found[part.number] = checksums.checksum_of_span(
                    record.checksum, ctx.path, span.offset, span.size, ctx.control
                )
        return found

    def complete(self, record: UploadRecord, parts: dict[int, SavedPart], tracker: ProgressTracker) -> Completion:
        ctx, api = self.ctx, self.api
        assert record.upload_id and record.s3_key
        if self.urls is not None:
            log.info("%s: %d sign calls for %d parts", ctx.name, self.urls.sign_calls, record.part_count)
        ensure_unchanged(ctx.path, ctx.identity)
        ctx.completing()
        ordered = [parts[n] for n in sorted(parts)]
        completion = api.complete(
            record.upload_id,
            record.s3_key,
            [(p.number, p.etag) for p in ordered],
            checksums=self._part_checksums(ctx, record, ordered, parts),
            checksum=record.checksum,
            control=ctx.control,
        )
        expected = multipart_etag(ordered) if len(ordered) > 1 else None
        got = plain_etag(completion.etag)
        if expected and "-" in got and got != expected:
            raise IntegrityError(f"Storage assembled {ctx.name} differently from the parts that were sent.")
        if completion.size is not None and completion.size != ctx.size:
            raise IntegrityError(f"Storage reports {completion.size} bytes for {ctx.name}, not {ctx.size}.")
        return Completion(
            s3_key=record.s3_key,
            unique_file_name=completion.unique_file_name or record.unique_file_name or "",
            comfyui_path=completion.comfyui_path or record.comfyui_path,
            network_volume_path=completion.network_volume_path,
            etag=completion.etag,
            size=ctx.size,
            bytes_sent=tracker.bytes_sent,
        )
