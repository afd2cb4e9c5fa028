"""What the link did, measured for Auto (autotune.py): the policy decides, this only counts.

Three measures, because each hides something the others show:

- **Goodput** (bytes handed to the network per second): what a level sends, bursts included.
- **Steady goodput**: what the parts in flight would send at the pace of those past their first
  ``MATURE`` seconds. A new connection's first seconds fill socket buffers and, on a lossy link, run
  a slow start that sends about twice what the stream keeps up; both vanish from this measure, so a
  step up judged on it neither looks like a gain on a full link nor hides one on a lossy link.
- **Acknowledged rate** (bytes storage confirmed per second): what the link really carries, and so
  what the byte budget is measured in; bytes sent would count socket buffers and grow with every
  part the budget lets start.

Not thread-safe on its own: the policy calls it under its lock, and gives it the time.
"""

from __future__ import annotations

from collections import deque

MATURE = 1.5  # seconds: a part this old has filled its socket buffers, and sends at its share of the link
ACKED_WINDOW = 15.0  # seconds of acknowledged bytes the budget's rate is measured over


class LinkMeter:
    """Samples of bytes sent, sent by mature parts, and stored, kept for ``keep`` seconds."""

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self.sent = 0  # bytes handed to the network so far (only growth counts: a retry may dip)
        self.first_byte: float | None = None
        self._samples: deque[tuple[float, int]] = deque()  # (time, bytes sent)
        # (time, bytes sent by mature parts, seconds mature parts ran, seconds all parts ran: summed)
        self._mature: deque[tuple[float, int, float, float]] = deque()
        self._mature_parts = 0
        self._running = 0  # parts in flight at the last sample
        self._acked: deque[tuple[float, int]] = deque()  # (time, bytes stored in this run)

    def record(
        self, now: float, sent: int, in_flight: int | None, stored_bytes: int, mature: tuple[int, int] | None
    ) -> None:
        self.sent = max(self.sent, sent)
        if mature is not None:
            ran = all_ran = 0.0
            if self._mature:  # counts at both ends: a part turning mature between them sent as one
                last, _, ran, all_ran = self._mature[-1]
                running = self._running if in_flight is None else in_flight
                ran += (self._mature_parts + mature[1]) / 2 * (now - last)
                all_ran += (self._running + running) / 2 * (now - last)
            self._mature.append((now, mature[0], ran, all_ran))
            self._trim(self._mature, now, self.keep)
            self._mature_parts = mature[1]
        if in_flight is not None:
            self._running = in_flight
        if not self._acked or stored_bytes != self._acked[-1][1]:
            self._acked.append((now, stored_bytes))
            self._trim(self._acked, now, ACKED_WINDOW)
        if self.first_byte is None:
            if self.sent <= 0:
                return
            self.first_byte = now
        if self._samples and now - self._samples[-1][0] < 0.05:
            self._samples[-1] = (self._samples[-1][0], self.sent)
        else:
            self._samples.append((now, self.sent))
        self._trim(self._samples, now, self.keep)

    @staticmethod
    def _trim(
        samples: deque[tuple[float, int]] | deque[tuple[float, int, float, float]], now: float, keep: float
    ) -> None:
        while len(samples) > 2 and now - samples[1][0] > keep:
            samples.popleft()

    def rate_since(self, start: float, now: float) -> float | None:
        """Goodput from ``start`` to ``now`` (None before the first byte)."""
        before = [s for s in self._samples if s[0] <= start]
        if not before or now - before[-1][0] <= 0:
            return None
        t0, b0 = before[-1]
        return (self.sent - b0) / (now - t0)

    def per_mature_part(self, start: float) -> float | None:
        """Bytes/s per part of the parts past their first ``MATURE`` seconds since ``start``."""
        before = [m for m in self._mature if m[0] <= start]
        if not before:
            return None
        _, b0, r0, _ = before[-1]
        _, b1, r1, _ = self._mature[-1]
        return (b1 - b0) / (r1 - r0) if r1 - r0 >= 0.5 else None

    def steady_rate(self, start: float, now: float) -> float | None:
        """Goodput since ``start`` as if every part in flight sent at the pace of the mature ones."""
        per_part = self.per_mature_part(start)
        before = [m for m in self._mature if m[0] <= start]
        if per_part is None or not before or now - before[-1][0] <= 0:
            return None
        t0, _, _, a0 = before[-1]
        return per_part * (self._mature[-1][3] - a0) / (now - t0)

    def acked_rate(self, now: float) -> float:
        """Bytes/s storage acknowledged over the last ``ACKED_WINDOW`` seconds (from the first byte)."""
        if self.first_byte is None or not self._acked:
            return 0.0
        t0, b0 = self._acked[0]
        if now - self.first_byte < ACKED_WINDOW or t0 < self.first_byte:
            t0, b0 = self.first_byte, 0
        return (self._acked[-1][1] - b0) / max(now - t0, 1e-3)
