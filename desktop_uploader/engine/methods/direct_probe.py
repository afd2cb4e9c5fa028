"""Settings' "Test" for your own S3 storage: would a direct upload be accepted there, with these keys?

A GUI audit saved a wrong secret without a word: the settings took it, and the first upload failed.
What a direct upload needs first is to create a multipart upload under the prefix, so that is what
the test does, and it aborts that upload at once. Before it, a bucket that storage says isn't there
is told as such: a store that makes buckets on the first write let a mistyped name pass. Listing the
bucket would test a permission the uploads don't use (many upload-only keys lack it), and say nothing
about the one they do; a refused look at the bucket is left for the test upload to explain.
"""

from __future__ import annotations

import logging
import uuid

from desktop_uploader.engine.errors import NetworkError, UploaderError
from desktop_uploader.engine.methods.s3_client import DirectTarget, S3Client, bucket_missing
from desktop_uploader.engine.retry import RetryPolicy, RetryQuota
from desktop_uploader.engine.settings import Settings

log = logging.getLogger(__name__)


def try_direct(target: DirectTarget, settings: Settings) -> tuple[bool, str]:
    """Whether ``target`` takes uploads (blocking: three requests), and a sentence saying so or why not."""
    host = target.place
    where = f"the bucket {target.bucket} at {host}"
    if not (target.access_key and target.secret_key):
        return False, f"Direct uploads to {where} need an access key and a secret."
    client = S3Client(target, settings.connect_timeout, settings.read_timeout, RetryPolicy(1), RetryQuota())
    try:
        if bucket_missing(client, again=True):
            return False, f"There is no bucket {target.bucket} at {host}: check its name."
    except NetworkError as exc:
        return False, exc.message
    key = target.key_for(f".desktop-uploader-test-{uuid.uuid4().hex[:12]}")
    try:
        upload_id = str(client.once("create_multipart_upload", Key=key)["UploadId"])
    except UploaderError as exc:  # said inside Settings: "check them in Settings" would point where one is
        return False, exc.message.removesuffix(" Check them in Settings.").removesuffix(
            " Check the bucket name in Settings."
        )
    try:
        client.once("abort_multipart_upload", Key=key, UploadId=upload_id)
    except UploaderError as exc:
        log.warning("The test upload %s in %s could not be aborted: %s", key, target.bucket, exc.message)
        return True, f"Uploads to {where} are accepted (its test upload could not be removed: {exc.message})"
    return True, f"Uploads to {where} are accepted with these keys."
