"""The boto3 client behind ``direct-s3``: every failure in the engine's terms, control-plane calls retried.

boto3's own retries stay off, so each attempt is counted once, by us. Part uploads are retried by the
part scheduler; the calls around them (create, complete, head, list parts, list uploads, abort) go
through :meth:`S3Client.call`, which retries transient failures under the job's retry policy and
quota and says so with a :class:`Retrying` event carrying the delay, as the presigned path does
through the API client.

Failures are classified by botocore's exception type and S3's error code, never by the words of a
message: messages differ between stores and versions, codes don't.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import (
    AuthError,
    ForbiddenError,
    IntegrityError,
    Interrupted,
    NetworkError,
    NotFoundError,
    Origin,
    ProtocolError,
    RejectedError,
    ServerBusyError,
    StalledError,
    UploaderError,
    refused,
    storage_full,
)
from desktop_uploader.engine.http import host_of, tls_failure
from desktop_uploader.engine.retry import Announce, RetryPolicy, RetryQuota, RetryRun

log = logging.getLogger(__name__)

DAMAGED = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
BUSY = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"})
BAD_KEYS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken"})
GONE = frozenset({"NoSuchUpload"})
NO_OBJECT = frozenset({"NoSuchKey", "404"})  # a HEAD answer has no body, so its "code" is the status


class UploadGoneError(NotFoundError):
    """S3 answered NoSuchUpload: the multipart upload was completed or aborted (maybe by our own lost call)."""


@dataclass(frozen=True)
class DirectTarget:
    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str
    prefix: str = "loras"

    @property
    def place(self) -> str:
        """The storage's host as a person would name it in a sentence; no endpoint means AWS itself."""
        return storage_place(self.endpoint)

    @property
    def server_id(self) -> str:
        return f"s3:{self.endpoint or 'aws'}/{self.bucket}"

    def key_for(self, name: str) -> str:
        """The object key for ``name`` under the folder (prefix) chosen; at the bucket's top without one."""
        folder = self.prefix.strip("/")
        return f"{folder}/{name}" if folder else name


def storage_place(endpoint: str) -> str:
    """The host of a direct-s3 endpoint, or "AWS S3" when none was typed (boto3 then goes to AWS)."""
    return host_of(endpoint) if endpoint else "AWS S3"


def classify(status: int, code: str, message: str, host: str, retry_after: float | None = None) -> UploaderError:
    """An S3 error answer, by its code and status, in words; ``message`` is only repeated, never read."""
    full = storage_full(status, code, message, host)
    if full is not None:
        return full
    if code in DAMAGED:
        return IntegrityError("Storage received different bytes than were sent (a damaged transfer); resending.")
    if code in BUSY or status in (408, 429) or status >= 500:
        return ServerBusyError(
            f"Storage at {host} is busy or unavailable (HTTP {status}{' ' + code if code else ''}).",
            status=status,
            retry_after=retry_after,
        )
    if code == "RequestTimeTooSkewed":
        return ForbiddenError(f"Storage at {host} refused the request because this computer's clock is off.")
    if code in BAD_KEYS:
        return AuthError(f"Storage at {host} refused your access key or secret ({code}). Check them in Settings.")
    if code in GONE:
        return UploadGoneError("Storage no longer knows this upload (it was completed or aborted).")
    if code == "NoSuchBucket":
        return RejectedError(f"The bucket does not exist at {host}. Check the bucket name in Settings.", status=status)
    if code in NO_OBJECT or (status == 404 and not code):
        return NotFoundError(f"Storage at {host} holds no such object.")
    if status == 403:
        return ForbiddenError(f"Storage at {host} refused the request ({code or 'HTTP 403'}).")
    return RejectedError(
        f"Storage at {host} refused the request ({code or f'HTTP {status}'}: {message or 'no reason given'}).",
        status=status,
    )


def translate(exc: Exception, endpoint: str, read_timeout: float) -> UploaderError:
    # boto3 is imported only when a direct upload runs: it costs every CLI command 0.2 s and 24 MiB.
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        ReadTimeoutError,
        SSLError,
    )

    host = storage_place(endpoint)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        retry_after_header = str(meta.get("HTTPHeaders", {}).get("retry-after", ""))
        retry_after = float(retry_after_header) if retry_after_header.isdigit() else None
        code = str(error.get("Code", ""))
        said = classify(status, code, str(error.get("Message", "")), host, retry_after)
        return said.at(Origin("storage", host, status=status or None, code=code))
    if isinstance(exc, NoCredentialsError):
        return AuthError("No S3 access key and secret are set for direct uploads. Add them in Settings.")
    if isinstance(exc, ReadTimeoutError):
        return StalledError(f"The connection to {host} stalled: nothing moved for {read_timeout:g} s.")
    if isinstance(exc, SSLError):  # https:// typed for a plain-HTTP store read "Could not connect" (an audit)
        failed = tls_failure(str(exc), host)
        failed.created_nothing = True
        return failed
    if isinstance(exc, ConnectionError):  # refused, DNS, connect timeout, proxy
        unreached = NetworkError(f"Could not connect to {host}.")
        unreached.created_nothing = True  # the request never reached storage
        return unreached
    if isinstance(exc, HTTPClientError):  # reset, closed mid-answer, a broken stream
        return NetworkError(f"The connection to {host} was lost.")
    return ProtocolError(f"The request to {host} could not be made or its answer could not be read.")


def our_error_inside(exc: BaseException) -> BaseException | None:
    """botocore wraps whatever the request body raised in HTTPClientError; find ours again."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Interrupted | UploaderError):
            return current
        wrapped = getattr(current, "kwargs", {}).get("error") if hasattr(current, "kwargs") else None
        pending += [wrapped if isinstance(wrapped, BaseException) else None, current.__cause__, current.__context__]
    return None


OnRetry = Announce  # (attempt, error, delay), as every retry is announced


class S3Client:
    """A boto3 client on the target's bucket; :meth:`once` tries once, :meth:`call` retries transient failures."""

    def __init__(
        self,
        target: DirectTarget,
        connect_timeout: float,
        read_timeout: float,
        policy: RetryPolicy,
        quota: RetryQuota,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.target = target
        self.read_timeout = read_timeout
        self.policy = policy
        self.quota = quota
        self.on_retry = on_retry
        import boto3
        from botocore.config import Config

        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=target.endpoint or None,
            region_name=target.region,
            aws_access_key_id=target.access_key or None,
            aws_secret_access_key=target.secret_key or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path", "payload_signing_enabled": False},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"total_max_attempts": 1},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=64,
            ),
        )

    def once(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.target.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            ours = our_error_inside(exc)
            if ours is not None:  # a pause, or the file changing, raised inside the part body
                raise ours from None
            raise translate(exc, self.target.endpoint, self.read_timeout) from exc

    def call(self, operation: str, control: Control | None = None, **kwargs: Any) -> Any:
        return self.counted(operation, control, **kwargs)[0]

    def counted(self, operation: str, control: Control | None = None, **kwargs: Any) -> tuple[Any, int]:
        """``operation``'s answer and how many attempts it took, retrying what may work next time.

        Without ``control`` (an abort while a cancel unwinds the job) the waits can't be cut short.
        """

        def say(attempt: int, exc: UploaderError, delay: float) -> None:
            log.warning(
                "S3 %s failed (attempt %d/%d), retrying in %.1f s: %s",
                operation,
                attempt,
                self.policy.attempts,
                delay,
                exc.message,
            )
            if self.on_retry is not None:
                self.on_retry(attempt, exc, delay)

        run = RetryRun(self.policy, self.quota, announce=say, sleep=control.sleep if control is not None else None)
        reached = False  # an attempt got to storage and its answer, if any, was lost
        while True:
            run.next_attempt()
            if control is not None:
                control.check()
            try:
                answer = self.once(operation, **kwargs)
            except UploaderError as exc:
                # Whether every attempt was turned away or never arrived: a create made nothing to clear up then.
                reached = reached or not (exc.created_nothing or refused(exc))
                exc.created_nothing = not reached
                if not exc.transient:
                    raise
                run.backoff(exc)
                continue
            run.succeeded()
            return answer, run.attempt


_BUCKETS_FOUND: set[str] = set()  # server ids whose bucket storage said is there, once per process


def bucket_missing(client: S3Client, *, again: bool = False) -> bool:
    """Whether storage says the bucket isn't there; a network failure is raised.

    Some stores (SeaweedFS) make a bucket on its first upload: a mistyped name was made, and the files
    went where nobody would look. Upload-only keys may not be allowed to look at the bucket: any other
    refusal is left for the upload itself to explain. A bucket found once is not asked about again,
    unless ``again`` (Settings' Test, which a person presses to know how things stand now).
    """
    target = client.target
    if target.server_id in _BUCKETS_FOUND and not again:
        return False
    try:
        client.once("head_bucket")
    except NetworkError:
        raise
    except UploaderError as exc:
        return exc.origin is not None and exc.origin.status == 404
    _BUCKETS_FOUND.add(target.server_id)
    return False
