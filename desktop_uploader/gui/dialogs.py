"""Dialogs awaited as coroutines: opened with ``open()``, never ``exec()``.

A nested ``exec()`` loop inside a coroutine lets another asyncio task step in while the first is
suspended mid-step, which asyncio refuses. Opening the dialog and awaiting its ``finished`` signal
keeps one event loop and makes dialogs easy to drive from tests.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from pathlib import Path

from PySide6.QtWidgets import QDialog, QMessageBox, QPushButton, QWidget

from desktop_uploader.engine.filenames import odd_type_letters


async def finished(dialog: QDialog) -> int:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(result: int) -> None:
        if not future.done():
            future.set_result(result)

    dialog.finished.connect(done)
    dialog.open()
    return await future


class CloseChoice(Enum):
    PAUSE_AND_QUIT = "Pause and quit"
    KEEP_IN_TRAY = "Keep uploading in the tray"
    CANCEL_AND_QUIT = "Cancel uploads and quit"
    STAY = "Don't quit"


def pause_promise(links_until: float | None, now: float) -> str:
    """What a pause keeps. A server that can't renew its upload links (our users' three-action route)
    keeps a paused upload only while its links last: after that it starts over, which "go on from where
    they stopped" had promised away."""
    if links_until is None:
        return "go on from where they stopped when you start them"
    at = time.localtime(links_until)
    when = time.strftime("%H:%M", at)
    if time.localtime(now)[:3] != at[:3]:
        when = time.strftime("%A %H:%M", at)  # links last up to a week
    return (
        f"go on from where they stopped if you start them before {when}; this server can't renew its upload "
        "links, so after that they start again from the beginning"
    )


async def ask_close(parent: QWidget, *, tray: bool, links_until: float | None = None) -> CloseChoice:
    """``links_until``: when the first kept link of the running uploads expires (None: their server re-signs)."""
    box = QMessageBox(parent)
    box.setObjectName("closeQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Uploads are still running")
    box.setText("Uploads are still running. What should happen to them?")
    box.setInformativeText(
        f"Paused uploads wait in the list for the next time you open the app, and "
        f"{pause_promise(links_until, time.time())}. Cancelled uploads are removed from storage."
    )
    buttons = {
        box.addButton(CloseChoice.PAUSE_AND_QUIT.value, QMessageBox.ButtonRole.AcceptRole): CloseChoice.PAUSE_AND_QUIT,
        box.addButton(
            CloseChoice.CANCEL_AND_QUIT.value, QMessageBox.ButtonRole.DestructiveRole
        ): CloseChoice.CANCEL_AND_QUIT,
        box.addButton(CloseChoice.STAY.value, QMessageBox.ButtonRole.RejectRole): CloseChoice.STAY,
    }
    if tray:
        buttons[box.addButton(CloseChoice.KEEP_IN_TRAY.value, QMessageBox.ButtonRole.ActionRole)] = (
            CloseChoice.KEEP_IN_TRAY
        )
    box.setDefaultButton(next(b for b, c in buttons.items() if c == CloseChoice.PAUSE_AND_QUIT))
    await finished(box)
    clicked = box.clickedButton()
    choice = next((c for b, c in buttons.items() if b is clicked), CloseChoice.STAY)
    box.deleteLater()
    return choice


async def confirm_other_files(parent: QWidget, others: list[Path]) -> bool:
    box = QMessageBox(parent)
    box.setObjectName("otherFilesQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Not model files")
    names = ", ".join(p.name for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    if len(others) == 1:
        box.setText(f"{names} isn't a model file.")
        odd = odd_type_letters(others[0].name)
        box.setInformativeText(f"{odd + ' ' if odd else ''}The server may refuse it. Add it anyway?")
    else:
        box.setText(f"{len(others)} of the files aren't model files: {names}.")
        box.setInformativeText("The server may refuse them. Add them anyway?")
    one = len(others) == 1
    add = box.addButton("Add it" if one else "Add them too", QMessageBox.ButtonRole.AcceptRole)
    skip = box.addButton("Skip it" if one else "Skip them", QMessageBox.ButtonRole.RejectRole)
    # Skipping is the default, as for damaged files: an audit's Enter added a .txt that the server then refused.
    box.setDefaultButton(skip)
    box.setEscapeButton(skip)
    await finished(box)
    chosen = box.clickedButton() is add
    box.deleteLater()
    return chosen


async def confirm_damaged_files(parent: QWidget, damaged: list[tuple[Path, str]]) -> bool:
    box = QMessageBox(parent)
    box.setObjectName("damagedFilesQuestion")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Files that look damaged")
    if len(damaged) == 1:
        first, problem = damaged[0]
        box.setText(f"{first.name} looks damaged.")
        box.setInformativeText(
            f"{problem} Uploading it will most likely store a model that can't be loaded. Send it anyway?"
        )
    else:  # each file with its own reason: they need not share one
        shown = "\n".join(f"• {path.name}: {problem}" for path, problem in damaged[:5])
        more = f"\n… and {len(damaged) - 5} more." if len(damaged) > 5 else ""
        box.setText(f"{len(damaged)} files look damaged:\n{shown}{more}")
        box.setInformativeText("Uploading them will most likely store models that can't be loaded. Send them anyway?")
    send = box.addButton("Send anyway", QMessageBox.ButtonRole.AcceptRole)
    skip = box.addButton("Skip it" if len(damaged) == 1 else "Skip them", QMessageBox.ButtonRole.RejectRole)
    send.setAutoDefault(False)
    box.setDefaultButton(skip)  # the box warns against sending: Enter must not send (a GUI audit's finding)
    await finished(box)
    chosen = box.clickedButton() is send
    box.deleteLater()
    return chosen


async def confirm(
    parent: QWidget, title: str, text: str, action: str, *, name: str = "confirmation", keep: str = "Keep it"
) -> bool:
    """A yes/no question about something that can't be undone: whether ``action`` was clicked."""
    return await choose(parent, title, text, action, name=name, keep=keep) == action


async def choose(
    parent: QWidget,
    title: str,
    text: str,
    action: str,
    *,
    name: str = "confirmation",
    keep: str = "Keep it",
    other: str | None = None,
) -> str:
    """A question whose ``action`` can't be undone, with ``other`` as a milder answer: the label clicked.

    The safe answer, ``keep``, is the default and the Escape button: Enter, Esc or closing the box keep
    things as they are; only a click on another answer (or Tab to it, then Space) chooses it.
    """
    box = QMessageBox(parent)
    box.setObjectName(name)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(text)
    answers: dict[QPushButton, str] = {box.addButton(action, QMessageBox.ButtonRole.DestructiveRole): action}
    if other is not None:
        answers[box.addButton(other, QMessageBox.ButtonRole.ActionRole)] = other
    for button in answers:
        button.setAutoDefault(False)  # focus on it must not make Enter mean it either
    safe = box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(safe)
    box.setEscapeButton(safe)
    await finished(box)
    clicked = box.clickedButton()
    chosen = next((label for button, label in answers.items() if button is clicked), keep)
    box.deleteLater()
    return chosen


class FirstRunChoice(Enum):
    SANDBOX = "Try it on this computer"
    SERVER = "Connect to my server…"
    OWN_S3 = "Use my own S3 storage…"
    LATER = "Not now"


async def ask_first_run(parent: QWidget) -> FirstRunChoice:
    """Files were added before any server was chosen: where should they go? Asked once per window.

    Without a count: the question comes with a drop's first row, and said "Your file waits" while a
    GUI audit's second file was being added.
    """
    box = QMessageBox(parent)
    box.setObjectName("firstRunQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Where should your files go?")
    box.setText("No upload server is set up yet. What you add waits in the queue until you choose one.")
    box.setInformativeText(
        "Try the app right away with a local test storage on this computer, or connect to your team's upload server "
        "or your own S3 storage."
    )
    buttons = {
        box.addButton(FirstRunChoice.SANDBOX.value, QMessageBox.ButtonRole.AcceptRole): FirstRunChoice.SANDBOX,
        box.addButton(FirstRunChoice.SERVER.value, QMessageBox.ButtonRole.ActionRole): FirstRunChoice.SERVER,
        box.addButton(FirstRunChoice.OWN_S3.value, QMessageBox.ButtonRole.ActionRole): FirstRunChoice.OWN_S3,
        box.addButton(FirstRunChoice.LATER.value, QMessageBox.ButtonRole.RejectRole): FirstRunChoice.LATER,
    }
    box.setDefaultButton(next(b for b, c in buttons.items() if c is FirstRunChoice.SANDBOX))
    box.setEscapeButton(next(b for b, c in buttons.items() if c is FirstRunChoice.LATER))
    await finished(box)
    clicked = box.clickedButton()
    choice = next((c for b, c in buttons.items() if b is clicked), FirstRunChoice.LATER)
    box.deleteLater()
    return choice
