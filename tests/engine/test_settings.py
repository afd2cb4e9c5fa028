"""Settings refuse what can't work, name the limit, survive damaged files, and keep the seed's presets."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from desktop_uploader.cli.options import parse_rate, parse_size
from desktop_uploader.engine.errors import SettingsError
from desktop_uploader.engine.limits import KiB, MiB
from desktop_uploader.engine.settings import PRESETS, Settings, load_settings, save_settings, with_preset


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"concurrency": 65}, "between 1 and 64"),
        ({"concurrency": -1}, "between 1 and 64"),
        ({"retries": 0}, "Retries must be between 1 and 50"),
        ({"chunk_size": 1000}, "Chunk size must be between 64 KiB and 5 GiB; got 0.001 MiB."),
        ({"files_at_once": 0}, "Files at once"),
        ({"backoff_base": 0}, "Backoff base"),
        ({"method": "carrier-pigeon"}, "Upload method must be one of"),
        ({"server_url": "ftp://x"}, "must start with http"),
        ({"bandwidth_limit": -5}, "Bandwidth limit"),
        ({"read_timeout": 0.5}, "Read timeout"),
        ({"url_expiry_seconds": 0}, "URL expiry must be between 1 s and 7 days; got 0 s."),  # not "604800 s"
        ({"url_expiry_seconds": 8 * 86400}, "got 8 days"),
    ],
)
def test_invalid_values_are_refused_naming_the_limit(change: dict[str, object], phrase: str) -> None:
    with pytest.raises(SettingsError, match=phrase):
        Settings(**change)  # type: ignore[arg-type]


def test_the_seeds_512_kb_chunk_size_is_a_valid_wish() -> None:
    assert Settings(chunk_size=512 * KiB).chunk_size == 512 * KiB


def test_presets_are_the_seeds_names_and_respect_s3s_minimum() -> None:
    assert list(PRESETS) == ["Fast", "Normal", "Slow", "Unstable", "Very large"]
    for name in PRESETS:
        settings = with_preset(Settings(), name)
        assert settings.preset == name and settings.chunk_size >= 5 * MiB
    assert with_preset(Settings(), "Unstable").concurrency > with_preset(Settings(), "Slow").concurrency
    with pytest.raises(SettingsError, match="Unknown preset"):
        with_preset(Settings(), "Turbo")


def test_settings_round_trip_and_damaged_files_fall_back(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    wanted = Settings(chunk_size=16 * MiB, concurrency=9, server_url="https://api.example.com", fallback=False)
    save_settings(path, wanted)
    assert load_settings(path) == (wanted, [])

    raw = json.loads(path.read_text())
    raw.update(concurrency=999, retries="many", future_option=True)
    path.write_text(json.dumps(raw))
    loaded, warnings = load_settings(path)
    assert loaded.concurrency == Settings().concurrency and loaded.retries == Settings().retries
    assert loaded.chunk_size == 16 * MiB
    assert len(warnings) == 2 and "between 1 and 64" in warnings[0]
    assert loaded.to_json()["future_option"] is True  # kept for a newer version of the app

    path.write_text("{not json")
    loaded, warnings = load_settings(path)
    assert loaded == Settings() and "damaged" in warnings[0]


@pytest.mark.parametrize("content", [b'{"server_url": "caf\xe9"}', b"{not json", b"[1, 2]", b"[" * 100_000])
def test_a_settings_file_that_cant_be_decoded_is_moved_aside_with_one_notice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    loaded, warnings = load_settings(path)
    [aside] = tmp_path.glob("settings.json.damaged-*")
    assert loaded.server_url == "" and aside.read_bytes() == content and not path.exists()
    assert len(warnings) == 1 and f"It was moved to {aside}." in warnings[0]
    assert load_settings(path) == (Settings(), []), "said once: the next start finds no damaged file"


def test_a_number_too_large_for_a_setting_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"backoff_cap": ' + "9" * 400 + "}")
    loaded, warnings = load_settings(path)
    assert loaded.backoff_cap == Settings().backoff_cap and len(warnings) == 1


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * MiB),
        ("8M", 8 * MiB),
        ("8MB", 8_000_000),
        ("512KB", 512_000),
        ("512KiB", 512 * KiB),
        ("1048576", 1048576),
        ("1.5GiB", 3 * 512 * MiB),
    ],
)
def test_cli_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5MB/s", 5_000_000),  # a CLI audit's rates, written as rates, were "not a size"
        ("5 MiB/s", 5 * MiB),
        ("5MBps", 5_000_000),
        ("2.5MB/sec", 2_500_000),
        ("5mb", 5_000_000),  # as in sizes: bytes
        ("40Mbps", 5_000_000),  # bits, as internet plans are sold
        ("40 Mbit/s", 5_000_000),
        ("8Kbit/s", 1000),
        ("0", 0),
        ("5B/s", 5),  # bytes, said so
        ("12582912", 12_582_912),  # bytes a second, as scripts give them
    ],
)
def test_cli_rates(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


def test_a_rate_that_is_not_one_is_said_in_rates() -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=re.escape("'fast' is not a rate; try 5MB/s, 4MiB/s or 40Mbit/s.")
    ):
        parse_rate("fast")
