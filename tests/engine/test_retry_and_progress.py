"""Backoff with jitter and Retry-After, the retry quota, and progress that never goes backwards."""

from __future__ import annotations

import pytest

from desktop_uploader.engine.bandwidth import QUANTUM, TokenBucket
from desktop_uploader.engine.errors import NetworkError, RejectedError, ServerBusyError, StalledError
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


def test_a_timeout_costs_more_and_a_success_pays_back_what_its_retries_cost() -> None:
    """botocore's standard mode: 5 tokens a retry, 10 after a timeout; its success returns them, else +1."""
    quota = RetryQuota(capacity=30)
    assert quota.take(ServerBusyError("busy")) == 5
    assert quota.take(StalledError("stalled")) == 10
    assert quota.tokens == 15
    quota.refund(15)  # the request those retries were for got through
    assert quota.tokens == 30
    quota.take(StalledError("stalled"))
    quota.refund()  # another request, through at the first try
    assert quota.tokens == 21
    assert quota.take(StalledError("a")) and quota.take(StalledError("b")) and not quota.take(StalledError("c"))


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


def test_time_left_counts_down_while_a_part_is_on_the_wire() -> None:
    """By stored bytes alone, time left stood still for a whole part and jumped when it was stored."""
    seen: list[Event] = []
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 64, seen.append, interval=0.0, clock=lambda: now[0])
    left: list[float | None] = []
    for second in range(1, 5):  # one 16-byte part, 4 bytes a second
        now[0] = float(second)
        tracker.sent(1, 4)
        left.append(tracker.snapshot().eta)
    assert tracker.snapshot().confirmed == 0
    assert left == [None, 14.0, 13.0, 12.0]  # no speed in the first second; then 56, 52, 48 bytes at 4 a second
    now[0] = 5.0
    tracker.sent(2, 48)  # the rest, all handed to the network and none of it stored yet
    assert tracker.snapshot().eta is None, "all sent, nothing stored: no '0 s left' while it lands"
    tracker.confirmed_part(1, 16)
    tracker.confirmed_part(2, 48)
    assert tracker.snapshot().eta == 0.0


def test_time_left_counts_the_wait_for_storage_to_answer_parts_already_sent() -> None:
    """A 12 GiB audit read "1 s left" for about 5 s: 1.2 GiB were sent, and the store answered parts
    seconds after their last byte. Sent is not stored, and time left now says so."""
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 100, lambda event: None, interval=0.0, clock=lambda: now[0])
    for part in (1, 2, 3):  # 10 bytes a second; each part stored 3 s after its last byte, then the next starts
        for _ in range(2):
            now[0] += 0.5
            tracker.sent(part, 5)
        now[0] += 3.0
        tracker.confirmed_part(part, 10)
    assert tracker.snapshot().eta is not None
    now[0] += 0.5
    tracker.sent(4, 5)
    now[0] += 0.5
    tracker.sent(4, 5)
    speed = tracker.snapshot().speed
    eta = tracker.snapshot().eta
    assert speed > 0 and eta is not None
    assert eta == pytest.approx(60 / speed + 3.0), "60 bytes still to send, then the store's usual 3 s"
    now[0] += 0.1
    tracker.sent(5, 60)  # the rest handed over: the wait for the answers counts down
    assert tracker.snapshot().eta == pytest.approx(3.0)
    now[0] += 2.0
    assert tracker.snapshot().eta == pytest.approx(1.0)
    now[0] += 1.5
    assert tracker.snapshot().eta is None, "later than storage usually answers: no '0 s left'"
    tracker.confirmed_part(4, 10)
    tracker.confirmed_part(5, 60)
    assert tracker.snapshot().eta == 0.0


def test_a_stalled_link_reads_no_speed_and_no_time_left_within_the_window() -> None:
    """A network audit froze storage for a minute: the row read "34 KiB/s · 1 h 46 min left" throughout,
    the speed only thinning out, and with no bytes moving no event came to change it."""
    seen: list[Event] = []
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 10**9, seen.append, interval=0.25, clock=lambda: now[0])
    for tenth in range(1, 51):  # 5 s at 1 MB/s
        now[0] = tenth / 10
        tracker.sent(1, 100_000)
    assert 0.9e6 < tracker.snapshot().speed < 1.1e6
    now[0] = 5.5  # half a second of nothing: still the link's pace
    assert tracker.snapshot().speed > 0.8e6
    count = len(seen)
    tracker.tick()  # the scheduler's loop: no event within a second of the last
    assert len(seen) == count
    now[0] = 6.1
    tracker.tick()
    assert len(seen) == count + 1 and seen[-1].speed > 0
    now[0] = 10.6  # the window holds nothing sent
    tracker.tick()
    stalled = seen[-1]
    assert isinstance(stalled, Progress) and stalled.speed == 0.0 and stalled.eta is None
    tracker.tick()
    assert len(seen) == count + 2, "no event more than once a second"


def test_a_retry_into_stalled_storage_reads_no_speed_until_its_bytes_move_on() -> None:
    """With storage frozen, each retry's new connection filled socket buffers in a moment and then waited: the
    row read "42 KiB/s · 1 h 2 min left" after every round of retries (a network audit, 8 of 37 readings)."""
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 10**9, lambda event: None, interval=0.25, clock=lambda: now[0])
    for tenth in range(1, 21):  # 2 s at 1 MB/s
        now[0] = tenth / 10
        tracker.sent(1, 100_000)
    now[0] = 30.0  # storage stopped answering; the part timed out and starts over
    tracker.restarted(1)
    tracker.sent(1, 300_000)  # the new connection's socket buffers
    tracker.restarted(2)
    tracker.sent(2, 300_000)
    now[0] = 31.0
    assert tracker.snapshot().speed == 0.0 and tracker.snapshot().eta is None
    assert tracker.snapshot().sent == 600_000, "sent still counts them"
    for tenth in range(1, 71):  # storage answers again: part 1 goes on at 1 MB/s
        now[0] = 31.0 + tenth / 10
        tracker.sent(1, 100_000)
    flowing = tracker.snapshot().speed
    assert 0.9e6 < flowing < 1.1e6, "past its first seconds a retry counts again"
    tracker.confirmed_part(2, 300_000)  # stored: its bytes crossed the link, but at 30 s, before the window
    assert tracker.snapshot().speed == pytest.approx(flowing)


def test_a_run_that_goes_on_with_an_upload_reads_no_speed_from_its_first_moments() -> None:
    """The window tries again after a lost connection: with storage still frozen, each part's new connection
    filled its buffers and the row read a speed for five seconds at every try."""
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 10**9, lambda e: None, clock=lambda: now[0], again=True)
    for part in (1, 2, 3):
        tracker.sent(part, 300_000)
    now[0] = 1.0
    assert tracker.snapshot().speed == 0.0 and tracker.snapshot().sent == 900_000
    for tenth in range(1, 61):  # storage answers: part 1 goes on at 1 MB/s
        now[0] = 1.0 + tenth / 10
        tracker.sent(1, 100_000)
    assert 0.9e6 < tracker.snapshot().speed < 1.1e6


def test_a_resumed_upload_reads_the_links_speed_once_it_is_metered_not_the_wait_before() -> None:
    """An audit resumed an upload and its time left was far too high for 2-3 s: a resumed run meters a part
    only from its second second, and the speed was read over that wait too."""
    now = [0.0]
    total = 100 * 1000 * 1000
    tracker = ProgressTracker("job", "presigned-s3", total, lambda e: None, clock=lambda: now[0], again=True)
    for tenth in range(1, 26):  # 2.5 s at 1 MB/s; counted from 1.5 s on
        now[0] = tenth / 10
        tracker.sent(1, 100_000)
    progress = tracker.snapshot()
    assert 0.9e6 < progress.speed < 1.1e6
    assert progress.eta is not None and 85 < progress.eta < 105  # 97.5 MB still to send at 1 MB/s


def test_a_resumed_upload_under_a_cap_reads_the_cap_when_its_parts_are_stored_together() -> None:
    """A resumed upload's parts start together and, sharing a cap, are stored together. Their first seconds,
    kept from the speed until then, were credited at that moment: the row read a third over the cap and time
    left fell with it (seen in the window)."""
    now = [0.0]
    total = 100 * 1000 * 1000
    tracker = ProgressTracker("job", "presigned-s3", total, lambda e: None, clock=lambda: now[0], again=True)
    for tenth in range(1, 201):  # 20 s at a 1 MB/s cap shared by four parts of 5 MB
        now[0] = tenth / 10
        for part in (1, 2, 3, 4):
            tracker.sent(part, 25_000)
    assert tracker.snapshot().speed == pytest.approx(1e6, rel=0.02)
    for part in (1, 2, 3, 4):
        tracker.confirmed_part(part, 5_000_000)
    assert tracker.snapshot().speed == pytest.approx(1e6, rel=0.02)


def test_a_retry_stored_within_the_window_counts_its_first_seconds_where_they_were_sent() -> None:
    now = [0.0]
    tracker = ProgressTracker("job", "presigned-s3", 10**9, lambda e: None, clock=lambda: now[0], again=True)
    for tenth in range(1, 31):  # 3 s at 1 MB/s, metered from 1.5 s on
        now[0] = tenth / 10
        tracker.sent(1, 100_000)
    assert tracker.snapshot().speed == pytest.approx(1e6, rel=0.05)
    tracker.confirmed_part(1, 3_000_000)
    assert tracker.snapshot().speed == pytest.approx(1e6, rel=0.05), "3 MB in 3 s"


def test_progress_is_coalesced() -> None:
    seen: list[Event] = []
    tracker = ProgressTracker("job", "m", 10**9, seen.append, interval=10.0)
    for _ in range(10_000):
        tracker.sent(1, 100)
    assert len(seen) <= 2


def test_a_big_send_waits_a_quantum_at_a_time() -> None:
    """Fairness rests on this: a 4 MiB chunk takes its budget in 64 KiB turns, never as one debt."""
    now = [0.0]
    bucket = TokenBucket(1_000_000, clock=lambda: now[0])
    bucket.reserve(int(bucket.capacity))  # an empty bucket: every byte from here on waits
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket.throttle(4 * 1024 * 1024, sleep)
    assert len(waits) == 4 * 1024 * 1024 // QUANTUM
    assert max(waits) <= QUANTUM / 1_000_000 * 1.0001
    assert now[0] == pytest.approx(4 * 1024 * 1024 / 1_000_000)


def test_a_stream_sending_big_chunks_does_not_starve_one_reading_small_blocks() -> None:
    """The chunked method takes 4 MiB at a time, part bodies 64 KiB: both must get a fair share.

    Two streams share one bucket on a fake clock: each takes its next quantum when its last wait ends,
    as two threads calling ``throttle`` would, but in a fixed order, so the shares are exact.
    """
    now = [0.0]
    bucket = TokenBucket(20_000_000, clock=lambda: now[0])
    sizes = {"chunks": 4 * 1024 * 1024, "blocks": 64 * 1024}
    sent = dict.fromkeys(sizes, 0)
    left = dict(sizes)  # what is left of each stream's current send
    ready = [(0.0, name) for name in sizes]  # (when the stream may take its next quantum, stream)
    while ready:
        ready.sort()
        now[0], name = ready.pop(0)
        if now[0] >= 1.5:
            continue
        piece = min(left[name], QUANTUM)
        wait = bucket.reserve(piece)
        left[name] -= piece
        if not left[name]:  # the whole send went out: count it and start the next
            sent[name] += sizes[name]
            left[name] = sizes[name]
        ready.append((now[0] + wait, name))
    assert sent["blocks"] >= sent["chunks"] / 3, sent  # a 4 MiB reservation at once starves the small reader
    assert sum(sent.values()) <= 20_000_000 * 1.5 + bucket.capacity
