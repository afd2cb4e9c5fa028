"""A chunk size given on the command line is the person's own: kept as it is, not sized by the link."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

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
    assert "Chunk size must be between 64 KiB and 5 GiB; got 16 bytes." in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_size_too_large_is_said_in_the_unit_it_was_typed_in(cli: Any, make_file: Any) -> None:
    """A CLI audit's --chunk-size 6GiB was answered "between 0.0625 MiB and 5,120 MiB; got 6,144 MiB"."""
    result = cli("upload", str(make_file(1000).path), "--chunk-size", "6GiB")
    assert result.code == 2
    assert "Chunk size must be between 64 KiB and 5 GiB; got 6 GiB." in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--chunk-size", "-5MiB", "'-5MiB' is below zero; a size is 0 or more, as in 8MiB."),
        ("--bandwidth-limit", "-5MB/s", "'-5MB/s' is below zero; give a rate such as 5MB/s, or 0 for no limit."),
    ],
)
def test_a_negative_amount_is_taken_as_the_flag_s_value_and_refused_in_words(
    cli: Any, make_file: Any, flag: str, value: str, said: str
) -> None:
    """A CLI audit's --chunk-size -5MiB was answered "expected one argument": argparse took -5MiB for a flag."""
    result = cli("upload", str(make_file(1000).path), flag, value)
    assert result.code == 2
    assert f"argument {flag}: {said}" in " ".join(result.stderr.split())
    assert "expected one argument" not in result.stderr
