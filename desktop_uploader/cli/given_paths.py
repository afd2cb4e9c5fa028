"""What the paths on an upload command line add up to: the files to send, and a word for the rest.

The window asks about what a drop holds; a command line can't ask, so each thing left out or sent once is
said on stderr, and a path that names nothing stops the command before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

from desktop_uploader.cli.render import Out, plain
from desktop_uploader.cli.session import UsageError
from desktop_uploader.engine.filenames import odd_type_letters
from desktop_uploader.engine.files import collect, missing_reason
from desktop_uploader.engine.intake import given_again
from desktop_uploader.engine.rows import plural


def expand(paths: list[str], out: Out) -> tuple[list[Path], list[dict[str, str]]]:
    """Files as given; folders searched recursively for model files (other files in folders are skipped).

    And the folders that couldn't be searched, as --json reports them: what they hold went unsent, so the
    command ends in 1 as for a file that failed (it ended in 0, and a script took the upload as whole).
    """
    found = collect(paths)
    if found.special:
        path, kind = found.special[0]
        raise UsageError(f"{path} is {kind}, not a file; only regular files can be uploaded.")
    if found.missing:
        others = " Nothing was uploaded: check the name, or leave it out." if len(paths) > 1 else ""
        raise UsageError(missing_reason(found.missing[0]) + others)
    for folder in found.empty_folders:
        out.print(f"[yellow]{plain(folder)}: no files in this folder")
    for sentence in given_again(found, "sent"):  # a file and a link to it: one went unsaid (an odd-inputs audit)
        out.print(f"[yellow]{plain(sentence)}")
    if (unreadable := found.unreadable_sentence()) is not None:
        out.print(f"[yellow]{plain(unreadable)}")
    if (hidden := found.hidden_sentence()) is not None:
        out.print(f"[yellow]{plain(hidden)} Hidden names start with a dot; name a file itself to upload it.")
    named, skipped = found.split_others(paths)
    for path in named:  # sent, as named; storage's refusal alone read as if the type were the one allowed
        if (odd := odd_type_letters(path.name)) is not None:
            out.print(f"[yellow]{plain(path.name)}: {plain(odd)}")
    if skipped:
        example = plain(skipped[0].name)
        out.print(f"[yellow]Skipped {plural(len(skipped), 'file')} in folders that aren't model files, e.g. {example}")
    unsearched = [
        {"folder": str(folder), "status": "failed", "message": f"Couldn't look inside {folder}: {why}."}
        for folder, why in found.unreadable_folders
    ]
    return found.models + named, unsearched
