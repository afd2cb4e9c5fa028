"""The one retry helper behind parts, API calls and S3 calls: attempts, quota, delays, announcements."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import (
    Interrupted,
    NetworkError,
    RejectedError,
    ServerBusyError,
    StalledError,
    UploaderError,
)
from desktop_uploader.engine.methods.multipart import PartScheduler
from desktop_uploader.engine.retry import RetryPolicy, RetryQuota, RetryRun


class Recorder:
    """Stands in for the clock: records the waits and the announcements instead of sleeping."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.announced: list[tuple[int, UploaderError, float]] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def announce(self, attempt: int, error: UploaderError, delay: float) -> None:
        self.announced.append((attempt, error, delay))


def run_with(quota: RetryQuota | None, rec: Recorder, attempts: int = 5) -> RetryRun:
    policy = RetryPolicy(attempts=attempts, base=1.0, cap=30.0, rng=lambda: 0.5)
    return RetryRun(policy, quota, announce=rec.announce, sleep=rec.sleep)


def test_a_retry_is_announced_with_its_delay_and_waited_out() -> None:
    rec = Recorder()
    run = run_with(RetryQuota(), rec)
    error = ServerBusyError("busy")
    for _ in range(2):
        run.next_attempt()
        run.backoff(error)
    assert rec.slept == [0.5, 1.0]  # half of 1 s, then half of 2 s
    assert rec.announced == [(1, error, 0.5), (2, error, 1.0)]


def test_a_retry_after_is_the_floor_of_the_announced_delay() -> None:
    rec = Recorder()
    run = run_with(None, rec)
    run.next_attempt()
    run.backoff(ServerBusyError("busy", status=503, retry_after=7))
    assert rec.slept == [7] and rec.announced[0][2] == 7


def test_a_drained_quota_raises_the_error_without_waiting() -> None:
    rec = Recorder()
    quota = RetryQuota(capacity=4, retry_cost=5)
    run = run_with(quota, rec)
    run.next_attempt()
    error = NetworkError("down")
    with pytest.raises(NetworkError) as raised:
        run.backoff(error)
    assert raised.value is error
    assert rec.slept == [] and rec.announced == [] and quota.tokens == 4


def test_a_timeout_costs_the_timeout_cost() -> None:
    rec = Recorder()
    quota = RetryQuota(capacity=100, retry_cost=5, timeout_cost=10)
    run = run_with(quota, rec)
    run.next_attempt()
    run.backoff(StalledError("stalled"))
    run.next_attempt()
    run.backoff(NetworkError("reset"))
    assert run.spent == 15 and quota.tokens == 85


def test_a_success_refunds_what_its_retries_spent() -> None:
    rec = Recorder()
    quota = RetryQuota(capacity=100, retry_cost=5, timeout_cost=10)
    run = run_with(quota, rec)
    run.next_attempt()
    run.backoff(StalledError("stalled"))
    run.next_attempt()
    run.succeeded()
    assert quota.tokens == 100
    assert run.attempt == 2


def test_a_first_try_success_earns_a_token() -> None:
    quota = RetryQuota(capacity=100, retry_cost=5, success_refund=1)
    quota.take()
    run = run_with(quota, Recorder())
    run.next_attempt()
    run.succeeded()
    assert quota.tokens == 96


def test_a_non_transient_error_is_not_retried() -> None:
    rec = Recorder()
    quota = RetryQuota(capacity=100)
    run = run_with(quota, rec)
    run.next_attempt()
    error = RejectedError("no such thing", status=400)
    with pytest.raises(RejectedError):
        run.backoff(error)
    assert rec.slept == [] and rec.announced == [] and quota.tokens == 100


def test_the_last_attempt_is_not_retried_and_costs_nothing() -> None:
    rec = Recorder()
    quota = RetryQuota(capacity=100)
    run = run_with(quota, rec, attempts=2)
    run.next_attempt()
    run.backoff(NetworkError("reset"))
    run.next_attempt()
    with pytest.raises(NetworkError):
        run.backoff(NetworkError("reset again"))
    assert len(rec.slept) == 1 and quota.tokens == 95


def test_a_free_attempt_is_not_counted() -> None:
    rec = Recorder()
    run = run_with(None, rec, attempts=2)
    run.next_attempt()
    run.free_attempt()  # say, an expired link re-signed
    run.next_attempt()
    run.backoff(NetworkError("reset"))  # still the first counted attempt, so it may retry
    assert rec.announced[0][0] == 1


def test_without_a_quota_retries_cost_nothing() -> None:
    rec = Recorder()
    run = run_with(None, rec)
    run.next_attempt()
    run.backoff(StalledError("stalled"))
    run.succeeded()
    assert run.spent == 0 and rec.slept == [0.5]


def test_a_parts_wait_ends_once_the_upload_has_failed() -> None:
    """Another part failed for good: a part waiting to retry gives up after one slice, quietly."""
    halt = Control()
    halt.request("failed")
    slept: list[float] = []
    scheduler: Any = SimpleNamespace(ctx=SimpleNamespace(control=SimpleNamespace(sleep=slept.append)), halt=halt)
    with pytest.raises(Interrupted) as stopped:
        PartScheduler._wait(scheduler, 30.0)
    assert stopped.value.reason == "failed"
    assert slept == [0.25]  # one slice of the 30 s wait, not the whole of it
