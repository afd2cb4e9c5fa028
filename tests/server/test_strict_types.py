"""JSON numbers must be numbers and booleans are not numbers: a client's type bug is a clear 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api

OWN_KEY = "loras/sandbox-user/sandbox-user_1_a.bin"


@pytest.mark.parametrize(
    ("body", "field", "given"),
    [
        ({"action": "start", "fileName": "a.bin", "totalParts": "5"}, "totalParts", "a string"),
        ({"action": "start", "fileName": "a.bin", "totalParts": True}, "totalParts", "a boolean"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 2.5}, "totalParts", "a fractional number"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 1, "fileSize": "100"}, "fileSize", "a string"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 1, "fileSize": False}, "fileSize", "a boolean"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 1, "urlBatch": "1"}, "urlBatch", "a string"),
        ({"action": "start", "fileName": "a.bin", "totalParts": 1, "expiresIn": True}, "expiresIn", "a boolean"),
        ({"action": "start", "fileName": 7, "totalParts": 1}, "fileName", "an integer"),
        ({"action": "sign", "uploadId": "u", "s3Key": OWN_KEY, "partNumbers": ["1"]}, "partNumbers.0", "a string"),
        ({"action": "sign", "uploadId": "u", "s3Key": OWN_KEY, "partNumbers": [True]}, "partNumbers.0", "a boolean"),
        (
            {"action": "complete", "uploadId": "u", "s3Key": OWN_KEY, "parts": [{"PartNumber": "1", "ETag": "e"}]},
            "parts.0.PartNumber",
            "a string",
        ),
        (
            {"action": "complete", "uploadId": "u", "s3Key": OWN_KEY, "parts": [{"PartNumber": True, "ETag": "e"}]},
            "parts.0.PartNumber",
            "a boolean",
        ),
    ],
)
def test_presigned_numbers_must_be_json_numbers(api: Api, body: dict[str, Any], field: str, given: str) -> None:
    answer = api.presigned(body)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert f"'{field}'" in message and given in message, message


@pytest.mark.parametrize(("size", "given"), [("100", "a string"), (True, "a boolean"), (1.0, "a fractional number")])
def test_chunked_file_size_must_be_a_json_number(api: Api, size: Any, given: str) -> None:
    answer = api.chunked({"action": "start", "fileName": "a.bin", "fileSize": size})
    assert answer.status_code == 400, answer.text
    assert "'fileSize'" in answer.json()["error"] and given in answer.json()["error"]


def test_real_numbers_are_still_accepted(api: Api) -> None:
    started = api.ok(api.presigned({"action": "start", "fileName": "a.bin", "totalParts": 2, "fileSize": 6 * 2**20}))
    assert len(started["presignedUrls"]) == 2
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
