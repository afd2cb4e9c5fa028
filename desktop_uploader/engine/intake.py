"""Taking in what a person dropped or chose: damaged models set apart, files queued, and the sentence about it.

Plain work for a worker thread (the window asks its questions in between, on its own thread): which
.safetensors files say they are cut short, queueing a whole drop in one trip, and what to tell the person.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.files import Collected, missing_reason
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.rows import plural
from desktop_uploader.engine.safetensors_header import safetensors_problem


@dataclass(frozen=True)
class Intake:
    """What queueing a drop did: files added, files already queued, problems, and the rows of dropped files
    that stopped short (interrupted, or failed with their parts kept), for the window to go on with."""

    added: int
    duplicates: list[str]
    problems: list[str]
    stopped_short: dict[str, str] = field(default_factory=dict)  # job id -> file name


@dataclass(frozen=True)
class AddOutcome:
    added: int
    duplicates: list[str]
    problems: list[str]
    skipped: int
    going_on: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The status bar's sentence about a drop."""
        words = []
        if self.going_on:
            they = "it" if len(self.going_on) == 1 else "they"
            words.append(f"Going on with {_names(self.going_on)} from where {they} stopped.")
        if self.duplicates:
            words.append(f"Already in the queue: {_names(self.duplicates)}.")
        if self.skipped:
            kind = "isn't a model" if self.skipped == 1 else "aren't models"
            words.append(f"Skipped {plural(self.skipped, 'file')} that {kind}.")
        words += self.problems[:2]
        if self.added or not (self.going_on or self.duplicates):  # "Added 0 files. Already in the queue: a." read oddly
            words.insert(0, f"Added {plural(self.added, 'file')}.")
        return " ".join(words)


def _names(names: list[str]) -> str:
    """Three names at most, and how many more: a drop of a whole folder named three and dropped the rest."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def damaged(paths: list[Path]) -> list[tuple[Path, str]]:
    """The .safetensors files whose header says they are incomplete, each with what is wrong (header only)."""
    found = []
    for path in paths:
        problem = safetensors_problem(path) if path.suffix.lower() == ".safetensors" else None
        if problem is not None:
            found.append((path, problem))
    return found


def refuse(chosen: list[Path], refused: list[tuple[Path, str]]) -> tuple[list[Path], list[str]]:
    """``chosen`` without the damaged files the person declined, and a sentence for each of those."""
    gone = {path for path, _ in refused}
    sentences = [f"{path.name} was not added because it looks damaged." for path, _ in refused]
    return [p for p in chosen if p not in gone], sentences


def add_all(manager: UploadManager, chosen: list[Path], known: set[str], *, start: bool) -> Intake:
    """One trip to a worker thread for the whole drop; the manager refuses files already queued (``known``
    holds the queue's job ids and gains the new ones).

    A file whose row was interrupted (a crash, a quit) or failed with its parts kept is named apart when
    uploads start on adding: dropping it again is the plainest way to say "send this", and being told it
    was "already in the queue" left it sitting there, unsent.
    """
    added, duplicates, problems, stopped_short = 0, [], [], {}
    for number, path in enumerate(chosen):
        if number % 25 == 24:
            time.sleep(0)  # let the window take the interpreter between batches of a big drop
        try:
            job = manager.add(path, start=start)
        except UploaderError as exc:
            problems.append(exc.message)
            continue
        if job not in known:
            known.add(job)
            added += 1
        elif start and _stopped_short(manager, job):
            stopped_short[job] = path.name
        else:
            duplicates.append(path.name)
    return Intake(added, duplicates, problems, stopped_short)


def _stopped_short(manager: UploadManager, job_id: str) -> bool:
    """Interrupted, or failed with its parts kept for Retry; a paused row is as the person left it."""
    view = manager.job(job_id)
    return view.status is Status.INTERRUPTED or (view.status is Status.FAILED and view.resumable)


def given_again(found: Collected, done: str) -> list[str]:
    """A sentence for each file given twice, by the same name or another (a link): it is ``done`` once."""
    return [
        f"{shown(p.name)} was given twice; it is {done} once."
        if p.name == first.name
        else f"{shown(p.name)} is the same file as {shown(first.name)}; it is {done} once."
        for p, first in found.repeats
    ]


def unusable(found: Collected) -> list[str]:
    """Sentences for what was dropped but is missing, is not a regular file, is an empty folder (a drop of one
    read only "Added 0 files."), couldn't be searched, or was skipped as hidden."""
    missing = [missing_reason(p) for p in found.missing]
    special = [f"{p.name} is {kind}, not a file." for p, kind in found.special]
    empty = [f"The folder {shown(p.name)} has no files in it." for p in found.empty_folders]
    # Said, as a file already in the queue is: a drop of a file with a link to it read only "Added 1 file." (an audit)
    once = given_again(found, "added")
    found_words = [s for s in (found.unreadable_sentence(), found.hidden_sentence()) if s]
    return missing + special + empty + once + found_words
