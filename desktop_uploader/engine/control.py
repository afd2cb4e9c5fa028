"""Pause and cancel that reach every thread of an upload within a fraction of a second.

Part bodies call :meth:`Control.check` between reads, so even a part in the middle of a 64 MiB
PUT stops promptly (the connection is dropped and the part re-sent later); sleeps between
retries wait on the same event, so a pause never has to wait out a 30 s backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from desktop_uploader.engine.errors import Interrupted, UploaderError
from desktop_uploader.engine.retry import RetryQuota

# Told of a control-plane call about to be retried: the action, the failed attempt, the error, the delay.
# (action, attempt, attempts in all, error, delay): a completion gets more tries than the settings' (api_client).
RetryListener = Callable[[str, int, int, UploaderError, float], None]

PAUSE = "pause"
CANCEL = "cancel"


class Control:
    """One run of one upload, as every request of it sees it: stop requests, its retry quota, its retry news.

    Every call an upload makes carries its Control, so the quota shared by its parts and its API or
    S3 calls lives here, and so does the listener that turns a control-plane retry into an event.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._reason = ""
        self._lock = threading.Lock()
        self.quota = RetryQuota()
        self.on_retry: RetryListener | None = None

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
