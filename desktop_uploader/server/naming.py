"""Where an upload lands, and the rule that users only touch keys under their own prefix."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass

from desktop_uploader.engine.filenames import extension_of, safe_basename
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError


@dataclass(frozen=True)
class Destination:
    unique_file_name: str
    s3_key: str
    comfyui_path: str


def checked_name(config: ServerConfig, file_name: str) -> str:
    """The stored base name for ``file_name``, or a 400 that says what is allowed."""
    name = safe_basename(file_name)
    if not name:
        raise ApiError(400, "fileName has no usable characters once path parts and control characters are removed.")
    allowed = config.allowed_extensions
    if extension_of(name) not in allowed:
        kind = f"of type '{extension_of(name)}'" if extension_of(name) else "without a type at the end of the name"
        raise ApiError(400, f"Files {kind} are not accepted. Allowed types: {', '.join(allowed)}.")
    return name


def new_destination(config: ServerConfig, user_id: str, safe_name: str) -> Destination:
    unique = f"{user_id}_{int(time.time() * 1000)}_{safe_name}"
    return Destination(
        unique_file_name=unique,
        s3_key=f"{config.key_prefix}/{user_id}/{unique}",
        comfyui_path=f"{config.comfyui_root}/{config.key_prefix}/{user_id}/{unique}",
    )


def owned_destination(config: ServerConfig, user_id: str, s3_key: str) -> Destination:
    """The destination behind ``s3_key`` if it is one of ``user_id``'s, else 403."""
    prefix = f"{config.key_prefix}/{user_id}/"
    name = s3_key[len(prefix) :] if s3_key.startswith(prefix) else ""
    # Compared without the length cap: the unique name adds "{user}_{millis}_" to a capped name.
    if not name or name != safe_basename(name, max_bytes=len(name.encode())) or not name.startswith(f"{user_id}_"):
        raise ApiError(403, "That upload belongs to someone else, or the key is not one this API hands out.")
    return Destination(
        unique_file_name=name,
        s3_key=s3_key,
        comfyui_path=f"{config.comfyui_root}/{config.key_prefix}/{user_id}/{name}",
    )


def _header_safe(value: str, limit: int = 700) -> str:
    encoded = urllib.parse.quote(value, safe="")
    while len(encoded) > limit:  # S3 allows 2 KB of user metadata in all
        value = value[: -max(1, (len(encoded) - limit) // 9)]
        encoded = urllib.parse.quote(value, safe="")
    return encoded


def metadata_for(display_name: str | None, original_name: str) -> dict[str, str]:
    # S3 user metadata travels as HTTP headers, so non-ASCII names are percent-encoded.
    return {
        "display-name": _header_safe(display_name or original_name),
        "original-name": _header_safe(original_name),
    }
