"""When to try a part again, and how long to wait first.

Backoff is full jitter, ``random() * min(cap, base * 2**(attempt-1))``, as botocore does: parallel
parts that failed together don't retry together. A server's ``Retry-After`` is a floor. The random
source and the sleep are injected so tests neither sleep nor depend on luck.

What retries: anything transient (connection errors, timeouts, 5xx, 408, 429, a bad digest).
What does not: 4xx that mean "you asked for something wrong"; those fail fast with the server's
reason. An expired presigned URL is re-signed and does not use up an attempt.

A retry quota (a token bucket per upload, as in botocore's standard mode) stops a dying network
from turning into thousands of retries: each retry costs tokens, each success earns one back.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop_uploader.engine.errors import ServerBusyError, TransientError, UploaderError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    attempts: int = 5
    base: float = 1.0
    cap: float = 30.0
    retry_after_cap: float = 120.0
    rng: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int, error: UploaderError | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        delay: float = self.rng() * ceiling
        if isinstance(error, ServerBusyError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.retry_after_cap))
        return delay

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        return isinstance(error, TransientError) and attempt < self.attempts


class RetryQuota:
    """Shared by the parts of one upload; a retry without quota fails instead of waiting again."""

    def __init__(self, capacity: int = 500, retry_cost: int = 5, success_refund: int = 1) -> None:
        self.capacity = capacity
        self._tokens = capacity
        self.retry_cost = retry_cost
        self.success_refund = success_refund
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._tokens < self.retry_cost:
                return False
            self._tokens -= self.retry_cost
            return True

    def refund(self) -> None:
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.success_refund)
