"""Readiness checks: wait for a condition, bounded so that a hung test ends.

A bound is never what a test checks. A busy 2-core machine runs several times slower than a quiet
one, so every bound is multiplied by :data:`SLACK`; a test states the time a quiet machine needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLACK = 4
POLL = 0.02


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds * SLACK


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    errors_mean_not_yet: bool = False,
) -> None:
    """Poll ``predicate`` until it is true; with ``errors_mean_not_yet``, an exception counts as "not yet"."""
    deadline = deadline_after(timeout)
    while True:
        try:
            if predicate():
                return
        except Exception:
            if not errors_mean_not_yet:
                raise
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)
