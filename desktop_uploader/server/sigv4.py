"""SigV4 query-string presigning of UploadPart URLs, thousands at a time.

boto3's ``generate_presigned_url`` builds a whole botocore request per URL (parameter validation,
serialisation, event hooks, endpoint rules): about 2 ms each, so 20 s of server CPU for the 10,000
URLs of one large ``start``. The signature itself is a few microseconds. So this module does what
botocore's ``S3SigV4QueryAuth`` does, directly: the signing key is derived once per batch (it
depends only on the date, region and service), and each part costs one canonical request, one
SHA-256 and one HMAC.

The URLs are the same strings botocore makes for the same inputs and time: path-style
``{endpoint}/{bucket}/{key}?uploadId=…&partNumber=…&X-Amz-…``, the key quoted with ``/`` and ``~``
kept, query values quoted with only ``-_.~`` kept, and a part's digest (``Content-MD5`` or
``x-amz-checksum-*``) signed in as a header the client must then send (tests/server/test_sigv4.py
compares them byte for byte and uploads real parts with them).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

# The S3 parameter of a part's digest, and the header it is signed in as.
DIGEST_HEADERS = {
    "ContentMD5": "content-md5",
    "ChecksumCRC32": "x-amz-checksum-crc32",
    "ChecksumCRC32C": "x-amz-checksum-crc32c",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _q(value: str) -> str:
    """A query-string component, as botocore's ``percent_encode`` quotes it."""
    return quote(value, safe="-_.~")


def host_of(endpoint: str) -> str:
    """The Host header SigV4 signs: lowercase, without userinfo, without the scheme's default port."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class PartSigner:
    """Presigns UploadPart URLs for one bucket at one endpoint.

    ``keys`` is called once per batch, so refreshed credentials (an instance role's) are picked up;
    ``clock`` gives the signing time (tests fix it to compare with botocore).
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        region: str,
        keys: Callable[[], Keys],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        parts = urlsplit(endpoint)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/") + "/" + quote(bucket, safe="/~") + "/"
        self._host = host_of(endpoint)
        self._region = region
        self._keys = keys
        self._clock = clock

    def presign(
        self,
        key: str,
        upload_id: str,
        numbers: Iterable[int],
        expiry: int,
        digests: Mapping[int, tuple[str, str]] | None = None,
    ) -> dict[int, str]:
        """Each part's URL; a part's digest given as (S3 parameter, base64 value) is signed in."""
        keys = self._keys()
        stamp = self._clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        signing_key = f"AWS4{keys.secret_key}".encode()
        for step in (day, self._region, "s3", "aws4_request"):
            signing_key = _hmac(signing_key, step)
        path = self._base_path + quote(key, safe="/~")
        url_prefix = f"{self._origin}{path}?uploadId={_q(upload_id)}&partNumber="
        auth_head = (
            f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={_q(f'{keys.access_key}/{scope}')}"
            f"&X-Amz-Date={stamp}&X-Amz-Expires={int(expiry)}"
        )
        token = f"&X-Amz-Security-Token={_q(keys.token)}" if keys.token is not None else ""
        sts_head = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
        digests = digests or {}
        urls: dict[int, str] = {}
        for number in numbers:
            headers = {"host": self._host}
            digest = digests.get(number)
            if digest is not None:
                headers[DIGEST_HEADERS[digest[0]]] = " ".join(digest[1].split())
            names = sorted(headers)
            signed = ";".join(names)
            auth = f"{auth_head}&X-Amz-SignedHeaders={_q(signed)}{token}"
            operation = f"uploadId={_q(upload_id)}&partNumber={number}"
            query = "&".join(sorted(f"{operation}&{auth}".split("&"), key=lambda p: p.partition("=")[::2]))
            canonical = "\n".join(
                (
                    "PUT",
                    path,
                    query,
                    "".join(f"{name}:{headers[name]}\n" for name in names),
                    signed,
                    "UNSIGNED-PAYLOAD",
                )
            )
            to_sign = sts_head + hashlib.sha256(canonical.encode()).hexdigest()
            signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
            urls[number] = f"{url_prefix}{number}&{auth}&X-Amz-Signature={signature}"
        return urls
