"""The reference API's configuration: flags or ``UPLOAD_API_*`` environment variables.

Credentials for S3 follow boto3's standard chain (environment, shared config, instance role)
unless an access key is given here, which is what the sandbox does.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from desktop_uploader.engine.filenames import DEFAULT_MODEL_EXTENSIONS
from desktop_uploader.engine.limits import DEFAULT_LIMITS, GiB, MiB, S3Limits

SEED_ACTIONS = ("start", "complete", "abort")
EXTENDED_ACTIONS = (*SEED_ACTIONS, "sign", "status", "list")


class ServerConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UPLOAD_API_", extra="ignore")

    bucket: str
    s3_endpoint: str | None = Field(None, description="S3 endpoint the server itself talks to; unset for AWS.")
    s3_public_endpoint: str | None = Field(
        None, description="Endpoint written into presigned URLs, when clients reach storage by another address."
    )
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    tokens_file: Path = Field(description="JSON object mapping bearer tokens to user ids.")
    url_expiry_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    max_file_size: int = Field(100 * GiB, ge=1)
    min_part_size: int = DEFAULT_LIMITS.min_part_size
    max_part_size: int = DEFAULT_LIMITS.max_part_size
    max_parts: int = Field(DEFAULT_LIMITS.max_parts, ge=1, le=DEFAULT_LIMITS.max_parts)
    chunk_max_bytes: int = Field(4 * MiB, ge=64 * 1024)
    legacy_max_bytes: int = Field(6 * MiB, ge=1)
    max_json_body: int = Field(2 * MiB, ge=1024)
    allowed_extensions: tuple[str, ...] = DEFAULT_MODEL_EXTENSIONS
    spool_dir: Path = Field(
        description="Local scratch for chunk bodies and parts while one request handles them (nothing outlives it)."
    )
    actions: tuple[str, ...] = Field(
        EXTENDED_ACTIONS, description="Presigned actions offered; ('start','complete','abort') mimics the seed."
    )
    seed_answers: bool | None = Field(
        None,
        description=(
            "Answer `complete` as the seed did: without the extensions `etag` and `size`. "
            "Unset: so when `actions` offers only the seed's, as the real seed backend does."
        ),
    )
    local_store_dir: Path | None = Field(
        None,
        description="Where a store on this machine keeps its data (the sandbox's): a file that won't fit on that "
        "disk is refused at start (server/room.py).",
    )
    capabilities_enabled: bool = True
    presigned_enabled: bool = True
    chunked_enabled: bool = True
    legacy_enabled: bool = True
    comfyui_root: str = "/runpod-volume"
    # Hostile or broken clients (server/guard.py): deadlines, and caps on requests in flight.
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection's request head must be complete this long after it starts."
    )
    body_stall_seconds: float = Field(
        30.0, gt=0, description="A request body that sends nothing for this long is cut (408)."
    )
    keep_alive_seconds: int = Field(30, ge=1, description="Idle keep-alive connections are closed after this.")
    max_header_bytes: int = Field(16 * 1024, ge=4096, description="Largest request head (h11's limit).")
    max_in_flight: int = Field(256, ge=1, description="Requests in flight at once, all users; then 429.")
    max_in_flight_per_user: int = Field(16, ge=1, description="Requests in flight at once for one user; then 429.")
    max_open_chunked_per_user: int = Field(
        1000, ge=1, description="Unfinished uploads one user may hold when starting a chunked one; then 429."
    )
    retry_after_seconds: int = Field(2, ge=1, description="The Retry-After of a 429.")
    # Unfinished uploads under key_prefix (server/cleanup.py).
    stale_upload_seconds: float = Field(
        7 * 24 * 3600, ge=0, description="Unfinished uploads (and spools) older than this are aborted by cleanup."
    )
    cleanup_interval_seconds: float = Field(
        3600, ge=0, description="How often `serve` runs the cleanup; 0: never (run `cleanup` yourself)."
    )
    key_prefix: str = "loras"

    @field_validator("allowed_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if isinstance(value, list | tuple):
            return tuple(v.lower() if v.startswith(".") else "." + v.lower() for v in value)
        return value

    @field_validator("actions", mode="before")
    @classmethod
    def _split_actions(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v for v in value.replace(",", " ").split() if v)
        return value

    @property
    def answers_like_seed(self) -> bool:
        """A seed-only server that still said `etag` and `size` would hide what clients meet on the real one."""
        if self.seed_answers is not None:
            return self.seed_answers
        return set(self.actions) <= set(SEED_ACTIONS)

    @property
    def limits(self) -> S3Limits:
        return DEFAULT_LIMITS.narrowed(
            min_part_size=self.min_part_size,
            max_part_size=self.max_part_size,
            max_parts=self.max_parts,
            max_object_size=self.max_file_size,
        )
