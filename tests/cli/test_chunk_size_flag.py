"""A chunk size given on the command line is the person's own: kept as it is, not sized by the link."""

from __future__ import annotations

import argparse
from typing import Any

from desktop_uploader.cli.options import add_tuning_flags, settings_from_args
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings


def settings_for(*flags: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_tuning_flags(parser)
    return settings_from_args(Settings(), parser.parse_args(list(flags)))


def test_only_the_presets_own_chunk_size_follows_the_link() -> None:
    assert settings_for().part_size_follows_link
    assert settings_for("--concurrency", "auto").part_size_follows_link
    # The preset's own 8 MiB, typed out, is still a choice: the person asked for 8 MiB parts.
    chosen = settings_for("--chunk-size", "8MiB")
    assert chosen.chunk_size == 8 * MiB
    assert not chosen.part_size_follows_link
    assert not settings_for("--concurrency", "6").part_size_follows_link
    # Another value changed (Custom, as the window saves it) leaves the part size on Auto.
    assert settings_for("--retries", "7").replace(preset="Custom").part_size_follows_link


def test_a_chunk_size_too_small_to_show_in_mib_is_said_in_bytes(cli: Any, make_file: Any) -> None:
    """A CLI audit's --chunk-size 16 (bytes: a bare number is) was answered "got 0 MiB"."""
    result = cli("upload", str(make_file(1000).path), "--chunk-size", "16")
    assert result.code == 2
    assert "Chunk size must be between 0.0625 MiB and 5,120 MiB; got 16 bytes." in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
