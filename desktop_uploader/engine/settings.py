"""Upload settings: one frozen, validated dataclass, the seed's presets, and a JSON file to keep them.

Validation happens in ``__post_init__`` so that no invalid ``Settings`` can exist anywhere: the
settings dialog, the CLI flags and the saved file all go through it, and the message names the
limit ("Concurrency must be between 1 and 64"). A damaged or hand-edited file never stops the app:
bad values fall back to their defaults with a warning, and a file that can't be read or decoded at
all is moved aside (``settings.json.damaged-<time>``) with one notice saying where.

The chunk size is a *wish*: values under S3's 5 MiB minimum are accepted here (the seed's 512 KB
setting must keep working) and raised by the planner, which logs why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from desktop_uploader.engine.addresses import scheme_missing
from desktop_uploader.engine.errors import SettingsError
from desktop_uploader.engine.limits import GiB, KiB, MiB, human_bytes
from desktop_uploader.engine.private import private_dir
from desktop_uploader.engine.state_files import damaged_name
from desktop_uploader.engine.storage_names import bucket_problem, endpoint_problem, folder_problem

METHODS = ("auto", "presigned", "chunked", "legacy", "direct-s3")
DEFAULT_REGION = "us-east-1"  # AWS's own default, and what S3-compatible stores that ignore regions accept
CUSTOM_PRESET = "Custom"  # settings the person set one by one, not a preset's
AUTO_CONCURRENCY = 0  # "Auto": the engine adapts parts in flight to measured goodput
MAX_CONCURRENCY = 64
MIN_BANDWIDTH_LIMIT = 10 * KiB  # bytes a second; slower is a slip (a unit, a zero too many), not a wish

PRESIGNED_PATH = "/api/user/influencers/presigned-upload"
CHUNKED_PATH = "/api/user/influencers/chunked-upload"
LEGACY_PATH = "/api/user/influencers/upload"


AUTO_PART_SIZE_BASE = 8 * MiB  # Auto's part size when parts in flight are fixed, and what it starts from


@dataclass(frozen=True)
class Settings:
    # Connection. An empty server means "the local sandbox".
    server_url: str = ""
    presigned_path: str = PRESIGNED_PATH
    chunked_path: str = CHUNKED_PATH
    legacy_path: str = LEGACY_PATH
    # Performance.
    preset: str = "Normal"
    chunk_size: int = AUTO_PART_SIZE_BASE  # the part size, unless it is on Auto (part_size_is_auto)
    auto_part_size: bool = True  # off: the person chose the chunk size, even one equal to the default
    concurrency: int = AUTO_CONCURRENCY  # measured best on loopback, clean and lossy links (docs/benchmarks.md)
    retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    files_at_once: int = 2
    bandwidth_limit: int = 0  # bytes per second for all uploads together; 0 = no limit
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    complete_timeout: float = 900.0  # CompleteMultipartUpload of 10 GB+ takes minutes on some stores
    url_expiry_seconds: int = 3600  # a wish; the server may grant less
    # Method policy.
    method: str = "auto"
    fallback: bool = True
    verify_integrity: bool = True
    # Direct S3 with the user's own credentials (the secret lives in the keyring, never here).
    direct_endpoint: str = ""
    direct_region: str = DEFAULT_REGION
    direct_bucket: str = ""
    direct_access_key: str = ""
    direct_prefix: str = "loras"
    # Behaviour of the desktop app.
    notifications: bool = True
    auto_start: bool = True
    keep_awake: bool = True
    minimize_to_tray: bool = False
    use_sandbox: bool = False  # the person chose the local sandbox when no server was set up
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_range("Chunk size", self.chunk_size, 64 * KiB, 5 * GiB, size_words)
        if self.concurrency != AUTO_CONCURRENCY:
            _check_range("Parts in flight (concurrency)", self.concurrency, 1, MAX_CONCURRENCY)
        _check_range("Retries", self.retries, 1, 50)
        _check_range("Backoff base", self.backoff_base, 0.05, 60.0, lambda v: f"{v:g} s")
        _check_range("Backoff cap", self.backoff_cap, self.backoff_base, 600.0, lambda v: f"{v:g} s")
        _check_range("Files at once", self.files_at_once, 1, 16)
        _check_range("Bandwidth limit", self.bandwidth_limit, 0, 100 * GiB, lambda v: f"{human_bytes(v)}/s")
        if 0 < self.bandwidth_limit < MIN_BANDWIDTH_LIMIT:  # an audit typed 0.04 MiB/s and got no limit at all
            raise SettingsError(
                f"Bandwidth limit must be at least {human_bytes(MIN_BANDWIDTH_LIMIT)}/s (0.01 MiB/s), or 0 for none; "
                f"got {human_bytes(self.bandwidth_limit)}/s."
            )
        _check_range("Connect timeout", self.connect_timeout, 1.0, 300.0, lambda v: f"{v:g} s")
        _check_range("Read timeout", self.read_timeout, 1.0, 3600.0, lambda v: f"{v:g} s")
        _check_range("Completion timeout", self.complete_timeout, 10.0, 7200.0, lambda v: f"{v:g} s")
        _check_range("URL expiry", self.url_expiry_seconds, 1, 7 * 24 * 3600, seconds_words)
        if self.method not in METHODS:
            raise SettingsError(f"Upload method must be one of {', '.join(METHODS)}.")
        if self.server_url and not self.server_url.startswith(("http://", "https://")):
            raise SettingsError(scheme_missing("The server address", self.server_url))
        for name in ("presigned_path", "chunked_path", "legacy_path"):
            if not getattr(self, name).startswith("/"):
                raise SettingsError("Endpoint paths must start with '/'.")
        problem = (
            (bucket_problem(self.direct_bucket) if self.direct_bucket else None)
            or folder_problem(self.direct_prefix.strip("/"))
            or (endpoint_problem(self.direct_endpoint, self.direct_bucket) if self.direct_endpoint else None)
        )
        if problem:
            raise SettingsError(problem)

    @property
    def auto_concurrency(self) -> bool:
        return self.concurrency == AUTO_CONCURRENCY

    @property
    def part_size_follows_link(self) -> bool:
        """Auto parts in flight and an Auto part size: the engine sizes parts by the link it measured
        (linkmemory.py). A chunk size the person chose is theirs, and kept.

        It was "the preset's own chunk size", so changing only the retries in Settings made the preset
        Custom and silently fixed every part at 8 MiB (a GUI audit); the Auto is now said on its own.
        """
        return self.auto_concurrency and self.part_size_is_auto

    @property
    def part_size_is_auto(self) -> bool:
        """The app sizes parts: by the link when parts in flight are on Auto too, else 8 MiB. A chunk size
        other than the default, set in code or an old settings file, is a choice."""
        return self.auto_part_size and self.chunk_size == AUTO_PART_SIZE_BASE

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **data}


def size_words(size: float) -> str:
    """A size in the largest binary unit it is a whole number of ("64 KiB", "5 GiB"), else in MiB.

    A CLI audit read the chunk size's limits as "0.0625 MiB and 5,120 MiB", and ``--chunk-size 6GiB``
    was answered "got 6,144 MiB": the limits and a typed unit read as they are written.
    """
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit == 0 and (unit != KiB or size < MiB):
            return f"{size // unit:,.0f} {name}"
    return in_mib(size)


def seconds_words(seconds: float) -> str:
    """Seconds in the largest unit they are a whole number of: the link lifetime's limit read "604800 s"."""
    for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= unit and seconds % unit == 0:
            count = int(seconds // unit)
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds:g} s"


def in_mib(size: float) -> str:
    """A size in the unit the chunk size is typed in: a GUI audit's "0.01 MiB" field was answered in KiB. Too
    small to show in MiB, in bytes: ``--chunk-size 16`` (sixteen bytes) was answered "got 0 MiB"."""
    text = f"{size / MiB:,.4f}".rstrip("0").rstrip(".")
    if text == "0" and size:
        return "1 byte" if size == 1 else f"{size:,.0f} bytes"
    return f"{text} MiB"


def _check_range(label: str, value: float, low: float, high: float, show: Any = str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{label} must be a number.")
    if not low <= value <= high:
        raise SettingsError(f"{label} must be between {show(low)} and {show(high)}; got {show(value)}.")


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    seed: str  # what the original app used, and how it was adapted
    values: dict[str, Any]


# The seed's presets, adapted to S3: its sub-5 MiB chunks are raised to 5 MiB (S3 refuses smaller
# parts at completion), and links that lose packets get *more* parts in flight, not fewer, because
# on a lossy link each TCP stream crawls and parallel streams are what fill the pipe.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "Fast",
            "Fast, stable connection (fibre, office)",
            "10 MB chunks, 6 at once",
            {
                "chunk_size": 16 * MiB,
                "auto_part_size": False,
                "concurrency": 8,
                "retries": 3,
                "backoff_base": 1.0,
                "read_timeout": 60.0,
            },
        ),
        Preset(
            "Normal",
            "Typical home broadband",
            "5 MB chunks, 3 at once; parts in flight on Auto",
            {
                "chunk_size": 8 * MiB,
                "auto_part_size": True,
                "concurrency": AUTO_CONCURRENCY,
                "retries": 5,
                "backoff_base": 1.0,
                "read_timeout": 60.0,
            },
        ),
        Preset(
            "Slow",
            "Slow uplink (DSL, busy Wi-Fi)",
            "2 MB chunks, 2 at once; chunks raised to 5 MiB",
            {
                "chunk_size": 5 * MiB,
                "auto_part_size": False,
                "concurrency": 3,
                "retries": 6,
                "backoff_base": 2.0,
                "read_timeout": 120.0,
            },
        ),
        Preset(
            "Unstable",
            "Connection that drops or loses packets (mobile, far Wi-Fi)",
            "512 KB chunks, 2 at once, 5 retries; chunks raised to 5 MiB, more in flight",
            {
                "chunk_size": 5 * MiB,
                "auto_part_size": False,
                "concurrency": 12,
                "retries": 10,
                "backoff_base": 1.0,
                "read_timeout": 120.0,
            },
        ),
        Preset(
            "Very large",
            "Files of 10 GB and more",
            "50 MB chunks, 4 at once",
            {
                "chunk_size": 64 * MiB,
                "auto_part_size": False,
                "concurrency": 8,
                "retries": 8,
                "backoff_base": 2.0,
                "read_timeout": 120.0,
            },
        ),
    )
}


def with_preset(settings: Settings, name: str) -> Settings:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise SettingsError(f"Unknown preset '{name}'. Presets: {', '.join(PRESETS)}.") from None
    return settings.replace(preset=name, **preset.values)


def settings_from_mapping(raw: dict[str, Any], base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a parsed file: bad values fall back to the default, each with a warning."""
    settings = base or Settings()
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    warnings: list[str] = []
    extra = {k: v for k, v in raw.items() if k not in known}
    for name, given in raw.items():
        if name not in known:
            continue
        default = getattr(settings, name)
        try:
            value = float(given) if isinstance(default, float) and type(given) is int else given
        except OverflowError:  # an integer too large for a float
            value = given
        if type(value) is not type(default):
            warnings.append(f"Setting '{name}' had a value of the wrong kind ({value!r:.80}); using {default!r}.")
            continue
        try:
            settings = settings.replace(**{name: value})
        except SettingsError as exc:
            warnings.append(f"{exc.message} Using {default!r}.")
    return settings.replace(extra=extra), warnings


def load_settings(path: Path) -> tuple[Settings, list[str]]:
    """The saved settings; a file that can't be read or decoded is moved aside and defaults are used.

    Moving it aside (``settings.json.damaged-<time>``) keeps what the person had, for them or for
    support, and means the one notice about it is shown once, not on every start.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Settings(), []
    except OSError:
        data = None
    raw: Any = None
    if data is not None:
        try:
            raw = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep to parse
            raw = None
    if not isinstance(raw, dict):
        return Settings(), [_damaged(path)]
    return settings_from_mapping(raw)


def _damaged(path: Path) -> str:
    aside = damaged_name(path)
    try:
        os.replace(path, aside)
    except OSError:
        return f"The settings file {path} can't be read and couldn't be moved aside; using the default settings."
    return f"The settings file could not be read, so the default settings are in use. It was moved to {aside}."


def save_settings(path: Path, settings: Settings) -> None:
    """Atomic replace, so a crash mid-write never leaves half a file behind."""
    private_dir(path.parent)
    descriptor, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)  # 0600, whatever the umask
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(settings.to_json(), handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
