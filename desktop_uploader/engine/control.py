"""Pause and cancel that reach every thread of an upload within a fraction of a second.

Part bodies call :meth:`Control.check` between reads, so even a part in the middle of a 64 MiB
PUT stops promptly (the connection is dropped and the part re-sent later); sleeps between
retries wait on the same event, so a pause never has to wait out a 30 s backoff.
"""

from __future__ import annotations

import threading

from desktop_uploader.engine.errors import Interrupted

PAUSE = "pause"
CANCEL = "cancel"


class Control:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._reason = ""
        self._lock = threading.Lock()

    def request(self, reason: str) -> None:
        with self._lock:
            if self._reason != CANCEL:  # cancel wins over pause
                self._reason = reason
        self._stop.set()

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        if self._stop.is_set():
            raise Interrupted(self._reason)

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake and raise :class:`Interrupted` as soon as a stop is requested."""
        if self._stop.wait(max(0.0, seconds)):
            raise Interrupted(self._reason)
