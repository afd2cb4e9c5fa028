"""Which upload server to talk to, and with what token: flags, settings, keyring, environment, or the sandbox.

The one place a connection is built, for the CLI and the window alike: the server (or the sandbox,
or the direct S3 target), its secret (a flag, the environment, or the keychain, in that order), and
the probe that says what a server offers. For the window also the sentences it shows about each
outcome (``choose_connection``, ``start_sandbox``, ``try_server``), as blocking functions it runs in
a worker thread.

Outside the engine because the last resort, the local sandbox, is a subprocess of this app: when
no server is configured, the CLI and the GUI use a sandbox that is already running for this user,
or start one (``desktop-uploader sandbox --json``) that lives as long as any of them uses it
(sandbox/launcher.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

from desktop_uploader.engine.addresses import scheme_missing
from desktop_uploader.engine.api_client import ApiClient, Capabilities
from desktop_uploader.engine.api_trial import trial_upload
from desktop_uploader.engine.credentials import CredentialStore, direct_secret_key, token_key
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.history import HistoryStore
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.manager import ServerConnection
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import DEFAULT_REGION, Settings, save_settings
from desktop_uploader.paths import AppPaths
from desktop_uploader.sandbox import launcher, storage_use
from desktop_uploader.sandbox.info import SandboxInfo, sandbox_server_id
from desktop_uploader.sandbox.launcher import SandboxStartError, launch

SERVER_ENV = "DESKTOP_UPLOADER_SERVER"
TOKEN_ENV = "DESKTOP_UPLOADER_TOKEN"  # noqa: S105 - the variable's name, not a secret
SECRET_ENV = "DESKTOP_UPLOADER_S3_SECRET"  # noqa: S105 - the variable's name, not a secret
SANDBOX_LABEL = "Test storage (this computer)"  # the words the window uses for the sandbox everywhere

log = logging.getLogger(__name__)

SandboxHandle = launcher.SandboxHandle  # the window and the CLI reach the sandbox through this module only


class ConnectionSetupError(Exception):
    """A configuration the user has to fix (no token for a server, a sandbox that won't start)."""


def launch_sandbox(paths: AppPaths) -> SandboxHandle:
    """The user's running sandbox (or another window's or command's), or a new one; shared until the last
    of them is done."""
    try:
        return launch(paths.sandbox_dir, paths.log_file)
    except SandboxStartError as exc:
        raise ConnectionSetupError(str(exc)) from None


def sandbox_stored(paths: AppPaths) -> int:
    """Bytes the local sandbox's test uploads take on this computer."""
    return storage_use.stored_size(paths.sandbox_dir)


def empty_sandbox(paths: AppPaths, data_dir: Path | None = None) -> tuple[storage_use.Emptied | None, str]:
    """Delete the test uploads of the sandbox in ``data_dir`` (the local one by default) and their History
    entries, so a file tried again is not "already uploaded"; refused while a sandbox runs there.

    What was freed (None if refused), and a sentence for the window's status bar.
    """
    folder = data_dir or paths.sandbox_dir
    try:
        emptied = storage_use.empty_store(folder)
    except storage_use.SandboxInUseError as exc:
        return None, str(exc)
    HistoryStore.in_data_dir(paths.data_dir).forget_server(sandbox_server_id(folder.expanduser().resolve()))
    kept = f" {human_bytes(emptied.left)} could not be removed from {folder}." if emptied.left else ""
    return emptied, f"Emptied the test storage: {human_bytes(emptied.freed)} freed.{kept}"


def sandbox_connection(info: SandboxInfo) -> ServerConnection:
    return ServerConnection(info.api_url, info.token, info.server_id, SANDBOX_LABEL)


def configured_server(settings: Settings, server: str | None = None) -> str:
    return site_address(server or settings.server_url or os.environ.get(SERVER_ENV, ""), route_paths(settings))


def route_paths(settings: Settings) -> list[str]:
    return [settings.presigned_path, settings.chunked_path, settings.legacy_path]


def site_address(url: str, paths: Iterable[str]) -> str:
    """``url`` without an upload route's own path pasted onto its end; the app adds that path itself.

    Pasted whole (``https://app.example.com/api/user/influencers/presigned-upload``), the address was
    answered "no 'start' here (HTTP 404)", which a first-time user's audit could not act on.
    """
    site = url.strip().rstrip("/")
    for pasted in ("/" + path.strip("/") for path in paths):
        if pasted != "/" and site.endswith(pasted) and "://" in site[: -len(pasted)]:
            return site[: -len(pasted)]
    return site


def server_token(credentials: CredentialStore, url: str, given: str | None = None) -> str | None:
    """The access token for ``url``: given (``--token``), then ``DESKTOP_UPLOADER_TOKEN``, then the keychain."""
    return given or os.environ.get(TOKEN_ENV) or credentials.get(token_key(url))


def server_connection(url: str, token: str) -> ServerConnection:
    """A server configured by its address: the address is also its identity (for resume and owed aborts)."""
    return ServerConnection(url, token, url, urlsplit(url).netloc or url)


def direct_secret(credentials: CredentialStore, settings: Settings, access_key: str | None = None) -> str | None:
    """The S3 secret for direct uploads: ``DESKTOP_UPLOADER_S3_SECRET``, then the keychain."""
    key = access_key or settings.direct_access_key
    if not key:
        return None
    return os.environ.get(SECRET_ENV) or credentials.get(direct_secret_key(settings.direct_endpoint, key))


def direct_target(
    settings: Settings,
    secret: str | None,
    *,
    endpoint: str | None = None,
    bucket: str | None = None,
    access_key: str | None = None,
    region: str | None = None,
    prefix: str | None = None,
) -> DirectTarget | None:
    """Your own S3 bucket for direct uploads, from the settings (or flags that override them); None if unset."""
    bucket = bucket or settings.direct_bucket
    if not bucket:
        return None
    return DirectTarget(
        endpoint or settings.direct_endpoint,
        (region or settings.direct_region).strip() or DEFAULT_REGION,
        bucket,
        access_key or settings.direct_access_key,
        secret or "",
        (settings.direct_prefix if prefix is None else prefix).strip("/"),
    )


def is_server_address(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def probe_server(url: str, token: str, settings: Settings) -> Capabilities:
    """What a server offers, proving the token on the way; raises an UploaderError saying what went wrong.

    It waits for an answer as long as an upload would (the stall timeout): a serverless route that was
    asleep took 20 s to answer its first request, and a 10 s wait failed the test of a server that worked.
    """
    client = ApiClient(url, token, settings.replace(retries=1, connect_timeout=5))
    try:
        caps = client.capabilities()
        # The capabilities GET doesn't prove the token on the seed's server; 'list' does, so ask for
        # something harmless that needs it where the server has it.
        if caps.offers("list"):
            client.list_uploads()
        trial_upload(client)  # the address, the token and the part links, as an upload will use them
        return caps
    finally:
        client.close()


def resolve_connection(
    paths: AppPaths, settings: Settings, *, server: str | None = None, token: str | None = None
) -> tuple[ServerConnection, SandboxHandle | None]:
    """A connection to the configured server, or to the local sandbox when none is configured."""
    url = configured_server(settings, server)
    if url:
        problem = check_server_address(url)
        if problem is not None:
            raise ConnectionSetupError(f"'{url}' is not a server address. {problem}")
        secret = server_token(credential_store(paths), url, token)
        if not secret:
            raise ConnectionSetupError(
                f"No access token for {url}. Pass --token, set {TOKEN_ENV}, or save it in the app's Settings."
            )
        return server_connection(url, secret), None
    handle = launch_sandbox(paths)
    return sandbox_connection(handle.info), handle


def credential_store(paths: AppPaths) -> CredentialStore:
    return CredentialStore(paths.config_dir / "credentials.json")


# -- the window's connection: the same pieces, and the sentences it shows --------------------------------


class Link(Enum):
    NEEDS_SETUP = "needs setup"  # no server, and the person hasn't chosen the sandbox yet
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """Where the window stands after a step of connecting: the state, the label and sentence it shows, and
    what the manager should use. ``connection`` replaces the manager's once settled (connected or needing
    setup); a failed step leaves the one before."""

    link: Link
    label: str
    detail: str = ""
    connection: ServerConnection | None = None
    sandbox: SandboxHandle | None = None
    direct: DirectTarget | None = None


def configured_direct(credentials: CredentialStore, settings: Settings) -> DirectTarget | None:
    """The direct S3 target the settings describe, with its secret from the environment or the keychain."""
    return direct_target(settings, direct_secret(credentials, settings))


def choose_connection(credentials: CredentialStore, settings: Settings) -> Outcome:
    """The window's first step (blocking: the keychain): the configured server with its token, no server
    and no sandbox chosen, or ``Link.CONNECTING`` when the local sandbox is to be started next."""
    direct = configured_direct(credentials, settings)
    url = configured_server(settings)
    if not url and settings.method == "direct-s3":
        # Every upload goes straight to your own storage: a re-check audit saved its S3 keys, no server, and a
        # test storage (SeaweedFS and the API) was started for nothing, and ran until the window closed.
        return Outcome(Link.CONNECTED, "no server (uploads go to your S3 storage)", direct=direct)
    if not url and not settings.use_sandbox:
        return Outcome(Link.NEEDS_SETUP, "No server set up", direct=direct)
    if not url:
        return Outcome(Link.CONNECTING, "Starting the test storage on this computer…", direct=direct)
    token = server_token(credentials, url)
    if not token:
        detail = f"Add the access token for {url} in Settings → Connection."
        return Outcome(Link.FAILED, "No access token", detail, direct=direct)
    connection = server_connection(url, token)
    return Outcome(Link.CONNECTED, url.split("://", 1)[-1], f"Uploads go to {url}", connection, direct=direct)


def start_sandbox(paths: AppPaths, sandbox: SandboxHandle | None) -> Outcome:
    """The window's second step when the sandbox was chosen (blocking): the one it has, or a new or running one."""
    try:
        if sandbox is None or sandbox.stopped():
            if sandbox is not None:
                sandbox.stop()  # it died: only its lease is left to let go
            sandbox = launch_sandbox(paths)
    except Exception as exc:  # shown to the person; details in the log
        log.exception("Sandbox start failed")
        said = (
            str(exc)
            if isinstance(exc, ConnectionSetupError)
            else f"The test storage on this computer could not start: {exc}"
        )
        return Outcome(Link.FAILED, "Test storage failed to start", said)
    info = sandbox.info
    # "you add": a paused upload to your own S3 storage, listed under it, still goes there (an audit).
    detail = f"Files you add go to a test storage on this computer: s3://{info.bucket}/loras/… in {info.data_dir}"
    return Outcome(Link.CONNECTED, SANDBOX_LABEL, detail, sandbox_connection(info), sandbox)


def save_choices(
    paths: AppPaths,
    credentials: CredentialStore,
    before: Settings,
    settings: Settings,
    token: str | None,
    secret: str | None,
) -> bool:
    """Save settings from the window, the token and S3 secret to the keychain (blocking); whether to reconnect.

    ``token`` None leaves the saved tokens alone; "" is a token field emptied: the token is forgotten, for the
    address saved and the one before (an audit emptied both and found the token still in the private file).
    """
    reconnect = settings.server_url != before.server_url or settings.use_sandbox != before.use_sandbox
    reconnect |= (settings.method == "direct-s3") != (before.method == "direct-s3")  # direct needs no sandbox
    save_settings(paths.settings_file, settings)
    if token and settings.server_url:
        credentials.set(token_key(settings.server_url), token)
        reconnect = True
    elif token == "":
        for server in {settings.server_url, before.server_url} - {""}:
            if credentials.get(token_key(server)) is not None:
                credentials.delete(token_key(server))
                reconnect = True
    if secret is not None and settings.direct_access_key:
        credentials.set(direct_secret_key(settings.direct_endpoint, settings.direct_access_key), secret)
    return reconnect


def check_server_address(url: str) -> str | None:
    """What is wrong with an address typed in Settings or given as --server, or None.

    One typed without http:// is refused with the whole address it likely meant (engine/addresses.py).
    """
    if not is_server_address(url):
        return scheme_missing("The address", url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The port in the address must be a number from 1 to 65535."
    if not parts.hostname or port == 0:
        return "The address must name a server, as in https://uploads.example.com."
    return None


def describe_capabilities(caps: Capabilities) -> str:
    """A sentence saying what a server offers."""
    offers = []
    if caps.presigned:
        # Its checksums by name (a Next.js audit's route offered CRC32C and CRC32, and read "Content-MD5").
        checks = "/".join(name.upper() for name in caps.checksums) + " checks" if caps.checksums else ""
        integrity = (checks, True) if checks else ("Content-MD5", caps.content_md5)
        extras = [w for w, on in (("re-signing", caps.offers("sign")), integrity) if on]
        offers.append("presigned uploads" + (f" (with {' and '.join(extras)})" if extras else ""))
    if caps.chunked_path:
        offers.append(f"chunked uploads ({human_bytes(caps.max_chunk_bytes)} chunks)")
    if caps.legacy_path and caps.legacy_max_bytes:
        offers.append(f"single requests up to {human_bytes(caps.legacy_max_bytes)}")
    if not caps.advertised:
        # What it can't do, said: a Next.js audit read the sentence as all being well.
        return (
            "Connected. This server speaks the original contract (start, complete, abort): uploads work, but "
            "links that run out can't be renewed, and unfinished uploads can't be listed there."
        )
    expiry = caps.url_expiry_seconds
    lasting = f"{expiry // 60} min" if expiry >= 60 else f"{expiry} s"
    return f"Connected. It offers {', '.join(offers) or 'nothing we can use'}; upload links last {lasting}."


def try_server(url: str, token: str, settings: Settings) -> tuple[bool, str]:
    """Settings' "Test connection" (blocking): whether it worked, and a sentence saying what a server offers."""
    if not url:
        return True, "No address: uploads go to the local sandbox on this computer."
    problem = check_server_address(url)
    if problem is not None:
        return False, problem
    try:
        caps = probe_server(url, token, settings)
    except UploaderError as exc:
        return False, exc.message
    return True, f"{describe_capabilities(caps)} A test upload started there and was cancelled."


def try_direct_storage(settings: Settings, secret: str) -> tuple[bool, str]:
    """Settings' "Test" for your own S3 storage (blocking): whether it takes uploads, in a sentence."""
    target = direct_target(settings, secret)
    if target is None:
        return False, "Fill in the bucket first."
    from desktop_uploader.engine.methods.direct_probe import try_direct  # boto3: only when asked for

    return try_direct(target, settings)


def direct_place(settings: Settings) -> str:
    """Where ``direct-s3`` uploads go, in words: "your S3 bucket models/loras (s3.example.com)", the folder with
    the bucket (an audit's status bar named the bucket, and the files were in a folder of it)."""
    host = urlsplit(settings.direct_endpoint).netloc or settings.direct_endpoint or "AWS"
    folder = settings.direct_prefix.strip("/")
    where = f"{settings.direct_bucket}/{folder}" if folder else settings.direct_bucket
    return f"your S3 bucket {where} ({host})" if settings.direct_bucket else "your S3 storage"
