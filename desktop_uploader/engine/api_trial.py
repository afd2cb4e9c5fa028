"""Proving a server takes uploads before a file depends on it: a trial start, its link read, then an abort.

A server of the original contract (start, complete, abort: our users' Next.js routes) answers the
capabilities GET with 404 or 405 whatever its address and token, and has no harmless call that needs
the token. So "Test connection" said "Connected" to a route's own path pasted into the address, to a
wrong path and to a wrong token, and could not see the AWS SDK's pinned CRC32 that makes storage
refuse every part (a first-time user's audit against the Next.js route). Each showed only when the
first file failed. A ``start`` proves the address and the token, its link shows a pinned checksum
before a byte is sent, and the ``abort`` leaves nothing on the server or in storage.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.errors import TELL_ITS_KEEPER, PermanentError, PinnedChecksumError, UploaderError
from desktop_uploader.engine.signed_urls import pinned_checksum_problem

# A model's extension, as servers accept only those; the server adds its own unique prefix to the key.
TRIAL_NAME = "desktop-uploader-connection-test.safetensors"


def trial_upload(client: ApiClient) -> None:
    """Start a one-byte, one-part upload and abort it; raises an UploaderError that says what would fail.

    An abort that fails is said (cancelling would fail there too), with the key left unfinished.
    """
    started = client.start(TRIAL_NAME, 1, 1)
    problem = next(
        (found for url in started.urls.values() if (found := pinned_checksum_problem(url.url, started.checksum, None))),
        None,
    )
    first = next(iter(started.urls.values()), None)
    out_of_reach = unreachable(first.url, client) if first is not None else None
    try:
        client.abort(started.upload_id, started.s3_key)
    except UploaderError as exc:
        raise PermanentError(
            f"A test upload started, but the server could not cancel it: {exc.message} "
            f"Cancelling an upload there would fail the same way ({started.s3_key} is left unfinished)."
        ) from exc
    if problem is not None:
        raise PinnedChecksumError(problem)
    if out_of_reach is not None:
        raise PermanentError(out_of_reach)


def unreachable(link: str, client: ApiClient) -> str | None:
    """Why this computer can't reach the storage a link points at, in a sentence, or None.

    A Next.js audit's route wrote a storage address into its links that nobody could reach (its public
    endpoint setting was wrong): "Test connection" said "Connected", and every upload then failed with
    "refused the connection: the server may be down", about a server that was up. Only a connection is
    opened: a part sent here would be a byte stored for nothing."""
    parts = urlsplit(link)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=client.settings.connect_timeout).close()
    except socket.gaierror:
        why = "its name is not known here"
    except TimeoutError:
        why = "it did not answer"
    except ConnectionRefusedError:
        why = "it refused the connection"
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
    else:
        return None
    return (
        f"The server hands out upload links to storage at {parts.netloc}, which can't be reached from this "
        f"computer ({why}). The storage address the server writes into its links is likely wrong "
        f"(UPLOAD_API_S3_PUBLIC_ENDPOINT on our example servers); {TELL_ITS_KEEPER} the server."
    )
