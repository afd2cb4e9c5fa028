"""The API under fire: fuzzed from its own OpenAPI schema, attacked by a second user, fed hostile file names.

* Fuzzing (schemathesis, from ``/openapi.json``; valid and invalid data): no answer is ever a 5xx, and
  every refusal is a 4xx whose body is ``{"error": "<a sentence>"}``.
* Another user's token against every action, with the victim's upload id and key in every combination:
  always 403 or 404, and the victim's uploads (presigned and chunked) are exactly as they were.
* File names with ``../``, absolute paths, NUL, 500 characters and bidi overrides, on all three ways in:
  refused with a 400, or stored under the user's own prefix as a safe base name.
* The server's log file holds neither a token nor a presigned URL's signature.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from desktop_uploader.engine.filenames import DEFAULT_MODEL_EXTENSIONS, MAX_NAME_BYTES
from desktop_uploader.engine.limits import MiB
from desktop_uploader.logsetup import configure_logging
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api import CHUNKED, LEGACY, PRESIGNED, Api
from tests.support.api_servers import api_server
from tests.support.logfail import FAULTS, HOSTILE_INPUT
from tests.support.storage import open_multipart_uploads

# Faults and malformed requests are sent on purpose here: what they cause is logged, and expected.
pytestmark = pytest.mark.allow_log(*FAULTS, *HOSTILE_INPUT)

ALICE, ALICE_TOKEN = "fuzz-alice", "alice-token-0123456789abcdef0123"
BOB, BOB_TOKEN = "fuzz-bob", "bob-token-0123456789abcdef012345"
SIGNATURE = re.compile(r"X-Amz-Signature=([0-9a-f]{16,})")


@pytest.fixture(scope="module")
def server(sandbox: SandboxInfo, s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An API with two users of its own, logging (redacted, as in production) to a file the tests read."""
    workdir = tmp_path_factory.mktemp("api-robustness")
    tokens = workdir / "fuzz-tokens.json"
    tokens.write_text(json.dumps({ALICE_TOKEN: ALICE, BOB_TOKEN: BOB}), encoding="utf-8")
    log_file = workdir / "logs" / "server.log"
    root = logging.getLogger()
    level = root.level
    configure_logging(log_file)
    seen: dict[str, Any] = {"log": log_file, "signatures": set()}
    try:
        with api_server(sandbox, workdir / "api", tokens_file=tokens) as url:
            seen["url"] = url
            yield seen
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_desktop_uploader", False):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        for user in (ALICE, BOB):
            for upload in open_multipart_uploads(s3, sandbox.bucket, f"loras/{user}/"):
                with contextlib.suppress(Exception):
                    s3.abort_multipart_upload(Bucket=sandbox.bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def remember_signatures(server: dict[str, Any], text: str) -> None:
    server["signatures"].update(SIGNATURE.findall(text))


def assert_clear_refusal(answer: requests.Response, context: Any = "") -> None:
    assert answer.status_code < 500, (context, answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        try:
            body = answer.json()
        except ValueError:
            pytest.fail(f"{context}: a {answer.status_code} without a JSON body: {answer.text[:200]!r}")
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), (
            context,
            answer.status_code,
            body,
        )


# ---------------------------------------------------------------------------------------------------------------
# Fuzzing from the OpenAPI schema


OPERATIONS = [f"GET {PRESIGNED}", f"POST {PRESIGNED}", f"POST {CHUNKED}", f"POST {LEGACY}"]


@pytest.fixture(scope="module")
def operations(server: dict[str, Any]) -> dict[str, Any]:
    schema = schemathesis.openapi.from_url(server["url"] + "/openapi.json")
    found = {operation.label: operation for operation in (result.ok() for result in schema.get_all_operations())}
    assert sorted(found) == sorted(OPERATIONS), "every operation of the API is fuzzed"
    return found


@pytest.fixture
def target(server: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Real upload ids and keys of Alice's, so that fuzzed requests also get past the ownership check."""
    alice = Api(server["url"], ALICE_TOKEN)
    presigned = alice.ok(alice.presigned({"action": "start", "fileName": "target.safetensors", "totalParts": 3}))
    remember_signatures(server, json.dumps(presigned))
    chunked = chunked_start(alice, "target-chunked.safetensors", 12 * MiB)
    return {
        "presigned": {"uploadId": presigned["uploadId"], "s3Key": presigned["s3Key"]},
        "chunked": {"uploadId": chunked["uploadId"], "s3Key": chunked["s3Key"]},
    }


def aim(case: Any, target: dict[str, dict[str, str]], where: str) -> None:
    """Put real ids into a generated case (the rest stays as generated, valid or not)."""
    ids = target["chunked" if CHUNKED in case.path else "presigned"]
    if where == "body" and isinstance(case.body, dict):
        case.body.update({k: v for k, v in ids.items() if k in case.body or k == "s3Key"})
    elif where == "query" and isinstance(case.query, dict):
        case.query.update(ids)


def fuzz(operation: Any, mode: str, examples: int, token: str, check: Any, target: Any = None) -> None:
    """Run ``check(case, response)`` on ``examples`` cases schemathesis generates for ``operation``."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(GenerationMode(mode)), where=st.sampled_from(["", "body", "query"]))
    def run(case: Any, where: str) -> None:
        if target is not None and where:
            aim(case, target, where)
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        check(case, response)

    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_never_get_a_5xx_and_every_refusal_says_why(
    operations: dict[str, Any], server: dict[str, Any], target: Any, label: str, mode: str
) -> None:
    def check(case: Any, response: Any) -> None:
        remember_signatures(server, response.text)
        assert_clear_refusal(response, case.as_curl_command())

    fuzz(operations[label], mode, 50, ALICE_TOKEN, check, target)


# What a schema-driven fuzzer rarely tries: text of every Unicode category (digits that aren't ASCII,
# control characters, noncharacters) where the API expects ids, ETags, part numbers and offsets.
odd_text = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(categories=["Nd", "No", "Cc", "Zs"]), min_size=1, max_size=6),
    st.sampled_from(["../", "a/b", "\x00", "1" * 5000, "\ufffe", "-1", "0", "10001", " 1", "1e3"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_odd_ids_etags_part_numbers_and_offsets_are_refused_with_a_4xx(
    server: dict[str, Any], target: dict[str, dict[str, str]], data: st.DataObject
) -> None:
    alice = Api(server["url"], ALICE_TOKEN)
    kind = data.draw(st.sampled_from(["presigned", "chunked"]))
    real = target[kind]
    ids = {
        "uploadId": data.draw(st.one_of(st.just(real["uploadId"]), odd_text)),
        "s3Key": data.draw(st.one_of(st.just(real["s3Key"]), odd_text)),
    }
    action = data.draw(st.sampled_from(["status", "sign", "complete", "abort", "chunk"]))
    if action == "chunk":
        offset = data.draw(st.one_of(odd_text, st.integers(0, 2**70).map(str)))
        answer = requests.post(
            server["url"] + CHUNKED,
            params={**ids, "offset": offset},
            data=b"x" * data.draw(st.integers(0, 64)),
            headers={**alice.headers(), "Content-Type": "application/octet-stream"},
            timeout=30,
        )
    elif kind == "chunked" and action in ("status", "complete", "abort"):
        answer = alice.chunked({"action": action, **ids})
    else:
        body: dict[str, Any] = {"action": action, **ids}
        if action == "sign":
            body["partNumbers"] = data.draw(st.lists(st.integers(-3, 10_003), min_size=1, max_size=4))
            body["contentMd5"] = data.draw(
                st.dictionaries(odd_text, st.one_of(st.just("1B2M2Y8AsgTpgAmY7PhCfg=="), odd_text), max_size=3)
            )
        if action == "complete":
            body["parts"] = [
                {"PartNumber": data.draw(st.integers(1, 3)), "ETag": data.draw(odd_text)}
                for _ in range(data.draw(st.integers(1, 3)))
            ]
        answer = alice.presigned(body)
    remember_signatures(server, answer.text)
    assert_clear_refusal(answer, (kind, action, ids))


FOUND_BY_FUZZING = [
    # What the fuzzers above found answered with a 500 or a 502 (storage refusing what it was passed on).
    ("sign", {"partNumbers": [1], "contentMd5": {"²": "1B2M2Y8AsgTpgAmY7PhCfg=="}}),  # int("²") raised
    ("sign", {"partNumbers": [1], "contentMd5": {"1" * 5000: "1B2M2Y8AsgTpgAmY7PhCfg=="}}),  # over int()'s limit
    ("status", {"uploadId": "/"}),  # SeaweedFS: InvalidRequest
    ("status", {"uploadId": "../\x00"}),
    ("abort", {"uploadId": "a/b"}),
    ("complete", {"uploadId": "a\nb", "parts": [{"PartNumber": 1, "ETag": "x"}]}),  # MethodNotAllowed
    ("complete", {"parts": [{"PartNumber": 1, "ETag": "\x00"}]}),  # MalformedXML
    ("complete", {"parts": [{"PartNumber": 1, "ETag": "\ufffe"}]}),
]


@pytest.mark.parametrize(("action", "fields"), FOUND_BY_FUZZING)
def test_inputs_the_fuzzers_found_are_refused_with_a_4xx(
    server: dict[str, Any], target: dict[str, dict[str, str]], action: str, fields: dict[str, Any]
) -> None:
    alice = Api(server["url"], ALICE_TOKEN)
    answer = alice.presigned({"action": action, **target["presigned"], **fields})
    assert 400 <= answer.status_code < 500, answer.text
    assert_clear_refusal(answer, (action, fields))


@pytest.mark.parametrize("offset", ["²", "٣", "9" * 5000, "-1", "1.5"])
def test_a_chunk_offset_that_is_not_plain_digits_is_a_400(
    server: dict[str, Any], target: dict[str, dict[str, str]], offset: str
) -> None:
    answer = requests.post(
        server["url"] + CHUNKED,
        params={**target["chunked"], "offset": offset},
        data=b"x",
        headers={"Authorization": f"Bearer {ALICE_TOKEN}", "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert_clear_refusal(answer)


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_without_a_valid_token_are_401(operations: dict[str, Any], label: str) -> None:
    def check(case: Any, response: Any) -> None:
        assert response.status_code in (401, 413), (case.as_curl_command(), response.status_code, response.text[:200])
        assert_clear_refusal(response)

    fuzz(operations[label], "positive", 10, "not-a-token-not-a-token", check)


# ---------------------------------------------------------------------------------------------------------------
# Another user's token against every action


def chunked_start(api: Api, name: str, size: int) -> dict[str, Any]:
    return api.ok(api.chunked({"action": "start", "fileName": name, "fileSize": size}))


@pytest.fixture(scope="module")
def victims(server: dict[str, Any]) -> dict[str, Any]:
    """Alice's uploads: a presigned one with a part stored, and a chunked one with a chunk received."""
    alice = Api(server["url"], ALICE_TOKEN)
    presigned = alice.ok(alice.presigned({"action": "start", "fileName": "victim.safetensors", "totalParts": 2}))
    remember_signatures(server, json.dumps(presigned))
    stored = requests.put(presigned["presignedUrls"][0], data=b"p" * (5 * MiB), timeout=30)
    assert stored.status_code == 200, stored.text
    chunked = chunked_start(alice, "victim-chunked.safetensors", 6 * MiB)
    assert alice.ok(alice.chunk(chunked["uploadId"], chunked["s3Key"], 0, b"c" * MiB))["received"] == MiB
    return {"presigned": presigned, "chunked": chunked, "etag": stored.headers["ETag"]}


def alice_state(server: dict[str, Any], victims: dict[str, Any]) -> tuple[Any, ...]:
    alice = Api(server["url"], ALICE_TOKEN)
    p, c = victims["presigned"], victims["chunked"]
    parts = alice.ok(alice.presigned({"action": "status", "uploadId": p["uploadId"], "s3Key": p["s3Key"]}))["parts"]
    received = alice.ok(alice.chunked({"action": "status", "uploadId": c["uploadId"], "s3Key": c["s3Key"]}))
    return tuple((x["PartNumber"], x["ETag"], x["Size"]) for x in parts), received["received"]


def actions(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("presigned complete", PRESIGNED, {"action": "complete", **ids, "parts": [{"PartNumber": 1, "ETag": "x"}]}),
        ("presigned abort", PRESIGNED, {"action": "abort", **ids}),
        ("presigned sign", PRESIGNED, {"action": "sign", **ids, "partNumbers": [1, 2]}),
        ("presigned status", PRESIGNED, {"action": "status", **ids}),
        ("chunked status", CHUNKED, {"action": "status", **ids}),
        ("chunked complete", CHUNKED, {"action": "complete", **ids}),
        ("chunked abort", CHUNKED, {"action": "abort", **ids}),
        ("chunk", CHUNKED, None),
    ]


@pytest.mark.parametrize("kind", ["presigned", "chunked"])
@pytest.mark.parametrize("combination", ["their key and id", "my prefix, their id", "their key, my id"])
def test_another_users_token_reaches_nothing_of_theirs_with_any_action(
    server: dict[str, Any], victims: dict[str, Any], kind: str, combination: str
) -> None:
    bob = Api(server["url"], BOB_TOKEN)
    before = alice_state(server, victims)
    theirs = victims[kind]
    mine = bob.ok(bob.presigned({"action": "start", "fileName": "bob.safetensors", "totalParts": 1}))
    ids = {
        "their key and id": {"uploadId": theirs["uploadId"], "s3Key": theirs["s3Key"]},
        "my prefix, their id": {"uploadId": theirs["uploadId"], "s3Key": theirs["s3Key"].replace(ALICE, BOB)},
        "their key, my id": {"uploadId": mine["uploadId"], "s3Key": theirs["s3Key"]},
    }[combination]
    for name, path, body in actions(ids):
        if body is None:
            answer = bob.chunk(ids["uploadId"], ids["s3Key"], MiB, b"x" * 1024)
        elif path == PRESIGNED:
            answer = bob.presigned(body)
        else:
            answer = bob.chunked(body)
        assert answer.status_code in (403, 404), (name, combination, answer.status_code, answer.text)
        assert_clear_refusal(answer, name)
        assert theirs["uploadId"] not in answer.text or answer.status_code in (403, 404)
    listed = bob.ok(bob.presigned({"action": "list"}))["uploads"]
    assert {u["uploadId"] for u in listed} == {mine["uploadId"]}
    assert alice_state(server, victims) == before, "the victim's uploads are exactly as they were"
    bob.ok(bob.presigned({"action": "abort", "uploadId": mine["uploadId"], "s3Key": mine["s3Key"]}))


# ---------------------------------------------------------------------------------------------------------------
# Hostile file names, on every way in

_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
hostile_pieces = st.sampled_from(
    [
        "../",
        "..\\",
        "/",
        "\\",
        "C:\\",
        "/etc/",
        "\x00",
        "\n",
        "\r",
        "\u202e",
        "\u2066",
        "\u200f",
        "..",
        ".",
        " ",
        "é",
        "e\u0301",
        ":",
        "*",
        "?",
        "%2e%2e%2f",
    ]
)
hostile_names = st.builds(
    lambda parts, ext: "".join(parts) + ext,
    st.lists(st.one_of(hostile_pieces, st.text(min_size=1, max_size=20)), max_size=12),
    st.sampled_from([*DEFAULT_MODEL_EXTENSIONS, ".exe", "", ".safetensors\x00.exe", ".SAFETENSORS"]),
)


def check_stored_name(given: str, answer: requests.Response, user: str) -> None:
    assert_clear_refusal(answer, repr(given))
    if answer.status_code != 200:
        assert answer.status_code in (400, 413), (repr(given), answer.status_code, answer.text)
        return
    body = answer.json()
    unique = body["uniqueFileName"]
    key = body.get("s3Key") or body["networkVolumePath"].split("/", 3)[3]
    assert key == f"loras/{user}/{unique}", (repr(given), key)
    prefix, _, millis_and_name = unique.partition("_")
    millis, _, name = millis_and_name.partition("_")
    assert prefix == user.split("_", maxsplit=1)[0] and millis.isdigit(), unique
    assert name and len(name.encode()) <= MAX_NAME_BYTES, (repr(given), name)
    assert "/" not in name and "\\" not in name and ".." not in name.split("/") and not name.startswith(".")
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} or ch in _BIDI for ch in name), name
    assert unicodedata.is_normalized("NFC", name)
    assert any(name.lower().endswith(ext) for ext in DEFAULT_MODEL_EXTENSIONS), (repr(given), name)
    assert body["comfyUIPath"].endswith(f"/loras/{user}/{unique}")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(given_name=hostile_names, way=st.sampled_from(["presigned", "chunked", "legacy"]))
@example(given_name="../../../etc/passwd.safetensors", way="presigned")
@example(given_name="/absolute/path/to/model.ckpt", way="chunked")
@example(given_name="nul\x00byte.safetensors", way="legacy")
@example(given_name="nul\x00byte.safetensors", way="chunked")
@example(given_name="a" * 500 + ".safetensors", way="presigned")
@example(given_name="a" * 500 + ".safetensors", way="legacy")
@example(given_name="evil\u202efdp.safetensors", way="chunked")
@example(given_name="evil\u202efdp.exe", way="legacy")
@example(given_name="\u2066..\u2069/x.gguf", way="presigned")
def test_hostile_file_names_are_refused_or_become_safe_base_names(
    server: dict[str, Any], given_name: str, way: str
) -> None:
    alice = Api(server["url"], ALICE_TOKEN)
    if way == "presigned":
        answer = alice.presigned({"action": "start", "fileName": given_name, "totalParts": 1})
    elif way == "chunked":
        answer = alice.chunked({"action": "start", "fileName": given_name, "fileSize": 1})
    else:
        answer = alice.legacy(given_name, b"model bytes")
    check_stored_name(given_name, answer, ALICE)
    if answer.status_code == 200 and way != "legacy":
        body = answer.json()
        remember_signatures(server, answer.text)
        aborting = {"action": "abort", "uploadId": body["uploadId"], "s3Key": body["s3Key"]}
        alice.ok(alice.presigned(aborting) if way == "presigned" else alice.chunked(aborting))


# ---------------------------------------------------------------------------------------------------------------
# Logs


def test_the_log_file_holds_no_token_and_no_url_signature(server: dict[str, Any], victims: dict[str, Any]) -> None:
    """Runs after the tests above in this module: everything they made the server log is in the file."""
    alice = Api(server["url"], ALICE_TOKEN)
    p = victims["presigned"]
    signed = alice.ok(
        alice.presigned({"action": "sign", "uploadId": p["uploadId"], "s3Key": p["s3Key"], "partNumbers": [2]})
    )
    remember_signatures(server, json.dumps(signed))
    # Secrets where they don't belong must not be written down either.
    requests.get(
        server["url"] + f"/nope?token={ALICE_TOKEN}&X-Amz-Signature={next(iter(server['signatures']))}", timeout=10
    )
    requests.post(server["url"] + PRESIGNED, headers={"Authorization": f"Bearer {BOB_TOKEN}x"}, json={}, timeout=10)
    requests.post(server["url"] + LEGACY, headers={"Authorization": ALICE_TOKEN}, timeout=10)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = Path(server["log"]).read_text(encoding="utf-8", errors="replace")
    assert "abort" in text or "start" in text, "the server's log must actually be written"
    for secret in (ALICE_TOKEN, BOB_TOKEN):
        assert secret not in text
    leaked = [s for s in server["signatures"] if s in text]
    assert not leaked, f"{len(leaked)} of {len(server['signatures'])} signatures are in the log"
