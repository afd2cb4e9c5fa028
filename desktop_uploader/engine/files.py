"""What to upload from what a person dropped or typed: files as given, folders searched for models."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.filenames import is_model_file


@dataclass
class Collected:
    models: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # not model files: the caller asks or skips
    missing: list[Path] = field(default_factory=list)
    empty_folders: list[Path] = field(default_factory=list)


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
        else:
            found.missing.append(path)
    return found
