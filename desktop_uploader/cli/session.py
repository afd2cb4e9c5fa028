"""One engine for one CLI command: the resume store, the server (or sandbox), and the manager."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from desktop_uploader.cli.render import Out, new_console, plain
from desktop_uploader.connection import (
    SECRET_ENV,
    TOKEN_ENV,
    SandboxHandle,
    check_server_address,
    configured_server,
    credential_store,
    direct_secret,
    resolve_connection,
    server_connection,
)
from desktop_uploader.connection import direct_target as connection_direct_target
from desktop_uploader.engine.errors import SettingsError, UploaderError
from desktop_uploader.engine.history import HistoryStore
from desktop_uploader.engine.history_recorder import HistoryRecorder
from desktop_uploader.engine.jobs import RunningElsewhereError
from desktop_uploader.engine.manager import JobView, ServerConnection, UploadManager
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.rows import plural
from desktop_uploader.engine.settings import Settings, load_settings
from desktop_uploader.engine.state import StateStore, UploadRecord
from desktop_uploader.engine.storage_names import bucket_problem, endpoint_problem, folder_problem
from desktop_uploader.logsetup import configure_logging
from desktop_uploader.paths import AppPaths


class UsageError(Exception):
    """Exit code 2: the command line (or the settings it relies on) can't work as given."""


def not_one_match(upload_id: str, count: int, running: Sequence[UploadRecord] = ()) -> str:
    """An id that names no interrupted upload, or several ("matches 0 interrupted uploads" read as a program's);
    or one that another window or command is sending right now, said as such."""
    busy = running_match(upload_id, running)
    if count == 0 and busy is not None:
        return RunningElsewhereError(f"'{upload_id}' ({busy.display_name or busy.path})").message
    matched = "no interrupted upload" if count == 0 else f"{count} interrupted uploads"
    return f"'{upload_id}' matches {matched}; see 'desktop-uploader list'."


def running_match(upload_id: str, running: Sequence[UploadRecord]) -> UploadRecord | None:
    """The one upload being sent elsewhere whose id starts with ``upload_id``, if exactly one does."""
    busy = [record for record in running if upload_id and record.id.startswith(upload_id)]
    return busy[0] if len(busy) == 1 else None


def elsewhere_note(running: list[UploadRecord]) -> str:
    """What ``list`` and ``resume`` say of uploads another window or command is sending right now."""
    if not running:
        return ""
    names = ", ".join(plain(record.display_name or record.path) for record in running[:3])
    return f" {plural(len(running), 'upload is', 'uploads are')} running in another window or command: {names}."


def console() -> Out:
    return new_console(stderr=True)


def setup_logging(args: argparse.Namespace) -> None:
    paths: AppPaths = args.paths
    configure_logging(
        paths.log_file,
        console_level=logging.INFO if getattr(args, "verbose", False) else None,
        secrets=tuple(s for s in (getattr(args, "token", None),) if s),
    )


def load_base_settings(paths: AppPaths, out: Out) -> Settings:
    settings, warnings = load_settings(paths.settings_file)
    for warning in warnings:
        out.print(f"[yellow]{plain(warning)}")
    return settings


def direct_target(settings: Settings, paths: AppPaths, args: argparse.Namespace) -> DirectTarget | None:
    endpoint = getattr(args, "s3_endpoint", None)
    bucket = getattr(args, "bucket", None)
    access_key = getattr(args, "access_key", None) or settings.direct_access_key
    if settings.method != "direct-s3" and not (
        endpoint or bucket or settings.direct_endpoint or settings.direct_bucket
    ):
        return None
    if not (bucket or settings.direct_bucket):
        raise UsageError("Direct uploads need a bucket: pass --bucket or set it in Settings.")
    prefix = getattr(args, "prefix", None)
    for flag, problem in (
        ("--bucket", bucket_problem(bucket) if bucket else None),
        ("--prefix", folder_problem(prefix.strip("/")) if prefix else None),
    ):
        if problem:
            raise UsageError(f"{flag}: {problem}")
    # Checked before anything is recorded: a CLI audit's "--s3-endpoint not-a-url" was "Something unexpected
    # went wrong" and a resume hint, and a missing key a failure kept for a resume that could never work.
    problem = endpoint_problem(endpoint, bucket or settings.direct_bucket) if endpoint is not None else None
    if problem:
        raise UsageError(f"--s3-endpoint: {problem}")
    if not access_key:
        raise UsageError(
            f"Direct uploads need your access key: pass --access-key (the secret goes in {SECRET_ENV}), "
            "or save both in the app's Settings."
        )
    secret = direct_secret(
        credential_store(paths), settings.replace(direct_endpoint=endpoint or settings.direct_endpoint), access_key
    )
    if access_key and not secret:
        raise UsageError(f"No secret key for {access_key}: set {SECRET_ENV} or save it in the app's Settings.")
    return connection_direct_target(
        settings,
        secret,
        endpoint=endpoint,
        bucket=bucket,
        access_key=access_key,
        region=getattr(args, "region", None),
        prefix=prefix,
    )


@dataclass
class EngineSession:
    manager: UploadManager
    state: StateStore
    sandbox: SandboxHandle | None


@contextlib.contextmanager
def engine_session(args: argparse.Namespace, settings: Settings, out: Out) -> Iterator[EngineSession]:
    paths: AppPaths = args.paths
    state = StateStore.open(paths.state_db)
    for notice in state.notices:
        out.print(f"[yellow]{plain(notice)}")
    sandbox = None
    try:
        direct = direct_target(settings, paths, args)
        connection = None
        if settings.method != "direct-s3":
            if not configured_server(settings, getattr(args, "server", None)):
                if getattr(args, "token", None):  # meant for a server: the files went to the sandbox, exit 0
                    raise UsageError("--token was given but no server: add --server URL (the sandbox needs none).")
                out.print("[dim]No server configured: using the local sandbox (starting it if needed)…")
            connection, sandbox = _connect(paths, settings, args)
        manager = UploadManager(settings, state, connection, direct=direct)
        HistoryRecorder.attach(HistoryStore.in_data_dir(paths.data_dir), manager)  # CLI uploads in the history too
        try:
            manager.sweep_owed_aborts()
            yield EngineSession(manager, state, sandbox)
        finally:
            manager.close()
    finally:
        state.close()
        if sandbox is not None:
            sandbox.stop()


def _connect(
    paths: AppPaths, settings: Settings, args: argparse.Namespace
) -> tuple[ServerConnection, SandboxHandle | None]:
    """The server with the token given on the command line or in the environment, else as the app resolves it.

    A given token needs no keychain: asking the keychain whether it is usable loads keyring's backends,
    0.1–0.4 s of every upload's start, before its first request (see docs/benchmarks.md).
    """
    server, token = getattr(args, "server", None), getattr(args, "token", None)
    url = configured_server(settings, server)
    given = token or os.environ.get(TOKEN_ENV)
    if url and given and check_server_address(url) is None:
        return server_connection(url, given), None
    return resolve_connection(paths, settings, server=server, token=token)


FLAG_OF_SETTING = {  # the settings' names in their messages, and the flag each comes from here
    "Chunk size": "--chunk-size",
    "Parts in flight (concurrency)": "--concurrency",
    "Retries": "--retries",
    "Files at once": "--files-at-once",
    "Bandwidth limit": "--bandwidth-limit",
}


def settings_problem(exc: SettingsError) -> UsageError:
    """The settings' sentence, led by the flag it is about: a CLI audit's ``--files-at-once 0`` was answered
    "Files at once must be between 1 and 16", where other flags' answers named the flag."""
    flag = next((flag for name, flag in FLAG_OF_SETTING.items() if exc.message.startswith(f"{name} must")), None)
    return UsageError(f"{flag}: {exc.message}" if flag else exc.message)


def started_on(manager: UploadManager, job: JobView) -> str:
    """The upload server a resumable upload started on, when this session is connected to another: its
    resume hint must name it (a Next.js audit was told to switch back, then handed a hint without it)."""
    if not job.resumable or job.method == "direct-s3":
        return ""
    with contextlib.suppress(UploaderError):
        record = manager.state.get(job.id)
        server = record.server if record is not None else ""
        if server.startswith(("http://", "https://")) and server not in manager.server_ids():
            return server
    return ""


def say_if_sandbox_stopped(session: EngineSession, out: Out) -> None:
    """The test storage this command started stopped during it: a resume audit read only "127.0.0.1:38161
    refused the connection: the server may be down", a port that meant nothing to them (the window says
    this in words already). Its storage is asked too: the sandbox stops with it, but only a moment later."""
    sandbox = session.sandbox
    if sandbox is not None and (sandbox.stopped() or not answers(sandbox.info.s3_endpoint)):
        out.print(
            "[yellow]The test storage on this computer stopped during the upload; run the command again to "
            "start it and go on where the upload stopped.",
            soft_wrap=True,
        )


def answers(url: str) -> bool:
    """Whether something takes connections at ``url``'s host and port (a loopback address: at once either way)."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2).close()
    except OSError:
        return False
    return True
