"""``desktop-uploader serve``: the reference upload API in the foreground; ``cleanup``: its sweep, once."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from desktop_uploader.engine.filenames import shown
from desktop_uploader.logsetup import configure_logging

_SETTINGS = [
    "bucket",
    "s3_endpoint",
    "s3_public_endpoint",
    "s3_region",
    "tokens_file",
    "url_expiry_seconds",
    "max_file_size",
    "chunk_max_bytes",
    "legacy_max_bytes",
    "allowed_extensions",
    "spool_dir",
    "stale_upload_seconds",
    "cleanup_interval_seconds",
]


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket")
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL the server uses (unset for AWS)")
    parser.add_argument("--s3-public-endpoint", help="S3 endpoint written into presigned URLs, if different")
    parser.add_argument("--s3-region")
    parser.add_argument("--tokens-file", help="JSON object mapping bearer tokens to user ids")
    parser.add_argument("--url-expiry-seconds", type=int, help="presigned URL lifetime (default 3600)")
    parser.add_argument("--max-file-size", type=int, help="largest accepted file, in bytes")
    parser.add_argument("--chunk-max-bytes", type=int, help="largest chunk of the chunked upload (default 4 MiB)")
    parser.add_argument("--legacy-max-bytes", type=int, help="largest single-request upload (default 6 MiB)")
    parser.add_argument("--allowed-extensions", help="comma-separated, e.g. .safetensors,.ckpt")
    parser.add_argument("--spool-dir", help="local scratch folder for chunk bodies while a request handles them")
    parser.add_argument(
        "--stale-upload-seconds",
        type=float,
        help="unfinished uploads older than this are aborted by the cleanup (default 7 days)",
    )


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the upload API (flags or UPLOAD_API_* environment variables)",
        description="Run the reference upload API backed by an S3-compatible store. Every flag can also be "
        "given as an UPLOAD_API_<NAME> environment variable; S3 credentials follow the standard AWS chain.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (plain HTTP: keep it loopback)")
    parser.add_argument("--port", type=port_number, default=8000, help="port to listen on (0: any free one)")
    _add_settings(parser)
    parser.add_argument(
        "--cleanup-interval-seconds", type=float, help="how often to abort stale uploads (default 3600; 0: never)"
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="offer only start/complete/abort, like the original backend"
    )
    parser.set_defaults(run=run)

    cleanup = commands.add_parser(
        "cleanup",
        help="abort the API's unfinished uploads older than --stale-upload-seconds, once, and say which",
        description="What `serve` does on a schedule, once: abort the multipart uploads under the API's key "
        "prefix that are older than --stale-upload-seconds, and delete their staged chunks. Same settings as serve.",
    )
    _add_settings(cleanup)
    cleanup.set_defaults(run=run_cleanup)


def _app(args: argparse.Namespace, log_name: str) -> Any:
    """The configured application, or None after printing why not."""
    from pydantic import ValidationError

    from desktop_uploader.server.app import create_app
    from desktop_uploader.server.config import SEED_ACTIONS, ServerConfig

    configure_logging(args.paths.log_dir / log_name, console_level=logging.INFO)
    given: dict[str, Any] = {n: getattr(args, n) for n in _SETTINGS if getattr(args, n, None) is not None}
    if getattr(args, "seed_only", False):
        given.update(actions=SEED_ACTIONS, capabilities_enabled=False)
    try:
        config = ServerConfig(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        print(f"desktop-uploader {args.command}: {problems}", file=sys.stderr)
        return None
    try:
        return create_app(config)
    except (OSError, ValueError) as exc:
        print(f"desktop-uploader {args.command}: {shown(str(exc))}", file=sys.stderr)
        return None


def port_number(text: str) -> int:
    if text.isdigit() and int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a port: give a number from 0 to 65535.")


def _problem(where: tuple[int | str, ...], message: str) -> str:
    """A settings problem named by its flag and environment variable, not by the config's field name."""
    name = str(where[0]) if where else ""
    if name not in _SETTINGS:
        return f"{name}: {message}" if name else message
    said = "is required" if message == "Field required" else f"{message[:1].lower()}{message[1:]}"
    return f"--{name.replace('_', '-')} (or UPLOAD_API_{name.upper()}) {said}"


def run(args: argparse.Namespace) -> int:
    from desktop_uploader.server.run import serve_forever

    app = _app(args, "server.log")
    if app is None:
        return 2
    config = app.state.server_config
    if config.cleanup_interval_seconds and config.stale_upload_seconds < config.url_expiry_seconds:
        print(
            "desktop-uploader serve: --stale-upload-seconds must be at least --url-expiry-seconds: "
            "an upload whose URLs still work may still be in use.",
            file=sys.stderr,
        )
        return 2
    stop_cleanup = app.state.janitor.every(config.cleanup_interval_seconds) if config.cleanup_interval_seconds else None
    try:
        serve_forever(app, args.host, args.port)
    except OSError as exc:  # the address is taken, or not this computer's, or the port needs privileges
        reason = exc.strerror or exc
        print(f"desktop-uploader serve: can't listen on {args.host}:{args.port}: {reason}.", file=sys.stderr)
        return 1
    finally:
        if stop_cleanup is not None:
            stop_cleanup()
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    from desktop_uploader.server.errors import ApiError

    app = _app(args, "server.log")
    if app is None:
        return 2
    try:
        removed = app.state.janitor.sweep()
    except ApiError as exc:
        print(f"desktop-uploader cleanup: {exc.message}", file=sys.stderr)
        return 1
    for entry in removed:
        print(entry.describe())
    print(f"{len(removed)} removed.")
    return 0
