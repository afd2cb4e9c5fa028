"""What a presigned URL says about itself: its deadline, and a checksum the server pinned into it.

Every case gives the server's clock explicitly (``server_now``), so nothing here reads the time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from desktop_uploader.engine.signed_urls import (
    duration,
    pinned_checksum_problem,
    signed_at,
    signed_checksum,
    url_lifetime,
)

SIGNED = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC).timestamp()
BASE = "https://s3.example/bucket/key?uploadId=u&partNumber=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"
SDK_DEFAULTS = "x-amz-sdk-checksum-algorithm=CRC32&x-amz-checksum-crc32=AAAAAA%3D%3D"


def url(*query: str) -> str:
    return "&".join((BASE, *query, "X-Amz-Signature=abc"))


def test_a_link_signed_a_while_ago_has_only_the_rest_of_its_time() -> None:
    link = url("X-Amz-Date=20261129T100000Z", "X-Amz-Expires=3600")
    assert signed_at(link) == SIGNED
    assert url_lifetime(link, 99, server_now=SIGNED) == 3600
    assert url_lifetime(link, 99, server_now=SIGNED + 600) == 3000
    assert url_lifetime(link, 99, server_now=SIGNED + 4000) == 0, "already expired: nothing left, never negative"


def test_clocks_apart_never_make_a_link_live_longer_than_it_was_signed_for() -> None:
    link = url("X-Amz-Date=20261129T100000Z", "X-Amz-Expires=900")
    assert url_lifetime(link, 99, server_now=SIGNED - 7200) == 900


def test_names_are_read_case_insensitively() -> None:
    link = url("x-amz-date=20261129T100000Z", "x-amz-expires=600")
    assert url_lifetime(link, 99, server_now=SIGNED + 60) == 540


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (("X-Amz-Expires=900",), 900.0),  # no date: the whole lifetime, from when it arrived
        (("X-Amz-Date=yesterday", "X-Amz-Expires=900"), 900.0),  # a garbled date is no date
        (("X-Amz-Date=20261129T100000Z", "X-Amz-Expires=soon"), 3600.0),  # garbled expiry: the server's word
        (("X-Amz-Date=20261129T100000Z", "X-Amz-Expires=-5"), 3600.0),
        (("X-Amz-Date=20261129T100000Z",), 3600.0),
        ((), 3600.0),
    ],
)
def test_missing_or_garbled_parameters_fall_back(query: tuple[str, ...], expected: float) -> None:
    assert url_lifetime(url(*query), 3600, server_now=SIGNED) == expected


def test_an_unparseable_date_is_none() -> None:
    assert signed_at(url("X-Amz-Date=20261329T100000Z")) is None
    assert signed_at("https://s3.example/key") is None


def test_lifetimes_read_as_people_say_them() -> None:
    assert [duration(s) for s in (3600, 3599.9, 7200, 900, 5400, 45, 0.2)] == [
        "1 h",
        "1 h",
        "2 h",
        "15 min",
        "90 min",
        "45 s",
        "1 s",
    ]


def test_the_sdk_v3_default_checksum_is_found_and_explained() -> None:
    link = url("X-Amz-Date=20261129T100000Z", "X-Amz-Expires=3600", SDK_DEFAULTS)
    found = signed_checksum(link)
    assert found is not None and (found.algorithm, found.value) == ("crc32", "AAAAAA==")
    problem = pinned_checksum_problem(link, "", None)
    assert problem == (
        "The server's upload links demand a fixed checksum (x-amz-checksum-crc32=AAAAAA==, that of an empty file), "
        "so storage would refuse every part; tell whoever runs the server to add "
        "requestChecksumCalculation: 'WHEN_REQUIRED' to the options of its S3Client (AWS SDK v3)."
    )


def test_a_pinned_value_is_refused_even_for_an_upload_with_that_algorithm() -> None:
    link = url(SDK_DEFAULTS)
    problem = pinned_checksum_problem(link, "crc32", "q0M2Yw==")
    assert problem is not None and "AAAAAA==" in problem and "WHEN_REQUIRED" in problem


def test_the_parts_own_checksum_in_its_link_is_fine() -> None:
    assert pinned_checksum_problem(url("x-amz-checksum-crc32c=q0M2Yw%3D%3D"), "crc32c", "q0M2Yw==") is None
    assert pinned_checksum_problem(url("x-amz-sdk-checksum-algorithm=CRC32C"), "crc32c", "q0M2Yw==") is None


def test_an_algorithm_the_upload_was_not_started_with_is_refused() -> None:
    problem = pinned_checksum_problem(url("x-amz-sdk-checksum-algorithm=CRC32"), "", None)
    assert problem is not None and "CRC32 checksum (x-amz-sdk-checksum-algorithm=CRC32)" in problem
    other = pinned_checksum_problem(url("x-amz-checksum-crc32=q0M2Yw%3D%3D"), "crc32c", "q0M2Yw==")
    assert other is not None and "fixed checksum (x-amz-checksum-crc32=q0M2Yw==)" in other
    assert "empty file" not in other


def test_links_without_checksums_are_fine() -> None:
    assert pinned_checksum_problem(url("X-Amz-Expires=3600"), "", None) is None
    assert pinned_checksum_problem(url("x-amz-checksum-mode=ENABLED"), "", None) is None
