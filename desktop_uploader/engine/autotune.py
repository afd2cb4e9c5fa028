"""Auto concurrency: as many parts in flight as make the upload faster, and no more.

Why it matters: on a clean link one TCP stream fills the pipe, but on a link that loses packets
each stream crawls (loss-based congestion control such as CUBIC halves its window at every loss),
and only parallel streams fill it: measured at 1 % loss and 50 ms, 1 part gets 5 % of a 50 Mbit/s
link, 24 parts 72 %. No fixed number is right for both, so Auto measures.

How: hill climbing on one number, in epochs. Each epoch runs at a level (parts in flight), lets
new connections settle for ``settle`` seconds, then measures the goodput (bytes handed to the
network per second) over ``window`` seconds. A first epoch sets the baseline; then the level is
raised (doubled while each step pays off well, by a quarter after the first step that did not),
and the step is kept only if goodput rose by at least ``gain``. A step that does not pay is taken
back, and the next probe waits ``hold`` seconds: more parts than the link needs only cost memory
and fairness. A 429 or 503 from storage (busy, SlowDown) halves the level at once and holds it for
``busy_hold`` seconds. The level stays within ``minimum`` and ``maximum``, where ``maximum`` comes
from a memory budget: a part in flight holds at most one send block in memory.

An upload shorter than one epoch (a 1 GiB file on a LAN) runs at ``start`` throughout: that is
chosen to be as good as any fixed setting on a fast local link.

The policy is fed from the outside (``observe`` with the bytes sent so far, ``busy`` on a busy
answer) and asked ``target()`` before each part starts; the clock is injected so tests need
neither sleeps nor a network.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from desktop_uploader.engine.http import SEND_BLOCK
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import MAX_CONCURRENCY

MEMORY_BUDGET = 48 * MiB  # for the send blocks of one upload's parts in flight


@dataclass(frozen=True)
class AutoTuning:
    start: int = 4
    minimum: int = 1
    maximum: int = min(MAX_CONCURRENCY, MEMORY_BUDGET // SEND_BLOCK)
    settle: float = 1.0  # seconds after a change before measuring: new connections fill their buffers
    window: float = 2.0  # seconds of measurement per epoch
    gain: float = 0.12  # a step up is kept only if goodput rose at least this much
    hold: float = 20.0  # seconds before probing again after a step that did not pay
    busy_hold: float = 30.0  # seconds at the reduced level after a busy answer


class AutoConcurrency:
    """Parts in flight for one upload; thread-safe (fed by workers, asked by the scheduler)."""

    def __init__(self, tuning: AutoTuning | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.tuning = tuning or AutoTuning()
        self.clock = clock
        self.level = max(self.tuning.minimum, min(self.tuning.maximum, self.tuning.start))
        self.history: list[tuple[float, int, str]] = []  # (time, level, why): for logs and tests
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int]] = deque()
        self._sent = 0
        self._busiest = 0  # the most parts seen in flight during this epoch's window
        self._epoch = self.clock()
        self._baseline: float | None = None  # goodput at the level we would return to
        self._previous: int | None = None  # set while probing: the level before the step up
        self._doubling = True
        self._hold_until = 0.0
        self._last_busy = float("-inf")

    # -- inputs --------------------------------------------------------------------------------------------

    def observe(self, sent: int, in_flight: int | None = None) -> None:
        """``sent``: bytes handed to the network so far (may dip on a retry; only growth counts)."""
        now = self.clock()
        with self._lock:
            self._sent = max(self._sent, sent)
            if self._samples and now - self._samples[-1][0] < 0.05:
                self._samples[-1] = (self._samples[-1][0], self._sent)
            else:
                self._samples.append((now, self._sent))
            while len(self._samples) > 2 and now - self._samples[1][0] > 4 * (self.tuning.settle + self.tuning.window):
                self._samples.popleft()
            if in_flight is not None and now >= self._epoch + self.tuning.settle:
                self._busiest = max(self._busiest, in_flight)

    def busy(self) -> None:
        """Storage answered 429 or 503: fewer parts, now, and stay there for a while."""
        now = self.clock()
        with self._lock:
            if now - self._last_busy < self.tuning.settle + self.tuning.window:
                return  # parts that failed together are one signal, not several
            self._last_busy = now
            self._set(max(self.tuning.minimum, self.level // 2), now, "storage busy")
            self._previous = None
            self._baseline = None
            self._doubling = False
            self._hold_until = now + self.tuning.busy_hold

    # -- output --------------------------------------------------------------------------------------------

    def target(self) -> int:
        now = self.clock()
        with self._lock:
            self._tick(now)
            return self.level

    # -- the climb -----------------------------------------------------------------------------------------

    def _rate_since(self, start: float, now: float) -> float | None:
        before = [s for s in self._samples if s[0] <= start]
        if not before or now - before[-1][0] <= 0:
            return None
        t0, b0 = before[-1]
        return (self._sent - b0) / (now - t0)

    def _set(self, level: int, now: float, why: str) -> None:
        self.level = level
        self._epoch = now
        self._busiest = 0
        self.history.append((now, level, why))

    def _tick(self, now: float) -> None:
        tuning = self.tuning
        measured_from = self._epoch + tuning.settle
        if now < measured_from + tuning.window:
            return
        rate = self._rate_since(measured_from, now)
        if rate is None:
            return
        if self._busiest and self._busiest < self.level:
            # Fewer parts were running than allowed (the file's last parts, or a slow start): this
            # epoch says nothing about the level. Measure again.
            self._set(self.level, now, "not enough parts to measure")
            return
        if self._previous is not None:  # the verdict on a step up
            assert self._baseline is not None
            if rate >= self._baseline * (1 + tuning.gain):
                self._doubling = self._doubling and rate >= self._baseline * 1.5
                self._baseline = rate
                self._previous = None
                self._step_up(now, f"kept: {rate / 1e6:.2f} MB/s")
            else:
                level = self._previous
                self._previous = None
                self._doubling = False
                self._hold_until = now + tuning.hold
                self._set(level, now, f"back: {rate / 1e6:.2f} MB/s is no better")
            return
        self._baseline = rate
        if now < self._hold_until:
            self._set(self.level, now, "holding")
            return
        self._step_up(now, f"probe from {rate / 1e6:.2f} MB/s")

    def _step_up(self, now: float, why: str) -> None:
        if self.level >= self.tuning.maximum:
            self._set(self.level, now, why + "; at the maximum")
            return
        bigger = self.level * 2 if self._doubling else self.level + max(1, math.ceil(self.level / 4))
        self._previous = self.level
        self._set(min(self.tuning.maximum, bigger), now, why)
