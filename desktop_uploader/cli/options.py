"""Flags shared by the subcommands that upload, and how they become validated Settings."""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Any

from desktop_uploader.engine.errors import SettingsError
from desktop_uploader.engine.settings import (
    AUTO_CONCURRENCY,
    CUSTOM_PRESET,
    MAX_CONCURRENCY,
    PRESETS,
    Settings,
    with_preset,
)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """``8MiB``, ``8M`` (binary) and ``8MB`` (decimal); a bare number is bytes."""
    match = _SIZE.match(text)
    if not match and _SIZE.match(text.strip().removeprefix("-")):
        raise argparse.ArgumentTypeError(f"'{text}' is below zero; a size is 0 or more, as in 8MiB.")
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; try 8MiB, 512KB or 10485760.")
    number, prefix, binary, byte = match.groups()
    base = 1000 if byte and not binary and prefix else 1024
    return int(float(number) * base ** _POWERS[prefix.lower()])


# Bits, as internet plans are sold, when said in words: "40Mbps", "40 Mbit/s" ("5mb" stays bytes, as in sizes).
_BITS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)([iI]?)(?:[bB]its?|bps)(?:\s*/\s*s)?\s*$")
BARE_RATE_FLOOR = 10_000  # bytes a second: below this, a bare number is a unit forgotten, not a limit wanted
_BARE_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PER_SECOND = re.compile(r"\s*(?:/\s*s(?:ec)?|ps)\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """Bytes per second from a size (``5MB``, ``4MiB``), written with or without ``/s``, or from bits.

    A CLI audit's ``--bandwidth-limit 5MB/s`` and ``5Mbps`` were "not a size".
    A bare number is bytes a second, as a bare size is bytes (scripts pass them), but one too small to be
    meant is refused: ``--bandwidth-limit 5`` was 5 bytes a second, and an audit's upload looked hung
    with nothing said. "5B/s" still says bytes on purpose.
    """
    bits = _BITS.match(text)
    if bits:
        number, prefix, binary = bits.groups()
        return int(float(number) * (1024 if binary else 1000) ** _POWERS[prefix.lower()] / 8)
    size = _PER_SECOND.sub("", text)
    if _SIZE.match(size.strip().removeprefix("-")) and size.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"'{text}' is below zero; give a rate such as 5MB/s, or 0 for no limit.")
    try:
        rate = parse_size(size)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a rate; try 5MB/s, 4MiB/s or 40Mbit/s.") from None
    if 0 < rate < BARE_RATE_FLOOR and _BARE_NUMBER.match(size):
        raise argparse.ArgumentTypeError(
            f"'{text}' has no unit; did you mean {size.strip()}MB/s? Give one, as in 5MB/s, 4MiB/s or 40Mbit/s "
            "(0: no limit)."
        )
    return rate


def parse_concurrency(text: str) -> int:
    if text.lower() == "auto":
        return AUTO_CONCURRENCY
    if text.isdigit() and int(text) > MAX_CONCURRENCY:  # said as argparse says the rest (a CLI audit saw two styles)
        raise argparse.ArgumentTypeError(f"{text} parts at once is too many: give 1 to {MAX_CONCURRENCY} (or 'auto').")
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text} parts can't be sent: give at least 1 (or 'auto').")
    raise argparse.ArgumentTypeError(f"'{text}' is not a number of parts (or 'auto').")


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--server", metavar="URL", help="upload API base URL (default: settings, then the sandbox)")
    group.add_argument("--token", help="API token (default: $DESKTOP_UPLOADER_TOKEN, then the keychain)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print the log to the terminal")


def add_tuning_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tuning (defaults come from the app's settings)")
    group.add_argument("--preset", choices=list(PRESETS), help="a preset: " + ", ".join(PRESETS))
    group.add_argument(
        "--chunk-size",
        type=parse_size,
        metavar="SIZE",
        help="part size wish, e.g. 16MiB; a bare number is bytes (default: sized by the link)",
    )
    group.add_argument("--concurrency", type=parse_concurrency, metavar="N|auto", help="parts in flight per file")
    group.add_argument("--retries", type=int, metavar="N", help="tries per part, the first included (1: no retry)")
    group.add_argument("--files-at-once", type=int, metavar="N", help="files uploading at the same time")
    group.add_argument(
        "--bandwidth-limit",
        type=parse_rate,
        metavar="RATE",
        help="e.g. 5MB/s, 4MiB/s or 40Mbit/s; a bare number is bytes a second (0: none)",
    )
    group.add_argument(
        "--method",
        choices=["auto", "presigned", "chunked", "legacy", "direct-s3"],
        help="how bytes travel (auto: presigned, falling back to chunked, then a single request)",
    )
    group.add_argument("--no-fallback", action="store_true", help="don't fall back to another method")


DIRECT_FLAGS = ("s3_endpoint", "bucket", "access_key", "region", "prefix")  # the direct-s3 group's


def add_direct_flags(parser: argparse.ArgumentParser) -> None:
    """Your own S3 storage, for ``upload`` and for ``resume``: a CLI audit's direct-s3 upload, interrupted,
    could not be resumed, since ``resume`` knew none of these (and was told to use it)."""
    direct = parser.add_argument_group("direct-s3 (your own S3 storage; secret from $DESKTOP_UPLOADER_S3_SECRET)")
    direct.add_argument(
        "--s3-endpoint", metavar="URL", help="the storage's address alone, like https://s3.example.com (empty: AWS)"
    )
    direct.add_argument("--bucket", help="the bucket's name, like my-models")
    direct.add_argument("--access-key", help="your access key (its secret goes in $DESKTOP_UPLOADER_S3_SECRET)")
    direct.add_argument("--region", help="the storage's region (default us-east-1; R2: auto)")
    direct.add_argument("--prefix", metavar="FOLDER", help="the folder in the bucket (default loras; '' for the top)")


def direct_flags_given(args: argparse.Namespace) -> str:
    """The direct-s3 flags as given (never the secret, which comes from the environment), for a hint to repeat."""
    given = [(flag, getattr(args, flag, None)) for flag in DIRECT_FLAGS]
    return "".join(f" --{flag.replace('_', '-')} {shlex.quote(value)}" for flag, value in given if value is not None)


def settings_from_args(base: Settings, args: argparse.Namespace) -> Settings:
    """Apply the preset, then explicit flags; raises SettingsError with the limit that was broken."""
    settings = with_preset(base, args.preset) if getattr(args, "preset", None) else base
    changes: dict[str, Any] = {}
    for flag in ("chunk_size", "concurrency", "retries", "files_at_once", "bandwidth_limit", "method"):
        value = getattr(args, flag, None)
        if value is not None:
            changes[flag] = value
    if "chunk_size" in changes:  # the person's own part size, kept as it is rather than sized by the link
        changes["preset"], changes["auto_part_size"] = CUSTOM_PRESET, False
    if changes.get("retries", 1) < 1:  # "--retries 0" meant "no retries" to an audit; the flag counts tries
        raise SettingsError(
            f"--retries counts the tries of each part, the first one included: give 1 (no retry) to 50; "
            f"got {changes['retries']}."
        )
    given = [f"--{flag.replace('_', '-')}" for flag in DIRECT_FLAGS if getattr(args, flag, None) is not None]
    if given and changes.get("method", "direct-s3") != "direct-s3":
        raise SettingsError(f"{', '.join(given)} name your own S3 storage: drop them, or use --method direct-s3.")
    if given:  # your own storage's details say where the files go (they were ignored, and files went elsewhere)
        changes["method"] = "direct-s3"
    if changes.get("method") == "direct-s3" and getattr(args, "server", None):  # --server was ignored without a word
        raise SettingsError(
            "--server names an upload API, and direct-s3 sends to your own S3 storage instead: "
            "drop --server, or the direct-s3 flags."
        )
    if getattr(args, "no_fallback", False):
        changes["fallback"] = False
    if getattr(args, "server", None):
        changes["server_url"] = args.server.rstrip("/")
    try:
        return settings.replace(**changes)
    except SettingsError:
        raise
    except TypeError as exc:  # pragma: no cover - argparse types make this unreachable
        raise SettingsError(str(exc)) from exc
