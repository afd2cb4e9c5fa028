"""What the window decides when it connects, tests a server or saves settings: plain functions, no Qt."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_uploader.connection import (
    SECRET_ENV,
    TOKEN_ENV,
    Link,
    check_server_address,
    choose_connection,
    describe_capabilities,
    route_paths,
    save_choices,
    site_address,
    start_sandbox,
    try_server,
)
from desktop_uploader.engine.api_capabilities import parse_capabilities, seed_capabilities
from desktop_uploader.engine.credentials import CredentialStore, direct_secret_key, token_key
from desktop_uploader.engine.settings import Settings, load_settings
from desktop_uploader.paths import resolve_paths

URL = "https://uploads.example.com"


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CredentialStore:
    for name in (TOKEN_ENV, SECRET_ENV, "DESKTOP_UPLOADER_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return CredentialStore(tmp_path / "credentials.json", use_keyring=False)


def test_no_server_and_no_sandbox_chosen_needs_setup(credentials: CredentialStore) -> None:
    outcome = choose_connection(credentials, Settings())
    assert (outcome.link, outcome.label, outcome.detail) == (Link.NEEDS_SETUP, "No server set up", "")
    assert outcome.connection is None and outcome.direct is None


def test_a_server_without_a_token_asks_for_one(credentials: CredentialStore) -> None:
    outcome = choose_connection(credentials, Settings(server_url=URL))
    assert outcome.link is Link.FAILED
    assert outcome.label == "No access token"
    assert outcome.detail == f"Add the access token for {URL} in Settings → Connection."
    assert outcome.connection is None


def test_a_server_with_its_token_is_connected(credentials: CredentialStore) -> None:
    credentials.set(token_key(URL), "tok")
    outcome = choose_connection(credentials, Settings(server_url=URL + "/"))
    assert (outcome.link, outcome.label, outcome.detail) == (
        Link.CONNECTED,
        "uploads.example.com",
        f"Uploads go to {URL}",
    )
    assert outcome.connection is not None
    assert (outcome.connection.api_url, outcome.connection.token) == (URL, "tok")


def test_the_token_from_the_environment_counts(credentials: CredentialStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    outcome = choose_connection(credentials, Settings(server_url=URL))
    assert outcome.connection is not None and outcome.connection.token == "from-env"


def test_the_chosen_sandbox_is_started_next(credentials: CredentialStore) -> None:
    outcome = choose_connection(credentials, Settings(use_sandbox=True))
    assert (outcome.link, outcome.label) == (Link.CONNECTING, "Starting the test storage on this computer…")


def test_the_direct_target_comes_with_every_outcome(credentials: CredentialStore) -> None:
    settings = Settings(direct_endpoint="https://s3.example.com", direct_bucket="models", direct_access_key="AK")
    credentials.set(direct_secret_key("https://s3.example.com", "AK"), "sk")
    outcome = choose_connection(credentials, settings)
    assert outcome.link is Link.NEEDS_SETUP
    assert outcome.direct is not None
    assert (outcome.direct.bucket, outcome.direct.access_key, outcome.direct.secret_key) == ("models", "AK", "sk")


@pytest.mark.allow_log(r"desktop_uploader\.connection: Sandbox start failed")
def test_a_sandbox_that_will_not_start_is_a_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise RuntimeError("port taken")

    monkeypatch.setattr("desktop_uploader.connection.launch_sandbox", refuse)
    outcome = start_sandbox(resolve_paths(), None)
    assert (outcome.link, outcome.label) == (Link.FAILED, "Test storage failed to start")
    assert outcome.detail == "The test storage on this computer could not start: port taken"
    assert outcome.sandbox is None and outcome.connection is None


def test_saving_a_token_saves_it_and_reconnects(credentials: CredentialStore) -> None:
    paths = resolve_paths().ensure()
    before = Settings(server_url=URL)
    assert not save_choices(paths, credentials, before, before.replace(auto_start=False), None, None)
    assert save_choices(paths, credentials, before, before, "new-token", None)
    assert credentials.get(token_key(URL)) == "new-token"
    assert save_choices(paths, credentials, before, Settings(), None, None)  # another server: reconnect
    assert load_settings(paths.settings_file)[0] == Settings()


def test_emptying_the_token_field_forgets_the_saved_token(credentials: CredentialStore) -> None:
    """An audit emptied the address and the token and saved: the token stayed in the private file."""
    paths = resolve_paths().ensure()
    before = Settings(server_url=URL)
    credentials.set(token_key(URL), "old-token")
    assert save_choices(paths, credentials, before, before, "", None)
    assert credentials.get(token_key(URL)) is None
    assert not save_choices(paths, credentials, before, before, "", None), "nothing left to forget"
    credentials.set(token_key(URL), "old-token")
    assert save_choices(paths, credentials, before, Settings(), "", None)  # both fields emptied
    assert credentials.get(token_key(URL)) is None
    assert "old-token" not in credentials.fallback_file.read_text()
    credentials.set(token_key(URL), "kept")
    save_choices(paths, credentials, before, Settings(), None, None)  # only the address changed
    assert credentials.get(token_key(URL)) == "kept"


def test_saving_a_direct_secret_does_not_reconnect(credentials: CredentialStore) -> None:
    paths = resolve_paths().ensure()
    settings = Settings(direct_endpoint="https://s3.example.com", direct_bucket="models", direct_access_key="AK")
    assert not save_choices(paths, credentials, settings, settings, None, "sk")
    assert credentials.get(direct_secret_key("https://s3.example.com", "AK")) == "sk"


def test_addresses_are_checked_before_any_request() -> None:
    assert check_server_address(URL) is None
    assert check_server_address("http://localhost:8000") is None
    must = "The address must start with http:// or https://"
    assert check_server_address("uploads.example.com") == f"{must}: did you mean https://uploads.example.com?"
    assert check_server_address("127.0.0.1:3000/app") == f"{must}: did you mean http://127.0.0.1:3000/app?"
    assert check_server_address("localhost:8000") == f"{must}: did you mean http://localhost:8000?"
    assert check_server_address("192.168.1.20:3000") == f"{must}: did you mean http://192.168.1.20:3000?"
    assert check_server_address("nas.local:3000") == f"{must}: did you mean http://nas.local:3000?"
    assert check_server_address("uploads") == f"{must}; got 'uploads'."  # not an address: nothing to offer
    assert check_server_address("ftp://uploads.example.com") == f"{must}; got 'ftp://uploads.example.com'."
    port = "The port in the address must be a number from 1 to 65535."
    assert check_server_address("http://127.0.0.1:9999999/") == port  # the CLI audit's: it named an API path
    assert check_server_address("https://uploads.example.com:https/") == port
    assert (
        check_server_address("https://:8000/") == "The address must name a server, as in https://uploads.example.com."
    )
    assert try_server("ftp://x", "t", Settings()) == (False, f"{must}; got 'ftp://x'.")
    assert try_server("", "", Settings()) == (True, "No address: uploads go to the local sandbox on this computer.")


def test_a_server_without_a_capabilities_document_speaks_the_original_contract() -> None:
    assert (
        describe_capabilities(seed_capabilities(Settings()))
        == "Connected. This server speaks the original contract (start, complete, abort): uploads work, but links "
        "that run out can't be renewed, and unfinished uploads can't be listed there."
    )


def test_an_advertised_server_says_what_it_offers() -> None:
    caps = parse_capabilities(
        {
            "actions": ["sign", "list"],
            "contentMd5": True,
            "urlExpirySeconds": 900,
            "chunkedUpload": {"path": "/chunked", "maxChunkBytes": 8 * 1024 * 1024},
            "legacyUpload": {"path": "/upload", "maxBytes": 6 * 1024 * 1024},
        }
    )
    assert describe_capabilities(caps) == (
        "Connected. It offers presigned uploads (with re-signing and Content-MD5), chunked uploads (8.0 MiB chunks),"
        " single requests up to 6.0 MiB; upload links last 15 min."
    )


def test_an_advertised_server_names_the_checksums_it_signs() -> None:
    """A Next.js audit's route offered CRC32C and CRC32 checks; the test said "with … Content-MD5"."""
    caps = parse_capabilities({"actions": ["sign", "list"], "checksums": ["crc32c", "crc32"], "urlExpirySeconds": 3600})
    assert describe_capabilities(caps) == (
        "Connected. It offers presigned uploads (with re-signing and CRC32C/CRC32 checks); upload links last 60 min."
    )


def test_an_advertised_server_with_nothing_usable_says_so() -> None:
    caps = parse_capabilities({"presignedUpload": False, "urlExpirySeconds": 30})
    assert describe_capabilities(caps) == "Connected. It offers nothing we can use; upload links last 30 s."


@pytest.mark.parametrize(
    ("typed", "used"),
    [
        ("https://app.example.com/api/user/influencers/presigned-upload", "https://app.example.com"),
        ("https://app.example.com/api/user/influencers/presigned-upload/", "https://app.example.com"),
        ("https://app.example.com/shop/api/user/influencers/chunked-upload", "https://app.example.com/shop"),
        (" https://app.example.com/ ", "https://app.example.com"),
        ("https://app.example.com/api/user/influencers", "https://app.example.com/api/user/influencers"),
        ("https://api/user/influencers/presigned-upload", "https://api/user/influencers/presigned-upload"),
    ],
)
def test_an_upload_routes_own_path_is_taken_off_the_address(typed: str, used: str) -> None:
    """What the app adds itself, pasted with the address, would be added twice; a host is never cut."""
    assert site_address(typed, route_paths(Settings())) == used
