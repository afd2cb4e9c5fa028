"""What to upload from what a person dropped or typed: files as given, folders searched for models."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.errors import FileUnreadableError
from desktop_uploader.engine.fileid import unreadable
from desktop_uploader.engine.filenames import is_model_file, is_text, shown


@dataclass
class Collected:
    models: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # not model files: the caller asks or skips
    missing: list[Path] = field(default_factory=list)
    special: list[tuple[Path, str]] = field(default_factory=list)  # pipes, devices, sockets: and what each is
    empty_folders: list[Path] = field(default_factory=list)
    # Model files under a hidden name inside a dropped folder: skipped, but said, so none goes missing unseen.
    hidden_models: list[Path] = field(default_factory=list)
    # Folders that couldn't be searched, and why ("permission denied"): not empty, so not said to be.
    unreadable_folders: list[tuple[Path, str]] = field(default_factory=list)
    unreadable_met: int = 0  # each time one was met: a folder holding one said already is not empty either
    # A file given again, by the same name or another (a link, ../): each with the name it was first given by.
    repeats: list[tuple[Path, Path]] = field(default_factory=list)

    def split_others(self, given: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
        """The files that aren't models: those named in ``given`` (asked about, or sent when named on a command
        line), and those found in folders (skipped, and counted: a folder's readme is not what was meant)."""
        named = {as_given(p) for p in given}
        return [p for p in self.others if p in named], [p for p in self.others if p not in named]

    def cant_look_inside(self, folder: Path, exc: OSError) -> None:
        """``folder`` couldn't be searched, or a file in it reached: said once, whichever way it was met."""
        self.unreadable_met += 1
        if all(seen != folder for seen, _why in self.unreadable_folders):
            why = os.strerror(exc.errno).lower() if exc.errno else "it can't be read"
            self.unreadable_folders.append((folder, why))

    def things_seen(self) -> int:
        """Files found and folders that couldn't be searched: a folder that adds none is empty."""
        return len(self.models) + len(self.others) + len(self.hidden_models) + self.unreadable_met

    def hidden_sentence(self) -> str | None:
        """What was skipped for being hidden, short enough for a status bar; None when nothing was."""
        if not self.hidden_models:
            return None
        first = self.hidden_models[0]
        where = shown(f"{first.parent.name}/{first.name}")
        if len(self.hidden_models) == 1:
            return f"Skipped the hidden file {where}."
        return f"Skipped {len(self.hidden_models)} hidden model files, e.g. {where}."

    def unreadable_sentence(self) -> str | None:
        """The folders that couldn't be searched, short enough for a status bar; None when all could.

        Walking skips what it can't open without a word, so a folder without permission read as holding
        no files (a CLI audit's finding, as another user).
        """
        if not self.unreadable_folders:
            return None
        first, why = self.unreadable_folders[0]
        where = shown(f"{first.parent.name}/{first.name}")
        if len(self.unreadable_folders) == 1:
            return f"Couldn't look inside {where}: {why}."
        return f"Couldn't look inside {len(self.unreadable_folders)} folders, e.g. {where}: {why}."


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


def missing_reason(given: str | Path) -> str:
    """Why a path given can't be found, in the words a person can act on: a link is named as a link."""
    path = Path(given).expanduser()
    if not path.is_symlink():
        return f"{given}: no such file or folder."
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 says a loop so; 3.13 raises OSError(ELOOP)
        return f"{given} is a link that leads back to itself, so there is no file to upload."
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{given} is a link that leads back to itself, so there is no file to upload."
    return f"{given} is a link to {os.readlink(path)}, which doesn't exist."


def natural_order(name: str) -> tuple[tuple[int, str | int], ...]:
    """Sort key reading runs of digits as numbers, as file managers list names: epoch-9 before epoch-10.

    A GUI audit's folder of 300 checkpoints queued as m9, m90, m91… m99, m10.
    """
    return tuple((1, int(run)) if run.isdigit() else (0, run.casefold()) for run in re.split(r"(\d+)", name) if run)


# Entries looked at inside hidden folders, per folder given: a cache of a few models is searched, a
# .git or a .venv of a hundred thousand files is not walked to the end for the sake of a sentence.
HIDDEN_LOOK = 10_000


def _search(folder: Path, keep: Callable[[Path], None], found: Collected) -> None:
    """Every file in ``folder``, in natural order, to ``keep``; model files under hidden names to ``found``."""
    budget = HIDDEN_LOOK

    def unreadable(exc: OSError) -> None:
        found.cant_look_inside(Path(exc.filename or folder), exc)

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        hidden_root = _hidden(Path(root), folder)
        if hidden_root:
            budget -= len(dirs) + len(names)
        looking = budget > 0
        dirs[:] = sorted((d for d in dirs if looking or not (hidden_root or d.startswith("."))), key=natural_order)
        for name in sorted(names, key=natural_order):
            candidate = Path(root) / name
            hidden = hidden_root or name.startswith(".")
            if hidden and not is_model_file(name):
                continue
            try:
                is_file = candidate.is_file()
            except OSError as exc:  # a folder that can be listed but not entered (mode 600): none of it can be read
                found.cant_look_inside(Path(root), exc)
                break
            if is_file:
                (found.hidden_models.append if hidden else keep)(candidate)


def collect(paths: Iterable[str | Path]) -> Collected:
    """Model files first, everything else separately; hidden files and folders inside folders are skipped.

    Hidden folders are still searched, for model files only (by name, without opening them): a
    checkpoint under ``.cache/`` is named as skipped instead of silently left out.
    """
    found = Collected()
    seen: dict[Path, Path] = {}

    def keep(path: Path) -> None:
        resolved = path.resolve()  # the same file twice, by any names, is one upload
        named = as_given(path)
        if resolved in seen:
            found.repeats.append((named, seen[resolved]))
            return
        seen[resolved] = named
        (found.models if is_model_file(named.name) else found.others).append(named)

    for given in paths:
        path = Path(given).expanduser()
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # Python 3.11 raises, for a file in a folder that can't be entered
            found.cant_look_inside(path.parent, exc)
            continue
        if is_dir:
            before = found.things_seen()
            _search(path, keep, found)
            if found.things_seen() == before:
                found.empty_folders.append(path)
        elif path.is_file():
            keep(path)
        elif (kind := special_kind(path)) is not None:
            found.special.append((path, kind))
        else:
            found.missing.append(path)
    return found


def as_given(path: str | Path) -> Path:
    """``path`` made absolute, its links kept: a link's name is the file's name to the person who gave it.

    Resolved, a Hugging Face snapshot's ``model.safetensors`` (a link to ``blobs/3f2a9c0d…``) was refused as
    a file "of type '(none)'", and a folder of them as holding no models (a CLI audit's finding).
    """
    return Path(os.path.abspath(Path(path).expanduser()))


def uploadable_file(path: str | Path) -> tuple[Path, int]:
    """The file to queue for ``path``, absolute, and its size; raises a sentence for anything else.

    A name that isn't valid text can't go in a request or the resume store; refusing it here, for
    this file alone, keeps the rest going.
    """
    absolute = as_given(path)
    if not is_text(str(absolute)):
        raise FileUnreadableError(
            f"{shown(str(absolute))} can't be uploaded: its name has bytes that aren't valid text (UTF-8). "
            "Rename the file (or its folder) and add it again."
        )
    kind = special_kind(absolute)
    if kind is not None:
        raise FileUnreadableError(f"{shown(absolute.name)} can't be uploaded: it is {kind}, not a regular file.")
    try:
        if not absolute.is_file():
            raise (
                IsADirectoryError(21, "Is a directory", str(absolute))
                if absolute.is_dir()
                else FileNotFoundError(2, "No such file", str(absolute))
            )
        size = absolute.stat().st_size
    except OSError as exc:
        raise unreadable(absolute, exc) from exc
    return absolute, size
