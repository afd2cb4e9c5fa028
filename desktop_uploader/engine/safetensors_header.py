"""Is this .safetensors file whole? Its header says how long it must be; a cut-short download is not.

A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensor data.
Each tensor in the header names its ``data_offsets`` ``[begin, end]`` within the data, so the last end
offset plus 8 plus the header length is the size the file must have. A download that stopped early
(the most common way to end up with a broken model) is shorter than that, or stops inside the header.

Only the header is read (the format caps it at 100 MB; real ones are kilobytes), no tensor data, and
no ML framework is imported: this runs before every upload of such a file, on files of 40 GB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from desktop_uploader.engine.limits import human_bytes

MAX_HEADER = 100_000_000  # the safetensors library refuses larger headers
_CUT_SHORT = "It looks cut short, like a download that did not finish."


def safetensors_problem(path: Path) -> str | None:
    """None when the file's header reads and its sizes add up; else what is wrong, in sentences.

    A file that can't be opened is not judged here (None): the upload reports why it can't be read.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            prefix = handle.read(8)
            if not size:
                return "It is empty (0 bytes)."  # an audit read "It is only 0 B, too short…, cut short"
            if len(prefix) < 8:
                return f"It is only {human_bytes(size)}, too short to be a safetensors file. {_CUT_SHORT}"
            length = int.from_bytes(prefix, "little")
            if length > MAX_HEADER:
                return "Its header can't be read: it doesn't start the way a safetensors file does."
            if 8 + length > size:
                return (
                    f"It ends inside its own header ({human_bytes(size)}, the header alone needs "
                    f"{human_bytes(8 + length)}). {_CUT_SHORT}"
                )
            header = handle.read(length)
    except OSError:
        return None
    end = _data_end(header)
    if end is None:
        return "Its header can't be read: it isn't the JSON a safetensors file starts with."
    expected = 8 + length + end
    if size < expected:
        return f"It is {human_bytes(size)}, but its header describes {human_bytes(expected)}. {_CUT_SHORT}"
    if size > expected:
        return (
            f"It is {human_bytes(size)}, {human_bytes(size - expected)} more than its header describes, "
            "so something was added to it or it was copied wrongly."
        )
    return None


def _data_end(header: bytes) -> int | None:
    """The end of the last tensor's data (0 for no tensors), or None if the header is not valid."""
    try:
        parsed: Any = json.loads(header.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    end = 0
    for name, info in parsed.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_offset(o) for o in offsets)):
            return None
        begin, stop = offsets
        if begin > stop:
            return None
        end = max(end, stop)
    return end


def _offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
