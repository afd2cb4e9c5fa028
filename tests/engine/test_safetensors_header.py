"""The .safetensors preflight: a whole file passes, a cut-short or padded one is named, nothing else read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop_uploader.engine.safetensors_header import safetensors_problem
from tests.support.safetensors_files import header, write_safetensors


def test_a_whole_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, 3 * 1024 * 1024 + 17)
    assert safetensors_problem(path) is None
    many = tmp_path / "many.safetensors"
    many.write_bytes(header(1000, tensors=7) + b"\x01" * 1000)
    assert safetensors_problem(many) is None
    empty_model = tmp_path / "none.safetensors"
    empty_model.write_bytes(header(0))  # no tensor data at all is still whole
    assert safetensors_problem(empty_model) is None


@pytest.mark.parametrize(
    ("cut", "phrase"),
    [
        (lambda whole: whole[: len(whole) - 1000], "but its header describes"),
        (lambda whole: whole[:40], "ends inside its own header"),
        (lambda whole: whole[:5], "too short to be a safetensors file"),
        (lambda whole: b"", "It is empty (0 bytes)."),
        (lambda whole: whole + b"\x00" * 10, "more than its header describes"),
        (lambda whole: b"\xff" * 8 + whole[8:], "doesn't start the way a safetensors file does"),
    ],
)
def test_a_damaged_file_is_named_for_what_is_wrong(tmp_path: Path, cut: object, phrase: str) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, 64 * 1024)
    path.write_bytes(cut(path.read_bytes()))  # type: ignore[operator]
    problem = safetensors_problem(path)
    assert problem is not None and phrase in problem


@pytest.mark.parametrize(
    "entries",
    [
        [1, 2],
        {"w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 0]}},
        {"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, -4]}},
        {"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, True]}},
        {"w": {"dtype": "U8", "shape": [4]}},
        {"w": "not a tensor"},
    ],
)
def test_a_header_that_is_not_a_safetensors_header_is_refused(tmp_path: Path, entries: object) -> None:
    text = json.dumps(entries).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"\x00" * 4)
    problem = safetensors_problem(path)
    assert problem is not None and "header can't be read" in problem


def test_invalid_utf8_in_the_header_is_refused(tmp_path: Path) -> None:
    text = b'{"caf\xe9": 1}'
    path = tmp_path / "m.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text)
    assert "header can't be read" in (safetensors_problem(path) or "")


def test_only_the_header_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, 8 * 1024 * 1024)
    head_length = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    reads: list[int] = []
    real_open = open

    def counting_open(*args: object, **kwargs: object) -> object:
        handle = real_open(*args, **kwargs)  # type: ignore[call-overload]
        original = handle.read

        def read(n: int = -1) -> bytes:
            data: bytes = original(n)
            reads.append(len(data))
            return data

        handle.read = read
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    assert safetensors_problem(path) is None
    assert sum(reads) == head_length
