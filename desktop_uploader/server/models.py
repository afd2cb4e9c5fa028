"""Request bodies of the upload API, as the seed's JavaScript client sends them (camelCase).

They are declared as one discriminated union per endpoint so the OpenAPI schema describes the
real contract (schemathesis fuzzes from it), and so a missing field or an unknown action becomes
one readable 400 instead of pydantic's error list. Every model is strict: a client that sends
``"totalParts": "5"`` or ``true`` has a bug worth hearing about, not a value to be guessed at.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

MAX_PART_NUMBER = 10_000


class _Body(BaseModel):
    # strict: a JSON number must be a number ("5" is not 5) and a boolean is not one (true is not 1).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True)


def _printable(what: str) -> Callable[[str], str]:
    """Ids and ETags are printable ASCII in every store; anything else is refused here, not by storage (a 502)."""

    def check(value: str) -> str:
        if not all("!" <= ch <= "~" for ch in value):
            raise ValueError(f"{what} may only hold printable ASCII characters, without spaces")
        return value

    return check


UploadId = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_printable("an upload id"))]
S3Key = Annotated[str, Field(min_length=1, max_length=1024)]
PartNumber = Annotated[int, Field(ge=1, le=MAX_PART_NUMBER)]
# A client's wish for how long URLs live; the server grants at most its own configured limit.
ExpiresIn = Annotated[int, Field(ge=1, le=7 * 24 * 3600)]
# The checksum algorithms an upload can be started with (S3 then wants that checksum on every part).
ChecksumAlgorithm = Literal["crc32", "crc32c"]


class StartRequest(_Body):
    action: Literal["start"]
    file_name: Annotated[str, Field(min_length=1, max_length=4096)]
    total_parts: Annotated[int, Field(ge=1, le=MAX_PART_NUMBER)]
    file_size: Annotated[int, Field(ge=0)] | None = None
    display_name: Annotated[str, Field(max_length=1024)] | None = None
    content_type: Annotated[str, Field(max_length=255)] | None = None
    url_batch: Annotated[int, Field(ge=1, le=MAX_PART_NUMBER)] | None = None
    expires_in: ExpiresIn | None = None
    checksum_algorithm: ChecksumAlgorithm | None = None


def _crc(value: str | None) -> str | None:
    if value is not None:
        _digests({"1": value}, "a part's checksum", 4, "big-endian CRC")
    return value


Crc = Annotated[str, AfterValidator(_crc)]


class CompletedPart(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)
    part_number: PartNumber = Field(alias="PartNumber")
    etag: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable("an ETag"))] = Field(
        alias="ETag"
    )
    # As S3 names them: an upload started with a checksum algorithm is completed with each part's checksum.
    checksum_crc32: Crc | None = Field(default=None, alias="ChecksumCRC32")
    checksum_crc32c: Crc | None = Field(default=None, alias="ChecksumCRC32C")

    def checksum(self) -> tuple[str, str] | None:
        """(S3 field, value) of the part's checksum, if it has one."""
        if self.checksum_crc32c:
            return "ChecksumCRC32C", self.checksum_crc32c
        if self.checksum_crc32:
            return "ChecksumCRC32", self.checksum_crc32
        return None


class CompleteRequest(_Body):
    action: Literal["complete"]
    upload_id: UploadId
    s3_key: S3Key
    parts: Annotated[list[CompletedPart], Field(max_length=MAX_PART_NUMBER)]


class AbortRequest(_Body):
    action: Literal["abort"]
    upload_id: UploadId
    s3_key: S3Key


class SignRequest(_Body):
    action: Literal["sign"]
    upload_id: UploadId
    s3_key: S3Key
    part_numbers: Annotated[list[PartNumber], Field(min_length=1, max_length=MAX_PART_NUMBER)]
    content_md5: dict[str, str] | None = None
    checksum_crc32: dict[str, str] | None = None
    checksum_crc32c: dict[str, str] | None = Field(default=None, alias="checksumCrc32c")  # not "…32C"
    expires_in: ExpiresIn | None = None

    @field_validator("content_md5")
    @classmethod
    def _valid_md5s(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _digests(value, "contentMd5", 16, "MD5 digest")

    @field_validator("checksum_crc32")
    @classmethod
    def _valid_crcs(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _digests(value, "checksumCrc32", 4, "CRC32, big-endian")

    @field_validator("checksum_crc32c")
    @classmethod
    def _valid_crc32cs(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _digests(value, "checksumCrc32c", 4, "CRC32C, big-endian")

    def digests(self) -> dict[str, tuple[str, str]]:
        """Each part's signed digest as (S3 parameter, value); 400 for a part given two of them."""
        found: dict[str, tuple[str, str]] = {}
        for param, given in (
            ("ContentMD5", self.content_md5),
            ("ChecksumCRC32", self.checksum_crc32),
            ("ChecksumCRC32C", self.checksum_crc32c),
        ):
            for number, value in (given or {}).items():
                if number in found:
                    raise ValueError(f"Part {number} has more than one digest; send one.")
                found[number] = (param, value)
        return found


def _digests(value: dict[str, str] | None, name: str, size: int, what: str) -> dict[str, str] | None:
    for number, digest in (value or {}).items():
        # ASCII digits only: "²" is a digit to str.isdigit() but not to int(), and 5 digits reach 10,000.
        if not (number.isascii() and number.isdigit() and len(number) <= 5):
            raise ValueError(f"{name} keys are part numbers, got {number[:20]!r}")
        try:
            raw = base64.b64decode(digest, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != size:
            raise ValueError(f"{name} for part {number} must be a base64 {what} ({size} bytes)")
    return value


class StatusRequest(_Body):
    action: Literal["status"]
    upload_id: UploadId
    s3_key: S3Key


class ListRequest(_Body):
    action: Literal["list"]


PresignedRequest = Annotated[
    StartRequest | CompleteRequest | AbortRequest | SignRequest | StatusRequest | ListRequest,
    Field(discriminator="action"),
]


class ChunkedStartRequest(_Body):
    action: Literal["start"]
    file_name: Annotated[str, Field(min_length=1, max_length=4096)]
    file_size: Annotated[int, Field(ge=0)]
    display_name: Annotated[str, Field(max_length=1024)] | None = None
    content_type: Annotated[str, Field(max_length=255)] | None = None


class ChunkedStatusRequest(_Body):
    action: Literal["status"]
    upload_id: UploadId
    s3_key: S3Key


class ChunkedCompleteRequest(_Body):
    action: Literal["complete"]
    upload_id: UploadId
    s3_key: S3Key


class ChunkedAbortRequest(_Body):
    action: Literal["abort"]
    upload_id: UploadId
    s3_key: S3Key


ChunkedRequest = Annotated[
    ChunkedStartRequest | ChunkedStatusRequest | ChunkedCompleteRequest | ChunkedAbortRequest,
    Field(discriminator="action"),
]
