"""The first run can't get stuck: files added before a server is chosen ask where to go, and wait visibly.

Files can arrive with no server set up: dropped, chosen in the dialog, named on the command line,
or handed over by a second launch. All of them become rows in the model, so this watches the model,
not the ways in: when rows arrive and the window knows no server is set up, it asks once, "try it on
this computer" (the local sandbox) or "connect to my server" (the settings). The rows stay queued
and start by themselves once storage is connected (the manager pumps its queue on connecting).

Meanwhile every queued row says what it waits for, following the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QObject

from desktop_uploader.connection import Link
from desktop_uploader.engine.events import Status
from desktop_uploader.gui.dialogs import FirstRunChoice, ask_first_run
from desktop_uploader.gui.tasks import spawn

if TYPE_CHECKING:
    from desktop_uploader.gui.main_window import MainWindow

UNKNOWN = "Waiting for the connection to the server"


def wait_reason(link: Link | None, *, direct: bool = False) -> str:
    """What a queued row waits for under this connection state; "" means only for a free slot.

    ``None`` is "not known yet": the window is still connecting at startup.
    """
    if direct:
        return ""  # direct-to-S3 uploads need no upload server
    match link:
        case None:
            return UNKNOWN
        case Link.NEEDS_SETUP:
            return "Waiting for a server: choose one in Settings"
        case Link.CONNECTING:
            return "Waiting for the sandbox to start"
        case Link.FAILED:
            return "Waiting for the server to answer: check Settings"
    return ""


class FirstRun(QObject):
    """Keeps queued rows' wait reasons current, and asks the first-run question once."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.known = False  # has the window finished its first connection attempt?
        self.asked = False
        self.asking = False
        self.choices: list[FirstRunChoice] = []  # what was answered, for the log and tests
        self.session.linkChanged.connect(self._link_changed)
        self.session.model.rowsInserted.connect(self._rows_inserted)

    def reason(self) -> str:
        direct = self.session.settings.method == "direct-s3"
        return wait_reason(self.session.link if self.known else None, direct=direct)

    def _link_changed(self) -> None:
        self.known = True
        self._label_rows(0, self.session.model.rowCount() - 1)
        self._maybe_ask()

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._label_rows(first, last)
        self._maybe_ask()

    def _label_rows(self, first: int, last: int) -> None:
        model = self.session.model
        if last < first:
            return
        reason = self.reason()
        rows = model.rows()
        for row in rows[first : last + 1]:
            row.wait_reason = reason
        model.dataChanged.emit(model.index(first), model.index(last))

    def _maybe_ask(self) -> None:
        if self.asked or self.asking or not self.known or self.session.link is not Link.NEEDS_SETUP:
            return
        if self.session.settings.method == "direct-s3":
            return
        if any(r.status in (Status.QUEUED, Status.PAUSED) for r in self.session.model.rows()):
            self.asking = True
            spawn(self._ask())

    async def _ask(self) -> None:
        try:
            choice = await ask_first_run(self.window)
        finally:
            self.asking = False
            self.asked = True
        self.choices.append(choice)
        if choice is FirstRunChoice.SANDBOX:
            await self.session.use_sandbox()
        elif choice is FirstRunChoice.SERVER:
            self.window.open_settings()
        elif choice is FirstRunChoice.OWN_S3:
            self.window.open_settings(own_s3=True)
