"""When to try a part again, and how long to wait first.

Backoff is full jitter, ``random() * min(cap, base * 2**(attempt-1))``, as botocore does: parallel
parts that failed together don't retry together. A server's ``Retry-After`` is a floor. The random
source and the sleep are injected so tests neither sleep nor depend on luck.

What retries: anything transient (connection errors, timeouts, 5xx, 408, 429, a bad digest).
What does not: 4xx that mean "you asked for something wrong"; those fail fast with the server's
reason. An expired presigned URL is re-signed and does not use up an attempt.

A retry quota (a token bucket per upload, as in botocore's standard mode) stops a dying network
from turning into thousands of retries. Each retry costs tokens, a timeout twice as many (it has
already held a connection for the whole read timeout); a success pays back what its own retries
cost, and a first-try success earns one token. One quota per upload is shared by its parts and its
calls to the API or to S3, so a dying network is noticed whichever request meets it.

:class:`RetryRun` is that policy and that quota applied to one request. Parts, API calls and S3
calls each keep their own loop (a part re-signs an expired link, an API call checks its control)
but all ask the same helper whether to retry, how long to wait, and what to pay back.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop_uploader.engine.errors import ServerBusyError, StalledError, TransientError, UploaderError

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
    """Shared by the requests of one upload; a retry without quota fails instead of waiting again."""

    def __init__(
        self, capacity: int = 500, retry_cost: int = 5, timeout_cost: int = 10, success_refund: int = 1
    ) -> None:
        self.capacity = capacity
        self._tokens = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        return self._tokens

    def take(self, error: BaseException | None = None) -> int:
        """Pay for one retry after ``error``; the tokens paid, or 0 when the quota can't afford it."""
        cost = self.timeout_cost if isinstance(error, StalledError) else self.retry_cost
        with self._lock:
            if self._tokens < cost:
                return 0
            self._tokens -= cost
            return cost

    def refund(self, spent: int = 0) -> None:
        """A request succeeded: back what its retries cost (``spent``), or one token if it needed none."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + (spent or self.success_refund))


# Told of a retry about to happen: the attempt that failed, its error, and the wait before the next one.
Announce = Callable[[int, UploaderError, float], None]


class RetryRun:
    """The attempts of one request, the quota they spent, and the waits between them.

    A caller loops ``next_attempt()``, tries, then on a transient failure calls ``backoff(error)``
    (which re-raises ``error`` when the policy or the quota says no) and on success ``succeeded()``.
    The loop stays the caller's, so its special cases (an expired link, a pause) stay visible there.
    Without a quota (an API call outside any upload) retries cost nothing and pay nothing back.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        quota: RetryQuota | None = None,
        *,
        announce: Announce | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.quota = quota
        self.announce = announce
        self.sleep = sleep or time.sleep  # a control's sleep, so that a pause cuts the wait short
        self.attempt = 0
        self.spent = 0

    def next_attempt(self) -> int:
        """Count the attempt about to be made; the 1-based number it is."""
        self.attempt += 1
        return self.attempt

    def free_attempt(self) -> None:
        """The attempt just made failed through no fault of the request (an expired link): don't count it."""
        self.attempt -= 1

    def backoff(self, error: UploaderError) -> None:
        """Pay for a retry after ``error``, announce it with its delay, and wait; re-raise ``error`` if it may not.

        Only a :class:`TransientError` may be retried. The policy is asked before the quota, so a
        request out of attempts leaves the quota alone.
        """
        if not self.policy.should_retry(self.attempt, error):
            raise error
        if self.quota is not None:
            cost = self.quota.take(error)
            if not cost:
                raise error
            self.spent += cost
        delay = self.policy.delay(self.attempt, error)
        if self.announce is not None:
            self.announce(self.attempt, error, delay)
        self.sleep(delay)

    def succeeded(self) -> None:
        """The request got through: the quota gets back what its retries cost (or a token, if none)."""
        if self.quota is not None:
            self.quota.refund(self.spent)
