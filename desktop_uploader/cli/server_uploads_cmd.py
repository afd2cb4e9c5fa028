"""The server's side of ``list`` and ``discard``: unfinished uploads there that no record here knows.

``list`` is a look, not an action: it asks a server only when one is configured (or the local sandbox
is already running), never starts the sandbox, and never rewrites the settings file; a server that
can't be reached (or can't ``list``) costs this section, not the command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from desktop_uploader.cli.render import Out, new_console, plain
from desktop_uploader.connection import ConnectionSetupError, configured_server, resolve_connection
from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.server_uploads import ServerUpload, unknown_uploads
from desktop_uploader.engine.settings import Settings, settings_from_mapping
from desktop_uploader.engine.state import StateStore
from desktop_uploader.paths import AppPaths
from desktop_uploader.sandbox.info import running_sandbox

SECTION = "On the server, unknown to this computer"
SOURCE_SERVER = "server"  # the "source" of such an entry in 'list --json'


def _peek_settings(path: Path) -> Settings:
    """The saved settings as they are, for reading only: a damaged file is left for the commands that use it."""
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return Settings()
    return settings_from_mapping(raw)[0] if isinstance(raw, dict) else Settings()


def list_client(args: argparse.Namespace) -> ApiClient | None:
    """A client for the configured server (or the running sandbox); None when there is none to ask."""
    paths: AppPaths = args.paths
    settings = _peek_settings(paths.settings_file)
    if not server_to_ask(args, settings):
        return None
    connection, _ = resolve_connection(
        paths, settings, server=getattr(args, "server", None), token=getattr(args, "token", None)
    )
    return ApiClient(connection.api_url, connection.token, settings.replace(retries=2))


def server_to_ask(args: argparse.Namespace, settings: Settings | None = None) -> bool:
    """Whether a server could hold uploads unknown to this computer: one is configured, or the sandbox runs.

    Neither is started to be asked: with no server set up, ``list`` shows none, and ``discard`` of a
    mistyped id started the sandbox (and its storage) only to say the id matched nothing.
    """
    paths: AppPaths = args.paths
    settings = settings or _peek_settings(paths.settings_file)
    if settings.method == "direct-s3":
        return False
    server = configured_server(settings, getattr(args, "server", None))
    return bool(server) or running_sandbox(paths.sandbox_dir) is not None


def server_uploads(args: argparse.Namespace, state: StateStore, out: Out) -> tuple[list[ServerUpload], str | None]:
    """The server's unfinished uploads unknown to ``state``, and why it couldn't be asked (None when it was, or
    when it can't list): [] with a dim line why. The reason goes in ``list --json`` too, where an empty list
    alone read as "nothing on the server" to a script whose token had been refused (a CLI audit's finding)."""
    try:
        client = list_client(args)
    except ConnectionSetupError as exc:
        problem = f"Not asking the server for unfinished uploads: {exc}"
        out.print(f"[dim]{plain(problem)}")
        return [], problem
    if client is None:
        return [], None
    try:
        return unknown_uploads(client, state, with_sizes=True), None
    except UploaderError as exc:
        problem = f"The server could not be asked for unfinished uploads: {exc.message}"
        out.print(f"[dim]{plain(problem)}")
        return [], problem
    finally:
        client.close()


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment)) if moment is not None else "unknown"


def as_json(upload: ServerUpload) -> dict[str, Any]:
    return {
        "id": upload.upload_id,
        "source": SOURCE_SERVER,
        "file": None,
        "displayName": upload.name,
        "stored": upload.stored_bytes,
        "s3Key": upload.s3_key,
        "startedAt": upload.started_at,
    }


def print_section(uploads: list[ServerUpload], out: Out) -> None:
    from rich.table import Table  # only for people: a --json listing never imports it

    table = Table(title=SECTION, expand=True)
    for column in ("ID", "File", "Stored", "Started"):
        table.add_column(column, overflow="fold")
    for upload in uploads:
        stored = human_bytes(upload.stored_bytes) if upload.stored_bytes is not None else "unknown"
        table.add_row(plain(upload.short_id), plain(upload.name), stored, _when(upload.started_at))
    new_console().print(table)
    out.print(
        "To continue one, upload the same file again: the parts already stored are checked and kept. "
        "To remove one from the server, use 'desktop-uploader discard ID'."
    )
