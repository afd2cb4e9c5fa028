"""A bandwidth cap shared by every part of every upload: a token bucket.

Shared, because the setting is what the user wants left of their uplink, not a per-connection
figure. Waiting happens in small slices through the upload's control, so a pause is not delayed
by the cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
