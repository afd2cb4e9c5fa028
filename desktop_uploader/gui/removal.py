"""Protecting work: giving up an upload that has bytes stored on the server asks first.

Every way of cancelling (the row's ⊗ button, the Del key, the context menu) comes through here, so
the rule holds for all of them: a row with stored bytes gets a question whose default answer keeps
the upload (Enter, Esc and closing the box are safe); a row with nothing stored goes at once,
since there is nothing to lose. Finished rows (completed, cancelled) are only taken off the list.

Retry of a file that changed mid-upload sends the file as it is now, so it is checked as a drop is,
and a damaged one asked about first: that protects the stored copy from a cut-short file. Retry of a
file that was missing or unreadable looks at it first, and says so when it still is: otherwise the row
went Queued and back to the same Failed sentence in a blink, and Retry seemed to do nothing.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from PySide6.QtWidgets import QWidget

from desktop_uploader.engine.errors import FileChangedError, FileUnreadableError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.fileid import identify
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.intake import damaged
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.rows import Row, RowAction
from desktop_uploader.gui.dialogs import choose, confirm, confirm_damaged_files
from desktop_uploader.gui.session import AppSession
from desktop_uploader.gui.tasks import in_thread, spawn

GIVING_UP = (RowAction.CANCEL, RowAction.DISCARD, RowAction.REMOVE)
LOOKED_AT_BEFORE_RETRY = (FileChangedError.__name__, FileUnreadableError.__name__)


def loses_work(row: Row, action: RowAction) -> bool:
    """Whether ``action`` would delete bytes already stored for ``row`` (so it must be asked about)."""
    if action not in GIVING_UP or row.status in (Status.COMPLETED, Status.CANCELLED):
        return False
    if action is RowAction.REMOVE and row.status is Status.FAILED and not row.resumable:
        return False  # its parts are gone already: only the row goes
    return row.confirmed > 0


class Answer(Enum):
    CANCEL = "Cancel upload"
    PAUSE = "Pause instead"
    KEEP = "Keep uploading"


async def ask_to_cancel(parent: QWidget, stored: str) -> Answer:
    """Cancel, pause instead, or keep uploading; keeping is the default, and Esc's.

    The question said "pausing keeps it" and offered no Pause (a network audit). "At least": the upload
    goes on while the question waits (an audit read 25 % at 50 %).
    """
    text = f"At least {stored} Cancelling deletes it; pausing keeps it, to go on later."
    keep, cancel, pause = Answer.KEEP.value, Answer.CANCEL.value, Answer.PAUSE.value
    return Answer(
        await choose(parent, "Cancel this upload?", text, cancel, name="cancelQuestion", keep=keep, other=pause)
    )


def still_unreadable(path: Path) -> str | None:
    """What is still wrong with a file whose upload failed because it couldn't be read, or None if it reads now."""
    try:
        identify(path)
    except FileUnreadableError as error:
        if path.exists() or path.is_symlink():
            return f"Still can't send it: {error}"
        return f"{shown(path.name)} is still not in {shown(str(path.parent))}. Put it back there, then press Retry."
    return None


class RemovalGuard:
    """Carries out row actions for the window, asking before any that would throw stored bytes away."""

    def __init__(self, parent: QWidget, session: AppSession) -> None:
        self.parent = parent
        self.session = session
        self.asking: set[str] = set()  # job ids with a question open: a second click doesn't stack another

    def act(self, job_id: str, action: RowAction) -> None:
        row = self.session.model.row_by_id(job_id)
        if row is not None and action is RowAction.RETRY and row.failed_kind in LOOKED_AT_BEFORE_RETRY:
            if job_id not in self.asking:
                spawn(self._check_then_retry(row))
            return
        if row is None or not loses_work(row, action):
            self.session.act(job_id, action)
            return
        if job_id not in self.asking:
            spawn(self._ask_then(row, action))

    async def _check_then_retry(self, row: Row) -> None:
        """A file changed while it uploaded is sent again as it is now, so it is looked at as a drop looks at it:
        an audit cut a model short mid-upload, pressed Retry, and the cut file was stored as "Completed"."""
        self.asking.add(row.job_id)
        try:
            still = await in_thread(still_unreadable, row.path)
            if still:
                self.session.message.emit(still)
                return
            found = await in_thread(damaged, [row.path])
            if found and not await confirm_damaged_files(self.parent, found):
                self.session.message.emit(f"{row.file_name} was not sent again: it looks damaged.")
                return
        finally:
            self.asking.discard(row.job_id)
        self.session.act(row.job_id, RowAction.RETRY)

    def remove(self, row: Row) -> None:
        """The Del key: take a finished row off the list, or cancel (asking if needed) an unfinished one."""
        self.act(row.job_id, RowAction.REMOVE)

    async def _ask_then(self, row: Row, action: RowAction) -> None:
        self.asking.add(row.job_id)
        stored = f"{human_bytes(row.confirmed)} of {row.file_name} ({row.percent}%) is already stored."
        try:
            if row.status.active or row.status is Status.QUEUED:
                answer = await ask_to_cancel(self.parent, stored)
                if answer is Answer.PAUSE:
                    self.session.act(row.job_id, RowAction.PAUSE)
                chosen = answer is Answer.CANCEL
            else:  # paused, interrupted or failed: nothing is uploading to be kept at it (a GUI audit's finding)
                chosen = await confirm(
                    self.parent,
                    "Discard this upload?",
                    f"{stored} Discarding deletes it; keeping it lets you go on later.",
                    "Discard upload",
                    name="cancelQuestion",
                    keep="Keep it",
                )
        finally:
            self.asking.discard(row.job_id)
        if not chosen:
            return
        now = self.session.model.row_by_id(row.job_id)
        if now is None:
            return
        if now.status is Status.COMPLETED:
            # It finished while the question was open: the finished upload is kept, and stays on the list.
            self.session.message.emit(f"{now.file_name} finished before it could be cancelled; it is kept.")
            return
        self.session.act(row.job_id, action)
