"""Backoff with jitter and Retry-After, the retry quota, and progress that never goes backwards."""

from __future__ import annotations

from desktop_uploader.engine.errors import NetworkError, RejectedError, ServerBusyError
from desktop_uploader.engine.events import Event, Progress
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.retry import RetryPolicy, RetryQuota


def test_backoff_doubles_from_the_base_with_full_jitter_and_a_cap() -> None:
    top = RetryPolicy(attempts=10, base=1.0, cap=8.0, rng=lambda: 1.0)
    assert [top.delay(a) for a in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]  # the seed's 1 s, 2 s, 4 s
    assert RetryPolicy(rng=lambda: 0.25).delay(3) == 1.0


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(rng=lambda: 0.0)
    assert policy.delay(1, ServerBusyError("busy", status=429, retry_after=7)) == 7
    assert policy.delay(1, ServerBusyError("busy", status=429, retry_after=10_000)) == policy.retry_after_cap


def test_only_transient_errors_retry_and_only_up_to_the_attempts() -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.should_retry(1, NetworkError("x")) and policy.should_retry(2, NetworkError("x"))
    assert not policy.should_retry(3, NetworkError("x"))
    assert not policy.should_retry(1, RejectedError("no"))


def test_retry_quota_runs_dry_and_refills() -> None:
    quota = RetryQuota(capacity=10, retry_cost=5, success_refund=5)
    assert quota.take() and quota.take() and not quota.take()
    quota.refund()
    assert quota.take()


def test_confirmed_bytes_never_go_backwards_on_a_retry() -> None:
    seen: list[Event] = []
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 30, seen.append, interval=0.0, clock=lambda: now[0])
    tracker.sent(1, 10)
    tracker.sent(2, 5)
    tracker.confirmed_part(1, 10)
    now[0] = 1.0
    tracker.restarted(2)  # part 2 failed and starts again
    tracker.sent(2, 3)
    tracker.confirmed_part(2, 10)
    confirmed = [e.confirmed for e in seen if isinstance(e, Progress)]
    assert confirmed == sorted(confirmed) and confirmed[-1] == 20
    last = [e for e in seen if isinstance(e, Progress)][-1]
    assert last.in_flight == 0 and last.parts_done == 2
    assert tracker.bytes_sent == 18  # what went over the wire, retries included


def test_progress_is_coalesced() -> None:
    seen: list[Event] = []
    tracker = ProgressTracker("job", "m", 10**9, seen.append, interval=10.0)
    for _ in range(10_000):
        tracker.sent(1, 100)
    assert len(seen) <= 2


def test_a_stream_sending_big_chunks_does_not_starve_one_reading_small_blocks() -> None:
    """The chunked method takes 4 MiB at a time, part bodies 64 KiB: both must get a fair share."""
    import threading
    import time

    from desktop_uploader.engine.bandwidth import TokenBucket

    bucket = TokenBucket(20_000_000)
    sent = {"chunks": 0, "blocks": 0}
    stop = time.monotonic() + 1.5

    def stream(name: str, size: int) -> None:
        while time.monotonic() < stop:
            bucket.throttle(size, time.sleep)
            sent[name] += size

    threads = [
        threading.Thread(target=stream, args=("chunks", 4 * 1024 * 1024)),
        threading.Thread(target=stream, args=("blocks", 64 * 1024)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sent["blocks"] >= sent["chunks"] / 3, sent  # without quanta the small reader gets a few percent
    assert sum(sent.values()) <= 20_000_000 * 1.5 * 1.3 + 4 * 1024 * 1024
