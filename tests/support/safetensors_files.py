"""Well-formed .safetensors files for tests: a real header, then pseudo-random tensor bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def header(data_size: int, tensors: int = 1) -> bytes:
    """The 8-byte length and JSON header of a file whose tensors hold ``data_size`` bytes in all."""
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    share, begin = data_size // tensors, 0
    for number in range(tensors):
        end = data_size if number == tensors - 1 else begin + share
        entries[f"layer{number}.weight"] = {"dtype": "U8", "shape": [end - begin], "data_offsets": [begin, end]}
        begin = end
    text = json.dumps(entries).encode()
    text += b" " * (-len(text) % 8)  # padded to 8 bytes, as the safetensors library writes it
    return len(text).to_bytes(8, "little") + text


def header_for_total(size: int) -> bytes:
    """A header such that header + its data is exactly ``size`` bytes."""
    data = size
    for _ in range(8):
        head = header(max(data, 0))
        if len(head) + data == size:
            return head
        data = size - len(head)
    raise ValueError(f"no safetensors header fits a file of {size} bytes")


def write_safetensors(path: Path, size: int, seed: int = 0) -> str:
    """Write a whole, valid file of ``size`` bytes; returns its SHA-256."""
    head = header_for_total(size)
    digest = hashlib.sha256(head)
    block = hashlib.sha256(f"{path.name}:{seed}".encode()).digest() * 32768  # 1 MiB pattern
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(head)
        remaining, counter = size - len(head), 0
        while remaining:
            chunk = (counter.to_bytes(8, "big") + block[8:])[: min(remaining, len(block))]
            handle.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
            counter += 1
    return digest.hexdigest()


def whole_models(make_file: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """The suite's ``make_file``, but a .safetensors file is a whole one (a real header).

    Random bytes named .safetensors look like a cut-short download to the upload preflight (the CLI
    refuses such a file, the window asks about it); the tests that want a damaged one make it so.
    """
    from tests.conftest import SampleFile

    def make(size: int, name: str = "model.safetensors", seed: int = 0) -> Any:
        if not name.endswith(".safetensors") or size < 256:
            return make_file(size, name, seed)
        path = tmp_path / "files" / name
        return SampleFile(path, size, write_safetensors(path, size, seed))

    return make
