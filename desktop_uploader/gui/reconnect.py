"""An upload that failed because the connection was lost is tried again by itself, as the link comes back.

Each part is retried a few times within about a minute (engine/retry.py); a Wi-Fi drop or a storage
that stops answering for longer failed the upload for good, and it stayed failed after the network
was back until someone pressed Retry (a network audit froze storage for 60 s). A browser uploader
resumes when the browser is online again. Here the window tries again after 10 s, 30 s, 1, 2 and 5
minutes, the row counting down ("Trying again in 25 s: …") with Retry to go at once. Only what a
lost connection or a busy server explains is tried again: a refused token or file would be refused
again. Each try resumes, sending only the parts storage lacks; a try that stores something earns
the full ladder again. The command line keeps failing with "Resume with …": a script decides.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import partial

from PySide6.QtCore import QObject, QTimer

from desktop_uploader.engine import events
from desktop_uploader.engine.ending import lost_connection

DELAYS: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0)


class Reconnector(QObject):
    """Schedules the tries; ``retry`` resumes a job (on the GUI thread), ``show`` feeds its row.

    Each try is a single-shot timer with this object as its context, so none fires once it is gone (a
    QTimer per job, holding a closure over it, crashed the test process after its owner was collected);
    a try superseded or forgotten is known by its number.
    """

    def __init__(
        self,
        retry: Callable[[str], None],
        show: Callable[[events.Event], None],
        delays: Sequence[float] = DELAYS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.retry, self.show, self.delays = retry, show, tuple(delays)
        self._tries: dict[str, int] = {}
        self._stored_at_failure: dict[str, int] = {}
        self._due: dict[str, int] = {}  # job id: the number of its one try still due
        self._numbers = itertools.count(1)

    def failed(self, event: events.Failed, stored: int) -> bool:
        """A failure: schedules the next try when a lost connection explains it; whether one was scheduled."""
        tries = self._tries.get(event.job_id, 0)
        if not (event.resumable and event.retry_helps and lost_connection(event.kind)) or tries >= len(self.delays):
            self.forget(event.job_id)
            return False
        delay = self.delays[tries]
        self._tries[event.job_id], self._stored_at_failure[event.job_id] = tries + 1, stored
        number = self._due[event.job_id] = next(self._numbers)
        QTimer.singleShot(round(delay * 1000), self, partial(self._fire, event.job_id, number))
        self.show(events.Reconnecting(event.job_id, delay))
        return True

    def progressed(self, job_id: str, stored: int) -> None:
        """Bytes stored since the last failure: the link is back, and the next loss starts the ladder afresh."""
        if stored > self._stored_at_failure.get(job_id, stored):
            self._tries.pop(job_id, None)
            self._stored_at_failure.pop(job_id, None)

    def forget(self, job_id: str) -> None:
        """Completed, cancelled, removed or given up: no try is due."""
        self._tries.pop(job_id, None)
        self._stored_at_failure.pop(job_id, None)
        self._due.pop(job_id, None)

    def _fire(self, job_id: str, number: int) -> None:
        if self._due.get(job_id) == number:
            del self._due[job_id]
            self.retry(job_id)
