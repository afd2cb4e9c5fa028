"""What to upload from what a person dropped or typed: files as given, folders searched for models."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.filenames import is_model_file


@dataclass
class Collected:
    models: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # not model files: the caller asks or skips
    missing: list[Path] = field(default_factory=list)
    special: list[tuple[Path, str]] = field(default_factory=list)  # pipes, devices, sockets: and what each is
    empty_folders: list[Path] = field(default_factory=list)


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it exists but is neither a regular file nor a folder ("a named pipe (FIFO)")."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "not a regular file"


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def collect(paths: Iterable[str | Path]) -> Collected:
    """Model files first, everything else separately; hidden files and folders inside folders are skipped."""
    found = Collected()
    seen: set[Path] = set()

    def keep(path: Path) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        (found.models if is_model_file(resolved.name) else found.others).append(resolved)

    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            before = len(found.models) + len(found.others)
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    candidate = Path(root) / name
                    if not _hidden(candidate, path) and candidate.is_file():
                        keep(candidate)
            if len(found.models) + len(found.others) == before:
                found.empty_folders.append(path)
        elif path.is_file():
            keep(path)
        elif (kind := special_kind(path)) is not None:
            found.special.append((path, kind))
        else:
            found.missing.append(path)
    return found
