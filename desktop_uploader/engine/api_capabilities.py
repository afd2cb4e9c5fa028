"""What an upload server offers: its capabilities document, or the seed's contract where it has none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop_uploader.engine.limits import DEFAULT_LIMITS, MiB, S3Limits
from desktop_uploader.engine.settings import Settings

SEED_ACTIONS = frozenset({"start", "complete", "abort"})


@dataclass(frozen=True)
class Capabilities:
    actions: frozenset[str]
    limits: S3Limits
    url_expiry_seconds: int
    url_batch: bool
    content_md5: bool
    presigned: bool
    chunked_path: str | None
    max_chunk_bytes: int
    legacy_path: str | None
    legacy_max_bytes: int
    advertised: bool  # False: the server has no capabilities document (the seed's backend)
    # Checksum algorithms ``sign`` can sign into a part's URL, and ``start`` announce to storage.
    checksums: tuple[str, ...] = ()

    def offers(self, action: str) -> bool:
        return action in self.actions


def seed_capabilities(settings: Settings) -> Capabilities:
    """What a server without a capabilities document is assumed to do: the original backend's contract."""
    return Capabilities(
        actions=SEED_ACTIONS,
        limits=DEFAULT_LIMITS,
        url_expiry_seconds=3600,
        url_batch=False,
        content_md5=False,
        presigned=True,
        chunked_path=settings.chunked_path,
        max_chunk_bytes=4 * MiB,
        legacy_path=settings.legacy_path,
        legacy_max_bytes=6 * MiB,
        advertised=False,
    )


def parse_capabilities(body: dict[str, Any]) -> Capabilities:
    """A capabilities document as the server published it; what it leaves out keeps the defaults."""

    def number(name: str, default: int) -> int:
        value = body.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    actions = body.get("actions")
    offered = frozenset(a for a in actions if isinstance(a, str)) if isinstance(actions, list) else SEED_ACTIONS
    chunked = body.get("chunkedUpload")
    legacy = body.get("legacyUpload")
    limits = DEFAULT_LIMITS.narrowed(
        min_part_size=number("minPartSize", DEFAULT_LIMITS.min_part_size),
        max_part_size=number("maxPartSize", DEFAULT_LIMITS.max_part_size),
        max_parts=number("maxParts", DEFAULT_LIMITS.max_parts),
        max_object_size=number("maxFileSize", DEFAULT_LIMITS.max_object_size),
    )
    return Capabilities(
        actions=offered | SEED_ACTIONS,
        limits=limits,
        url_expiry_seconds=number("urlExpirySeconds", 3600),
        url_batch=bool(body.get("urlBatch")) and "sign" in offered,
        content_md5=bool(body.get("contentMd5")) and "sign" in offered,
        presigned=body.get("presignedUpload", True) is not False,
        chunked_path=str(chunked["path"]) if isinstance(chunked, dict) and "path" in chunked else None,
        max_chunk_bytes=int(chunked.get("maxChunkBytes", 4 * MiB)) if isinstance(chunked, dict) else 4 * MiB,
        legacy_path=str(legacy["path"]) if isinstance(legacy, dict) and "path" in legacy else None,
        legacy_max_bytes=int(legacy.get("maxBytes", 0)) if isinstance(legacy, dict) else 0,
        advertised=True,
        checksums=tuple(
            str(name) for name in (body.get("checksums") or []) if "sign" in offered and isinstance(name, str)
        ),
    )
