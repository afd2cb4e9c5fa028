"""What a presigned S3 URL says about itself: how long it lives, and which checksum it demands.

The upload API's answers are not the only source of truth about its links, and not always a good
one: the seed's server (and our users' Next.js route on AWS SDK v3) answer no ``expiresAt`` at all,
and the SDK's defaults sign a checksum into every UploadPart URL that no real part can match. The
URL itself is authoritative, because storage checks exactly what was signed into it:

- **expiry**: SigV4 query auth signs ``X-Amz-Date`` (when it was signed, by the server's clock) and
  ``X-Amz-Expires`` (seconds from then). A link that was signed a while before we received it has
  less left than ``X-Amz-Expires``, so its age is taken off, measured on the server's clock when the
  answer carries a ``Date`` (a computer whose clock is wrong must not see every link as expired).
- **checksum**: ``x-amz-checksum-<algorithm>=<value>`` and ``x-amz-sdk-checksum-algorithm`` in the
  query make storage require that checksum of the part's body. Storage then answers ``400
  BadDigest`` to every part that doesn't match, which looks like transfer damage but is not: the
  value is fixed by the server (AWS SDK v3 signs the CRC32 of an empty body, ``AAAAAA==``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from desktop_uploader.engine.errors import TELL_ITS_KEEPER

CHECKSUM_PREFIX = "x-amz-checksum-"
SDK_ALGORITHM = "x-amz-sdk-checksum-algorithm"
# The checksum of zero bytes, per algorithm: what AWS SDK v3 signs in when it presigns without a body.
EMPTY_BODY = {
    "crc32": "AAAAAA==",
    "crc32c": "AAAAAA==",
    "crc64nvme": "AAAAAAAAAAA=",
    "sha1": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
    "sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
}
# Where the option goes, not only its name: the keeper of a route may not know which of its objects signs.
SERVER_FIX = (
    f"{TELL_ITS_KEEPER} the server to add requestChecksumCalculation: 'WHEN_REQUIRED' to the options of its "
    "S3Client (AWS SDK v3)"
)


def _query(url: str) -> dict[str, str]:
    """The URL's query, names lower-cased (S3 reads them case-insensitively); a repeated name keeps its last value."""
    return {name.lower(): value for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def signed_at(url: str) -> float | None:
    """When a SigV4 URL was signed (epoch seconds, the signer's clock), or None if it doesn't say legibly."""
    stamp = _query(url).get("x-amz-date", "")
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def url_lifetime(url: str, fallback: float, server_now: float | None = None) -> float:
    """Seconds a presigned URL stays valid from now (when its answer arrived).

    SigV4: ``X-Amz-Expires`` less the URL's age, its age being ``server_now`` (the server's clock, from
    its answer's ``Date``; our own clock without one) minus ``X-Amz-Date``; an age that comes out
    negative (clocks apart) counts as none. SigV2: ``Expires``, an absolute time. ``fallback`` when the
    URL says nothing legible.
    """
    query = _query(url)
    expires = query.get("x-amz-expires", "")
    if expires.isdigit():
        lifetime = float(expires)
        signed = signed_at(url)
        if signed is not None:
            age = (time.time() if server_now is None else server_now) - signed
            lifetime -= max(0.0, age)
        return max(0.0, lifetime)
    absolute = query.get("expires", "")
    if absolute.isdigit():
        return max(0.0, float(absolute) - time.time())
    return fallback


def signed_lifetime(url: str) -> float | None:
    """How long a SigV4 URL was signed to live (``X-Amz-Expires``), whenever it was signed; None if it doesn't say."""
    expires = _query(url).get("x-amz-expires", "")
    return float(expires) if expires.isdigit() else None


def duration(seconds: float) -> str:
    """A link's lifetime as people say it: "1 h", "15 min", "45 s"."""
    minutes = round(seconds / 60)
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes // 60} h"
    if minutes >= 1 and seconds >= 59.5:
        return f"{minutes} min"
    return f"{max(1, round(seconds))} s"


@dataclass(frozen=True)
class SignedChecksum:
    """A checksum a URL makes storage demand: its algorithm (lower case) and value ("" if only the algorithm)."""

    algorithm: str
    value: str
    parameter: str  # as the URL names it, for the message: "x-amz-checksum-crc32=AAAAAA=="


def signed_checksum(url: str) -> SignedChecksum | None:
    """The checksum signed into ``url``'s query, if any (``x-amz-checksum-*`` or ``x-amz-sdk-checksum-algorithm``)."""
    query = _query(url)
    for name, value in query.items():
        if name.startswith(CHECKSUM_PREFIX) and name != CHECKSUM_PREFIX + "mode":
            algorithm = name[len(CHECKSUM_PREFIX) :]
            return SignedChecksum(algorithm, value, f"{name}={value}")
    algorithm = query.get(SDK_ALGORITHM, "")
    if algorithm:
        return SignedChecksum(algorithm.lower(), "", f"{SDK_ALGORITHM}={algorithm}")
    return None


def pinned_checksum_problem(url: str, algorithm: str, digest: str | None) -> str | None:
    """Why storage would refuse any part sent to ``url``, in one sentence; None if it would not.

    ``algorithm`` is the checksum algorithm the upload was started with ("" for none) and ``digest``
    this part's checksum in it. A checksum in the URL is fine only when it is of that algorithm and,
    if it carries a value, the value is the part's own.
    """
    signed = signed_checksum(url)
    if signed is None:
        return None
    if signed.algorithm == algorithm and (not signed.value or signed.value == digest):
        return None
    if signed.value:
        empty = ", that of an empty file" if EMPTY_BODY.get(signed.algorithm) == signed.value else ""
        return (
            f"The server's upload links demand a fixed checksum ({signed.parameter}{empty}), so storage would "
            f"refuse every part; {SERVER_FIX}."
        )
    return (
        f"The server's upload links demand a {signed.algorithm.upper()} checksum ({signed.parameter}) this upload "
        f"wasn't started with, so storage would refuse every part; {SERVER_FIX}."
    )
