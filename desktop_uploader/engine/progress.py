"""Honest progress for one upload: confirmed bytes, bytes in flight, speed and time left.

"Confirmed" counts only parts that storage acknowledged, so it never goes backwards when a part is
retried and never counts bytes that merely sit in a socket buffer. "In flight" is what the
network has taken for parts still unacknowledged; it drops back when a part is retried. Speed is
measured over a sliding window of everything sent (retries included: that is what the link does).

A part's retry is metered only from its ``MATURE``-th second, or once it is stored (then as of the moments
its first bytes were sent): when storage
stops answering, each retry's new connection fills socket buffers in a moment and then waits, and
those few hundred KB read as a small made-up speed ("42 KiB/s · 1 h 2 min left") after every round
of retries (a network audit froze storage for a minute: 8 of 37 readings). A run that goes on with
an upload (``again``: a resume, or the window's try after a lost connection) meters every part so.

Time left is what is still to send at the current speed, plus how long storage has lately taken to
answer a part after its last byte was handed over: bytes in socket buffers, or taken by a store that
writes slower than it reads, are no nearer to stored for having been sent (a 12 GiB audit read "1 s
left" with 1.2 GiB in flight, for about 5 s).

"Sent" is confirmed plus in flight: what went on the wire for this upload, so a slow link shows
movement long before the first part is stored. "Mature" bytes are what parts sent after their first
``MATURE``: a part's first moments fill socket buffers at memory speed, so only a mature
part's rate is its share of the link, which is how Auto tells a full link from slow streams
(see autotune.py).

Events are coalesced: at most one :class:`Progress` per ``interval`` per upload, so a 10 GiB
upload emits a few thousand events, not millions; state changes always go out at once.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

from desktop_uploader.engine.events import Event, Progress
from desktop_uploader.engine.linkmeter import MATURE

WINDOW_SECONDS = 5.0
ANSWER_LAGS_KEPT = 5  # the median of the latest few: one slow answer doesn't move time left


class SpeedMeter:
    """Bytes per second over the last ``window`` seconds of a monotonically growing counter."""

    def __init__(self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, total: int) -> None:
        """A reading of the counter. The time before it first counts anything isn't the link's: a resumed
        run meters a part only from its second second, and that wait, inside the window, read as a slow
        link ("a resumed upload's time left was far too high for 2-3 s", an audit)."""
        if not self._samples and total == 0:
            return
        now = self.clock()
        if self._samples and now - self._samples[-1][0] < 0.05:
            self._samples[-1] = (self._samples[-1][0], total)
        else:
            self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window:
            self._samples.popleft()

    def backdate(self, amount: int, since: float, until: float) -> None:
        """Count ``amount`` bytes as sent evenly from ``since`` to ``until``, after the fact.

        A retry's first seconds are kept from the speed until its part is stored (see the module's docstring).
        Credited at the moment it was stored, every part's first seconds came at once: a resumed upload under
        a bandwidth cap, whose parts all started together, read about a third over the cap for five seconds
        when they were stored together, and time left fell with it (seen in the window). Counted when they
        were sent, bytes from before the window leave the speed as it was.
        """
        span = until - since
        for index, (moment, total) in enumerate(self._samples):
            if moment >= until or span <= 0:
                share = amount
            elif moment > since:
                share = int(amount * (moment - since) / span)
            else:
                continue
            self._samples[index] = (moment, total + share)

    def rate(self) -> float:
        """Bytes per second over the window ending now: from the last sample at or before its start.

        Measured from the oldest sample kept instead, a stalled link's speed only thinned out as 1/t (a
        network audit froze storage for a minute and read "34 KiB/s · 1 h 46 min left"); now a window
        with nothing sent reads 0.
        """
        if len(self._samples) < 2:
            return 0.0
        now = self.clock()
        start = now - self.window
        t0, b0 = self._samples[0]
        for moment, total in self._samples:
            if moment > start:
                break
            t0, b0 = moment, total
        span = max(now, self._samples[-1][0]) - t0
        return (self._samples[-1][1] - b0) / span if span >= 0.2 else 0.0


class ProgressTracker:
    def __init__(
        self,
        job_id: str,
        method: str,
        total: int,
        emit: Callable[[Event], None],
        *,
        parts_total: int = 0,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        again: bool = False,
    ) -> None:
        self.job_id = job_id
        self.method = method
        self.total = total
        self.parts_total = parts_total
        self.emit = emit
        self.interval = interval
        self.clock = clock
        self.confirmed = 0
        self.parts_done = 0
        self.bytes_sent = 0
        self._in_flight: dict[int, int] = {}
        self._born: dict[int, float] = {}  # when each part in flight sent its first byte
        self._last_byte: dict[int, float] = {}  # ...and its latest
        self._answer_lags: deque[float] = deque(maxlen=ANSWER_LAGS_KEPT)  # last byte handed over to stored
        self._mature_bytes = 0  # sent by parts older than MATURE (a counter: never goes back)
        self._again = again  # every part is a retry: this run goes on with an upload
        self._retried: set[int] = set()  # parts that started over in this run
        self._unmetered: dict[int, int] = {}  # a retry's first MATURE seconds, kept from the speed until stored
        self._unmetered_until: dict[int, float] = {}  # ...and when the last of them was sent
        self._metered = 0  # what the speed counts: bytes_sent less what is unmetered
        self.stored_bytes = 0  # stored in this run (the baseline excluded)
        self.parts_stored = 0  # in this run
        self.part_times: list[tuple[int, float]] = []  # (bytes, seconds from first byte to stored) per part
        self.first_sent_at: float | None = None  # this run's first byte
        self.last_sent_at: float | None = None  # ...and its latest
        self._meter = SpeedMeter(clock=clock)
        self._last_emit = float("-inf")
        self._lock = threading.Lock()

    def baseline(self, confirmed: int, parts_done: int = 0) -> None:
        """Bytes already safe in storage before this run (a resumed upload)."""
        with self._lock:
            self.confirmed = confirmed
            self.parts_done = parts_done
        self.flush()

    def sent(self, part: int, amount: int) -> None:
        with self._lock:
            now = self.clock()
            if self.first_sent_at is None:
                self.first_sent_at = now
            self.last_sent_at = now
            self._last_byte[part] = now
            self._in_flight[part] = self._in_flight.get(part, 0) + amount
            young = now - self._born.setdefault(part, now) < MATURE
            if not young:
                self._mature_bytes += amount
            self.bytes_sent += amount
            if young and (self._again or part in self._retried):
                self._unmetered[part] = self._unmetered.get(part, 0) + amount
                self._unmetered_until[part] = now
            else:
                self._metered += amount
            self._meter.add(self._metered)
            due = self.clock() - self._last_emit >= self.interval
        if due:
            self.flush()

    def restarted(self, part: int) -> None:
        with self._lock:
            self._in_flight.pop(part, None)
            self._born.pop(part, None)
            self._last_byte.pop(part, None)
            self._unmetered.pop(part, None)
            self._unmetered_until.pop(part, None)
            self._retried.add(part)

    def part_sent(self, part: int) -> int:
        """Bytes part ``part`` has handed to the network in its current attempt."""
        with self._lock:
            return self._in_flight.get(part, 0)

    def run_sent(self) -> int:
        """Bytes stored in this run plus what parts in flight have sent (dips when a part starts over)."""
        with self._lock:
            return self.stored_bytes + sum(self._in_flight.values())

    def mature(self) -> tuple[int, int]:
        """Bytes sent so far by parts past their first MATURE seconds, and how many such parts are in flight."""
        with self._lock:
            now = self.clock()
            return self._mature_bytes, sum(1 for born in self._born.values() if now - born >= MATURE)

    def confirmed_part(self, part: int, size: int) -> None:
        with self._lock:
            now = self.clock()
            self._in_flight.pop(part, None)
            born = self._born.pop(part, None)
            if born is not None:
                self.part_times.append((size, now - born))
            last_byte = self._last_byte.pop(part, None)
            if last_byte is not None:
                self._answer_lags.append(now - last_byte)
            unmetered = self._unmetered.pop(part, 0)
            until = self._unmetered_until.pop(part, now)
            if unmetered:  # stored: they did cross the link, back when they were sent
                self._metered += unmetered
                self._meter.backdate(unmetered, born if born is not None else until, until)
            self._meter.add(self._metered)
            self.confirmed += size
            self.parts_done += 1
            self.stored_bytes += size
            self.parts_stored += 1
            due = now - self._last_emit >= self.interval
        if due:
            self.flush()

    def advance_to(self, confirmed: int) -> None:
        """For sequential methods whose server reports an absolute offset."""
        with self._lock:
            moved = max(0, confirmed - self.confirmed)
            self.bytes_sent += moved
            self._metered += moved
            self.confirmed = max(self.confirmed, confirmed)
            self._meter.add(self._metered)
        self.flush()

    def speed(self) -> float:
        with self._lock:
            return self._meter.rate()

    def snapshot(self) -> Progress:
        with self._lock:
            speed = self._meter.rate()
            remaining = max(0, self.total - self.confirmed)
            in_flight = min(sum(self._in_flight.values()), remaining)
            # Time left counts down what is still to send: by what is stored, it stood still while a part
            # was on the wire and jumped when it landed (16 MiB parts at 1 MiB/s: 16 s frozen, a GUI audit's
            # finding). With everything sent and not yet stored it counts down storage's usual answer
            # time, and past that says nothing rather than "0 s".
            to_send = remaining - in_flight
            lag = statistics.median(self._answer_lags) if self._answer_lags else None
            if remaining == 0:
                eta: float | None = 0.0
            elif to_send > 0:
                eta = to_send / speed + (lag or 0.0) if speed > 0 else None
            else:
                since = self.clock() - self.last_sent_at if self.last_sent_at is not None else 0.0
                eta = lag - since if lag is not None and lag > since else None
            return Progress(
                job_id=self.job_id,
                method=self.method,
                confirmed=self.confirmed,
                in_flight=in_flight,
                total=self.total,
                speed=speed,
                eta=eta,
                parts_done=self.parts_done,
                parts_total=self.parts_total,
                parts_in_flight=len(self._in_flight),
                sent=self.confirmed + in_flight,
            )

    def flush(self) -> None:
        with self._lock:
            self._last_emit = self.clock()
        self.emit(self.snapshot())

    def tick(self) -> None:
        """A snapshot when none went out for a second: events come as bytes move, so on a stalled link the
        speed and time left stood still at their last values instead of falling to nothing."""
        with self._lock:
            due = self.clock() - self._last_emit >= 1.0
        if due:
            self.flush()
