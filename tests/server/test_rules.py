"""Every rule of the API contract: authentication, ownership, names, sizes, malformed input, logs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from desktop_uploader.engine.limits import GiB, MiB
from tests.support.api import CHUNKED, LEGACY, PRESIGNED, Api
from tests.support.api_servers import SECOND_USER, SECOND_USER_TOKEN, api_server
from tests.support.logfail import STORAGE_REFUSED
from tests.support.sandbox_process import SandboxProcess


@pytest.fixture(scope="module")
def two_user_api(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Api]]:
    with api_server(sandbox, tmp_path_factory.mktemp("two-users")) as url:
        yield Api(url, sandbox.token), Api(url, SECOND_USER_TOKEN)


def start(api: Api, name: str = "model.safetensors", **extra: Any) -> dict[str, Any]:
    return api.ok(api.presigned({"action": "start", "fileName": name, "totalParts": 1, **extra}))


# --- authentication -----------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", PRESIGNED, None),
    ("POST", PRESIGNED, {"action": "list"}),
    ("POST", PRESIGNED, {"action": "start", "fileName": "a.bin", "totalParts": 1}),
    ("POST", CHUNKED, {"action": "start", "fileName": "a.bin", "fileSize": 1}),
    ("POST", LEGACY, None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-wrong-token", "Basic abc", "Bearer"])
def test_missing_or_wrong_token_is_401(api: Api, method: str, path: str, body: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    kwargs: dict[str, Any] = {"json": body} if body else {}
    if path == LEGACY:
        kwargs = {"files": {"file": ("a.bin", b"x")}}
    answer = requests.request(method, api.url + path, headers=headers, timeout=30, **kwargs)
    assert answer.status_code == 401
    assert answer.json()["error"]


def test_chunk_without_token_is_401(api: Api) -> None:
    answer = requests.post(
        api.url + CHUNKED,
        params={"uploadId": "x", "s3Key": "y", "offset": 0},
        data=b"abc",
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert answer.status_code == 401


# --- ownership: user B can never touch user A's uploads --------------------------------------------


@pytest.mark.allow_log(*STORAGE_REFUSED)
def test_another_users_upload_is_out_of_reach_for_every_action(two_user_api: tuple[Api, Api]) -> None:
    alice, bob = two_user_api
    theirs = start(alice)
    ids = {"uploadId": theirs["uploadId"], "s3Key": theirs["s3Key"]}
    attempts = [
        bob.presigned({"action": "complete", **ids, "parts": [{"PartNumber": 1, "ETag": "x"}]}),
        bob.presigned({"action": "abort", **ids}),
        bob.presigned({"action": "sign", **ids, "partNumbers": [1]}),
        bob.presigned({"action": "status", **ids}),
        bob.chunked({"action": "status", **ids}),
        bob.chunked({"action": "complete", **ids}),
        bob.chunked({"action": "abort", **ids}),
        bob.chunk(ids["uploadId"], ids["s3Key"], 0, b"x"),
    ]
    for answer in attempts:
        assert answer.status_code in (403, 404), answer.text
        assert "error" in answer.json()
    # Bob's own prefix with Alice's upload id: the id does not exist for that key.
    disguised = {"uploadId": theirs["uploadId"], "s3Key": theirs["s3Key"].replace("sandbox-user", SECOND_USER)}
    for body in (
        {"action": "sign", **disguised, "partNumbers": [1]},
        {"action": "status", **disguised},
        {"action": "abort", **disguised},
        {"action": "complete", **disguised, "parts": [{"PartNumber": 1, "ETag": "x"}]},
    ):
        answer = bob.presigned(body)
        assert answer.status_code in (403, 404), (body, answer.text)
    assert theirs["uploadId"] not in {u["uploadId"] for u in bob.ok(bob.presigned({"action": "list"}))["uploads"]}
    # And Alice's upload is untouched by all of that.
    assert alice.ok(alice.presigned({"action": "status", **ids}))["parts"] == []
    alice.ok(alice.presigned({"action": "abort", **ids}))


@pytest.mark.parametrize(
    "key",
    [
        "loras/sandbox-user/../second-user/x.bin",
        "loras/sandbox-user/",
        "other/sandbox-user/x.bin",
        "loras/sandbox-user/sub/dir.bin",
        "/loras/sandbox-user/x.bin",
        "loras/sandbox-user/second-user_1_x.bin",
    ],
)
def test_keys_outside_the_users_prefix_are_forbidden(api: Api, key: str) -> None:
    answer = api.presigned({"action": "status", "uploadId": "whatever", "s3Key": key})
    assert answer.status_code == 403, answer.text


def test_unknown_upload_id_on_own_key_is_404(api: Api) -> None:
    mine = start(api)
    for body in (
        {"action": "status", "uploadId": "no-such-upload", "s3Key": mine["s3Key"]},
        {"action": "sign", "uploadId": "no-such-upload", "s3Key": mine["s3Key"], "partNumbers": [1]},
        {"action": "abort", "uploadId": "no-such-upload", "s3Key": mine["s3Key"]},
        {
            "action": "complete",
            "uploadId": "no-such-upload",
            "s3Key": mine["s3Key"],
            "parts": [{"PartNumber": 1, "ETag": "x"}],
        },
    ):
        assert api.presigned(body).status_code == 404, body
    api.ok(api.presigned({"action": "abort", "uploadId": mine["uploadId"], "s3Key": mine["s3Key"]}))


# --- file names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd.safetensors", "passwd.safetensors"),
        ("/absolute/path/model.ckpt", "model.ckpt"),
        ("C:\\Users\\me\\lora.pt", "lora.pt"),
        ("nul\x00byte.bin", "nulbyte.bin"),
        ("line\nbreak.bin", "linebreak.bin"),
        ("evil\u202efdp.bin", "evilfdp.bin"),
        ("isolate\u2066x\u2069.bin", "isolatex.bin"),
        ("e\u0301toile.safetensors", "\u00e9toile.safetensors"),
        ("my lora: v2?.safetensors", "my_lora_v2_.safetensors"),
        ("..hidden.gguf", "hidden.gguf"),
        ("_.safetensors", "unnamed.safetensors"),  # only its type: it kept no type, and was refused for that
        (".. .ckpt", "unnamed.ckpt"),
    ],
)
def test_file_names_become_safe_basenames(api: Api, given: str, stored: str) -> None:
    started = start(api, given)
    assert started["uniqueFileName"].split("_", 2)[2] == stored
    assert started["s3Key"].count("/") == 2 and ".." not in started["s3Key"].split("/")
    assert unicodedata.is_normalized("NFC", started["s3Key"])
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_long_names_are_capped_and_keep_their_extension(api: Api) -> None:
    started = start(api, "a" * 500 + ".safetensors")
    name = started["uniqueFileName"].split("_", 2)[2]
    assert len(name) <= 150 and name.endswith(".safetensors")
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))
    wide = start(api, "模" * 76 + ".safetensors")  # counted in bytes: a volume's filesystem takes 255 a name
    name = wide["uniqueFileName"].split("_", 2)[2]
    assert len(name.encode()) <= 150 and name.endswith("模.safetensors")
    api.ok(api.presigned({"action": "abort", "uploadId": wide["uploadId"], "s3Key": wide["s3Key"]}))


@pytest.mark.parametrize("name", ["..", "/", "\u202e", "\x00", "...", " "])
def test_names_with_nothing_usable_are_refused(api: Api, name: str) -> None:
    answer = api.presigned({"action": "start", "fileName": name, "totalParts": 1})
    assert answer.status_code == 400 and answer.json()["error"]


@pytest.mark.parametrize("name", ["virus.exe", "notes.txt", "model", "model.safetensors.zip"])
def test_other_extensions_are_refused_naming_the_allowed_types(api: Api, name: str) -> None:
    for answer in (
        api.presigned({"action": "start", "fileName": name, "totalParts": 1}),
        api.chunked({"action": "start", "fileName": name, "fileSize": 1}),
        api.legacy(name, b"x"),
    ):
        assert answer.status_code == 400
        assert ".safetensors" in answer.json()["error"] and ".gguf" in answer.json()["error"]
        # "Files of type '(none)'" was a riddle for a file with no extension (an audit).
        kind = "without a type at the end of the name" if name == "model" else f"of type '.{name.rsplit('.', 1)[-1]}'"
        assert answer.json()["error"].startswith(f"Files {kind} are not accepted. Allowed types: ")


def test_extension_allowlist_is_configurable(sandbox: Any, tmp_path: Path) -> None:
    with api_server(sandbox, tmp_path / "api", allowed_extensions=".txt, zip") as url:
        api = Api(url, sandbox.token)
        assert api.presigned({"action": "start", "fileName": "model.safetensors", "totalParts": 1}).status_code == 400
        for name in ("notes.txt", "pack.ZIP"):
            started = start(api, name)
            api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


# --- sizes and part counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_parts", "file_size", "phrase"),
    [
        (0, None, "totalParts"),
        (10_001, None, "totalParts"),
        (-1, None, "totalParts"),
        (3, 10 * MiB, "at most 2 parts"),
        (1, 6 * GiB, "at least 2 parts"),
        (100, 200 * GiB, "at most 100.0 GiB"),
        (1, -5, "fileSize"),
    ],
)
def test_illegal_part_layouts_are_400_with_a_reason(
    api: Api, total_parts: int, file_size: int | None, phrase: str
) -> None:
    body: dict[str, Any] = {"action": "start", "fileName": "a.bin", "totalParts": total_parts}
    if file_size is not None:
        body["fileSize"] = file_size
    answer = api.presigned(body)
    assert answer.status_code == 400
    assert phrase in answer.json()["error"]


def test_a_legal_layout_at_the_boundaries_is_accepted(api: Api) -> None:
    for total, size in ((2, 5 * MiB + 1), (10_000, 10_000 * 5 * MiB), (1, 0)):
        started = api.ok(
            api.presigned(
                {"action": "start", "fileName": "a.bin", "totalParts": total, "fileSize": size, "urlBatch": 1}
            )
        )
        api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


# --- malformed requests never cause a 500 ----------------------------------------------------------

MALFORMED = [
    b"",
    b"nonsense",
    b"[]",
    b"null",
    b"42",
    b'"start"',
    b"{",
    b'{"action": null}',
    b'{"action": "zap"}',
    b'{"action": "start"}',
    b'{"action": "start", "fileName": 7, "totalParts": "x"}',
    b'{"action": "complete", "uploadId": "u", "s3Key": "k", "parts": "all"}',
    b'{"action": "complete", "uploadId": "u", "s3Key": "loras/sandbox-user/sandbox-user_1_a.bin", "parts": []}',
    b'{"action": "complete", "uploadId": "u", "s3Key": "loras/sandbox-user/sandbox-user_1_a.bin", '
    b'"parts": [{"PartNumber": 1, "ETag": "a"}, {"PartNumber": 1, "ETag": "b"}]}',
    b'{"action": "sign", "uploadId": "u", "s3Key": "k", "partNumbers": []}',
    b'{"action": "sign", "uploadId": "u", "s3Key": "k", "partNumbers": [0]}',
    b'{"action": "sign", "uploadId": "u", "s3Key": "k", "partNumbers": [1], "contentMd5": {"1": "nope"}}',
    b'{"action": "sign", "uploadId": "u", "s3Key": "k", "partNumbers": [1], "contentMd5": {"x": "nope"}}',
    b'{"action": "start", "fileName": "a.bin", "totalParts": 1, "contentType": "text/html\\r\\nX-Evil: 1"}',
    '{"action": "start", "fileName": "\ud800.bin", "totalParts": 1}'.encode("utf-8", "surrogatepass"),
    b"\xff\xfe\x00garbage",
]


@pytest.mark.parametrize("raw", MALFORMED)
@pytest.mark.parametrize("path", [PRESIGNED, CHUNKED])
def test_malformed_bodies_get_a_clear_4xx(api: Api, raw: bytes, path: str) -> None:
    answer = requests.post(
        api.url + path, data=raw, timeout=30, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert isinstance(answer.json()["error"], str) and answer.json()["error"]


def test_request_bodies_are_capped(api: Api) -> None:
    huge = b'{"action": "list", "pad": "' + b"x" * (3 * MiB) + b'"}'
    answer = requests.post(api.url + PRESIGNED, data=huge, headers=api.headers(), timeout=60)
    assert answer.status_code == 413 and "error" in answer.json()

    def stream() -> Iterator[bytes]:  # no Content-Length: the cap must still hold
        yield b'{"action": "list", "pad": "'
        for _ in range(3):
            yield b"x" * MiB
        yield b'"}'

    answer = requests.post(api.url + PRESIGNED, data=stream(), headers=api.headers(), timeout=60)
    assert answer.status_code == 413


# --- logs keep no secrets ---------------------------------------------------------------------------


def test_server_logs_contain_no_token_and_no_url_signature(api: Api, sandbox_process: SandboxProcess) -> None:
    started = start(api)
    signed = api.ok(
        api.presigned(
            {"action": "sign", "uploadId": started["uploadId"], "s3Key": started["s3Key"], "partNumbers": [1]}
        )
    )
    signatures = {
        match
        for url in [*started["presignedUrls"], *signed["presignedUrls"].values()]
        for match in re.findall(r"X-Amz-Signature=([0-9a-f]+)", url)
    }
    assert signatures
    # Clients that put secrets where they don't belong must not get them written down either.
    requests.get(api.url + f"/nope?token={sandbox_process.info.token}", timeout=30)
    requests.get(api.url + f"/nope?X-Amz-Signature={next(iter(signatures))}", headers=api.headers(), timeout=30)
    requests.post(
        api.url + PRESIGNED,
        headers={"Authorization": f"Bearer {sandbox_process.info.token}x"},
        json={"action": "list"},
        timeout=30,
    )
    api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))

    logs = "".join(p.read_text(errors="replace") for p in (sandbox_process.home / "logs").glob("*.log*"))
    assert "POST /api/user/influencers/presigned-upload" in logs, "the access log must actually be written"
    assert "/nope?" in logs
    assert sandbox_process.info.token not in logs
    assert sandbox_process.info.secret_key not in logs
    for signature in signatures:
        assert signature not in logs
