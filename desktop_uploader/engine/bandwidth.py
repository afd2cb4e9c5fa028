"""A bandwidth cap shared by every part of every upload: a token bucket.

Shared, because the setting is what the user wants left of their uplink, not a per-connection
figure. Waiting happens through the upload's control, so a pause is not delayed by the cap.

Fair shares: budget is taken in quanta of at most :data:`QUANTUM` bytes, each waiting its turn.
A caller that reserved a whole 4 MiB chunk at once would put every other stream's next small read
behind that debt, so one chunked upload would take most of the link from several parallel ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

QUANTUM = 64 * 1024


class TokenBucket:
    def __init__(
        self, rate: float, *, burst_seconds: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.capacity = max(self.rate * burst_seconds, 64 * 1024.0)
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = float(rate)
            self.capacity = max(self.rate * 0.25, 64 * 1024.0)

    def throttle(self, amount: int, sleep: Callable[[float], None]) -> None:
        """Wait until ``amount`` bytes may go, a quantum at a time so every stream gets its turn."""
        while amount > 0:
            piece = min(amount, QUANTUM)
            wait = self.reserve(piece)
            if wait > 0:
                sleep(wait)
            amount -= piece

    def reserve(self, amount: int) -> float:
        """Take ``amount`` bytes of budget; returns how long the caller must wait before sending them."""
        with self._lock:
            if self.rate <= 0:
                return 0.0
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= amount
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
