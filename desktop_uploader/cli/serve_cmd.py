"""``desktop-uploader serve``: the reference upload API in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from desktop_uploader.engine.filenames import shown
from desktop_uploader.logsetup import configure_logging


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the upload API (flags or UPLOAD_API_* environment variables)",
        description="Run the reference upload API backed by an S3-compatible store. Every flag can also be "
        "given as an UPLOAD_API_<NAME> environment variable; S3 credentials follow the standard AWS chain.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
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
    parser.add_argument("--spool-dir", help="local folder where chunked uploads are assembled")
    parser.add_argument(
        "--seed-only", action="store_true", help="offer only start/complete/abort, like the original backend"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from desktop_uploader.server.app import create_app
    from desktop_uploader.server.config import SEED_ACTIONS, ServerConfig
    from desktop_uploader.server.run import serve_forever

    configure_logging(args.paths.log_dir / "server.log", console_level=logging.INFO)
    names = [
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
    ]
    given: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.seed_only:
        given.update(actions=SEED_ACTIONS, capabilities_enabled=False)
    try:
        config = ServerConfig(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"desktop-uploader serve: {problems}", file=sys.stderr)
        return 2
    try:
        app = create_app(config)
    except (OSError, ValueError) as exc:
        print(f"desktop-uploader serve: {shown(str(exc))}", file=sys.stderr)
        return 2
    serve_forever(app, args.host, args.port)
    return 0
