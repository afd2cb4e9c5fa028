"""What a bucket name and the folder in it may hold, checked where they are typed.

A CLI audit's ``--bucket Bad_Bucket!`` and ``--prefix ../x`` were sent on, and came back as storage's
own vague refusals (or, for ``..``, a key some stores keep and others fold away). These are told at
once, in words, before anything is recorded. The rules are the loosest any S3 store keeps: AWS's
older buckets have capitals and underscores, so only what no store takes is refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from desktop_uploader.engine.addresses import scheme_missing

BUCKET_CHARACTER = re.compile(r"[A-Za-z0-9._-]")
MIN_BUCKET_LENGTH = 3


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` can't be a bucket's name, in a sentence, or None."""
    if "://" in bucket:
        return f"The bucket is its name alone (like my-models), not an address: got {bucket!r}."
    if "/" in bucket:
        name, folder = bucket.split("/", 1)
        return f"The bucket is one name without '/': give {name!r} as the bucket and {folder!r} as the folder in it."
    if len(bucket) < MIN_BUCKET_LENGTH:
        return f"A bucket name has at least {MIN_BUCKET_LENGTH} characters; got {bucket!r}."
    odd = sorted({character for character in bucket if not BUCKET_CHARACTER.fullmatch(character)})
    if odd:
        return (
            f"A bucket name holds only letters, digits, dots, hyphens and underscores; "
            f"{bucket!r} has {' '.join(repr(c) for c in odd)}."
        )
    return None


def folder_problem(folder: str) -> str | None:
    """Why ``folder`` (slashes at its ends already dropped) can't be the folder files are stored in, or None."""
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in folder):
        return "The folder in the bucket can't hold control characters (a tab, a line break)."
    parts = folder.split("/") if folder else []
    if any(part in (".", "..") for part in parts):
        return f"The folder in the bucket can't have '.' or '..' in its path: got {folder!r}."
    if any(not part for part in parts):
        return f"The folder in the bucket has an empty step ('//'): got {folder!r}."
    return None


def endpoint_problem(endpoint: str, bucket: str = "") -> str | None:
    """Why ``endpoint`` can't be an S3 endpoint, or None. A path is refused: pasting the bucket's address
    (https://host/bucket, as R2 and MinIO consoles show it) went unnoticed, the objects landed in a folder
    named after the bucket, and the app named a key that wasn't there (a direct-s3 audit)."""
    if not endpoint.startswith(("http://", "https://")):
        return scheme_missing("The S3 endpoint", endpoint)
    parts = urlsplit(endpoint)
    path = parts.path.strip("/")
    if not path and not parts.query:
        return None
    address = f"{parts.scheme}://{parts.netloc}"
    if path.split("/")[0] == bucket:
        return (
            f"The S3 endpoint is the storage's address alone: {address}, without '/{path}' "
            "(the bucket has its own field)."
        )
    return f"The S3 endpoint is the storage's address alone, without a path: {address}, not {endpoint!r}."
