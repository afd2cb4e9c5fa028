"""Auto concurrency: as many parts in flight as make the upload faster, and no more.

Why: one TCP stream fills a clean link, but on a lossy one each stream crawls (CUBIC halves its
window at every loss) and only parallel streams fill it: at 1 % loss and 50 ms, 1 part gets 5 % of
a 50 Mbit/s link, 6 parts 30 %. No fixed number is right for both, so Auto measures.

How: hill climbing on one number, in epochs. Each epoch runs at a level (parts in flight), lets
new connections settle for ``settle`` seconds (``first_settle`` for the first, from the first
byte), then measures the goodput over ``window`` seconds. The first probe multiplies the level by
``first_step``, later ones double it while doubling pays (goodput up ``gain_double``), then grow it
by half and must gain ``gain``. A step that does not pay is taken back, and the next probe waits
``hold`` seconds: more parts than the link needs only cost memory and fairness. The thresholds are
wide on purpose: a lossy link's goodput over a second or two wobbles by ±20 %, while a step that
helps shows as +50 % or more. A step of two or more times that paid, but added per part less than
``full_share`` of what each earlier part sent, found the link nearly full: the climb rests there
for ``full_hold`` seconds and then probes by half (doubled, parts of 8 MiB took 49-56 s on a lossy link).

A 429 or 503 from storage halves the level and holds it for ``busy_hold`` seconds. The level stays
within ``minimum`` and ``maximum`` (a memory budget: a part in flight holds one send block at most).
An upload shorter than one epoch (1 GiB on a LAN) runs at ``start``, the best fixed level there.

Bytes in flight follow the link (issue 15): on a cap extra parts only stretch each part. So:

- **Honest verdicts.** A step up is judged on the *steady goodput* (linkmeter.py): what the parts
  in flight would send at the pace of those past their first ``MATURE`` seconds. New connections'
  bursts into socket buffers made a probe on a cap look like +300 %, and slow starts (twice what a
  stream keeps up) hid a lossy link's gain. On a full link that pace falls by the step, so the
  steady goodput stays flat; on a lossy link each stream keeps its own.
- **An opening.** Until the first part is stored, at most ``opening`` parts run (a 5 MB/s link stores
  it in 3 s, not 10); past ``opening_seconds``, only while they are on course to be stored within
  ``opening_reach`` (lossy streams would take 20 s).
- **A byte budget once the link is known to be the limit** (a part stored within ``opening_reach``,
  a step up that does not pay, or a level whose parts each send little more than their share of the
  opening's pace; judged before anything is stored, it starts with the first part stored, and until then
  no probe runs: on a 2 MB/s cap bursts made 6 -> 9 -> 14 look paid). A new part starts only if what the
  parts in flight still owe, plus the new part, fits in ``horizon`` seconds of what storage
  acknowledged lately, so a part finishes within about ``horizon`` seconds and a pause risks no
  more. Levels a step up proved useful (``proven``: 24 parts on a lossy link, where 6 get 32 % and
  24 get 97 %) are exempt, and the budget's rate is re-measured every epoch. While no step up has
  paid, the parts a failed probe started are shed (the youngest first); where steps paid they run
  on (shedding cost a lossy link 2-4 %). Probes that do not pay wait twice as long each time. A
  budget on a link the streams limit shrinks itself (fewer parts store less), so when it holds the
  level back, the next probe is one part beyond it, and a part that pays as a doubling ends it.
- **A learned start** (``start_at``; part size is learned too, linkmemory.py): the level a climb to
  ``PROOF`` times its first goodput proved useful on this server within the hour runs from the first
  byte, with no opening and no probe for ``learned_hold`` seconds (the climb cost a lossy link 4.5 s of a
  minute; a probe stretches every part, and a learned level is trimmed so that parts take about 20 s).

Fed (``observe``, ``busy``) and asked (``admits``, ``target``) from outside, on an injected clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from desktop_uploader.engine.autotuning import AutoTuning, nearly_full
from desktop_uploader.engine.linkmeter import LinkMeter

log = logging.getLogger(__name__)

SHARED = 1.25  # the opening's mature parts each sending less than this times their share among the level: a cap
PROOF = 1.5  # a level is a proof for the next upload once goodput there is this many times the first probe's base


class AutoConcurrency:
    """Parts in flight for one upload; thread-safe (fed by workers, asked by the scheduler)."""

    def __init__(self, tuning: AutoTuning | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.tuning = tuning or AutoTuning()
        self.clock = clock
        self.level = max(self.tuning.minimum, min(self.tuning.maximum, self.tuning.start))
        self.history: list[tuple[float, int, str]] = []  # (time, level, why): for logs and tests
        self._lock = threading.Lock()
        tuning = self.tuning
        self._meter = LinkMeter(keep=4 * (max(tuning.first_settle, tuning.settle) + tuning.window))
        self._steady_base: float | None = None  # the steady goodput, at the level we would return to
        self._busiest = 0  # the most parts seen in flight during this epoch's window
        self._epoch: float | None = None  # starts with the first byte
        self._settle = self.tuning.first_settle
        self._baseline: float | None = None  # goodput at the level we would return to
        self._previous: int | None = None  # set while probing: the level before the step up
        self._factor = float(self.tuning.first_step)
        self._hold_until = 0.0
        self._hold = self.tuning.hold
        self._last_busy = float("-inf")
        self._stored = False  # a part of this run is stored: the opening is over
        self._widest = 0  # the most parts seen in flight
        self._proven = self.tuning.opening  # the highest level a step up proved useful
        self._proof_level = 0  # ...and reached ``PROOF`` times the first probe's goodput: where the next may start
        self._first_base: tuple[float, float | None] | None = None  # the goodput (total, steady) of the first probe
        self._link_rate: float | None = None  # set once a step up did not pay: the link is the limit
        self._budget_due = False  # the link was judged the limit before anything was stored
        self._budget_bound = float("-inf")  # when the budget last kept a part from starting
        self._past_budget: int | None = None  # while probing one part beyond the budget: the level to return to
        self._probed = False
        self._unsettled = 0  # baselines in a row without mature parts
        self._shed_to: int | None = None  # set when a probe is taken back: parts beyond it are shed
        self._opening_rate: tuple[int, float, float | None] | None = None  # parts, goodput, mature pace: opening
        self._learned = False  # the level is what an earlier upload proved, not (yet) this one: no opening

    def observe(
        self,
        sent: int,
        in_flight: int | None = None,
        *,
        stored: int = 0,
        stored_bytes: int = 0,
        mature: tuple[int, int] | None = None,
    ) -> None:
        """``sent``: bytes handed to the network so far (may dip on a retry; only growth counts);
        ``stored``, ``stored_bytes``: parts stored in this run, and their bytes; ``mature``: bytes
        sent so far by parts older than ``MATURE`` seconds, and how many such parts are in flight now."""
        now = self.clock()
        with self._lock:
            self._meter.record(now, sent, in_flight, stored_bytes, mature)
            if in_flight is not None:
                self._widest = max(self._widest, in_flight)
            if stored > 0 and not self._stored:
                self._stored = True
                self._note_opening(now)
                if self._budget_due:
                    self._start_budget(now)
            if self._epoch is None and self._meter.first_byte is None:
                return
            self._epoch = now if self._epoch is None else self._epoch
            if in_flight is not None and now >= self._epoch + self._settle:
                self._busiest = max(self._busiest, in_flight)

    def start_at(self, level: int, proof: int = 0) -> None:
        """Before the first byte: run ``level`` parts, as many as an earlier climb here proved (``proof``) or fewer."""
        with self._lock:
            if level <= self.level or self._epoch is not None:
                return
            now = self.clock()
            self._set(min(self.tuning.maximum, level), now, "the level the last upload here proved useful")
            self._proven, self._proof_level = self.level, max(self.level, proof)
            self._learned, self._probed, self._factor = True, True, 1.5
            self._hold_until = now + self.tuning.learned_hold
            self._hold = self.tuning.learned_hold  # and as long again after a probe that did not pay
            self._epoch, self._settle = None, self.tuning.first_settle  # epochs count from the first byte

    @property
    def proof(self) -> tuple[int, bool]:
        """The most parts in flight proved useful by ``PROOF`` times the goodput (0: none was; a step that paid may
        be a cap's noise, and a learned start skips the opening), and whether that is only what an earlier
        upload proved: a level stands an hour from its proof, however often it is reused."""
        with self._lock:
            return self._proof_level, self._learned

    def busy(self) -> None:
        """Storage answered 429 or 503: fewer parts, now, and stay there for a while."""
        now = self.clock()
        with self._lock:
            if now - self._last_busy < self.tuning.settle + self.tuning.window:
                return  # parts that failed together are one signal, not several
            self._last_busy = now
            self._set(max(self.tuning.minimum, self.level // 2), now, "storage busy")
            self._previous = None
            self._past_budget = None  # a probe beyond the budget ends here: the budget holds again
            self._baseline = None
            self._factor = 1.5
            self._hold_until = now + self.tuning.busy_hold
            self._proven, self._proof_level = min(self._proven, self.level), min(self._proof_level, self.level)

    def target(self) -> int:
        now = self.clock()
        with self._lock:
            self._tick(now)
            return self.level

    def admits(self, in_flight: int, owed: int, part: int) -> bool:
        """May a part of ``part`` bytes start while ``in_flight`` parts still owe ``owed`` bytes?"""
        if in_flight <= 0:
            return True  # one part always runs, however slow the link
        now = self.clock()
        with self._lock:
            self._tick(now)
            if in_flight >= self.level:
                return False
            tuning = self.tuning
            if not self._stored and not self._learned and self._opening(now, owed):
                return in_flight < tuning.opening
            rate = None if self._past_budget is not None else self._link_rate  # one part beyond it: no budget
            if rate is not None and in_flight >= self._proven and owed + part > tuning.horizon * rate:
                self._budget_bound = now
                return False
            return True

    def _opening(self, now: float, owed: int) -> bool:
        """Is the opening on? Past ``opening_seconds``, while its parts are on course, at the pace of the
        last second, to be stored within ``opening_reach`` of the first byte."""
        if self._meter.first_byte is None or now < self._meter.first_byte + self.tuning.opening_seconds:
            return True
        pace = self._meter.rate_since(now - 1.0, now) or 0.0
        return pace > 0 and now + owed / pace <= self._meter.first_byte + self.tuning.opening_reach

    def shed(self) -> int | None:
        """Once after a probe is taken back: how many parts may stay in flight (the youngest others are shed)."""
        with self._lock:
            keep, self._shed_to = self._shed_to, None
            return keep

    @property
    def budget(self) -> float | None:  # bytes the parts in flight may owe beyond the proven level, if any
        with self._lock:
            return None if self._link_rate is None else self.tuning.horizon * self._link_rate

    # -- the climb -----------------------------------------------------------------------------------------

    def _set(self, level: int, now: float, why: str) -> None:
        if level != self.level:
            log.info("Auto: %d parts in flight (was %d): %s", level, self.level, why)
        self.level = level
        self._epoch = now
        self._settle = self.tuning.settle
        self._busiest = 0
        self.history.append((now, level, why))

    def _tick(self, now: float) -> None:
        tuning = self.tuning
        if self._epoch is None:
            return
        measured_from = self._epoch + self._settle
        if now < measured_from + tuning.window:
            return
        rate = self._meter.rate_since(measured_from, now)
        if rate is None:
            return
        if self._link_rate is not None:
            self._link_rate = self._meter.acked_rate(now)  # the budget follows the link, a faster one too
        if self._busiest and self._busiest < self.level and self._fewer_parts(now, rate, measured_from):
            return
        mature = self._meter.per_mature_part(measured_from)
        if self._previous is not None:  # the verdict on a step up
            self._verdict(now, rate, self._meter.steady_rate(measured_from, now))
            return
        if rate <= 0 and not self._probed:  # parts still filling their buffers: no baseline for a first probe
            self._set(self.level, now, "nothing measured yet")
            return
        if mature is None and self._unsettled < 1:
            # No part has run long enough to show its share of the link, which is what tells a full link
            # from slow streams when the probe is judged: measure once more first.
            self._unsettled += 1
            self._set(self.level, now, "parts still settling")
            return
        self._unsettled = 0
        self._baseline = rate
        self._steady_base = self._meter.steady_rate(measured_from, now)
        if now < self._hold_until:
            self._set(self.level, now, "holding")
            return
        if self._judge_opening(now, rate, mature):
            self._set(self.level, now, "a full link: no probe before a part is stored")
            return
        self._step_up(now, f"probe from {rate / 1e6:.2f} MB/s")

    def _fewer_parts(self, now: float, rate: float, measured_from: float) -> bool:
        """Fewer parts ran than the level allows: is this epoch over without a verdict?"""
        if self._previous is None and self._budget_bound >= measured_from and now >= self._hold_until:
            self._probe_past_budget(now, rate, measured_from)
            return True
        if self._previous is not None and self._busiest >= 1.5 * self._previous:
            # The file had fewer parts left than the probe asked for: judge the step it did take.
            self.level = self._busiest
            return False
        # Fewer parts ran than allowed (the file's last, a slow start, the budget): this epoch says nothing.
        if not self._probed and rate > 0:
            self._opening_rate = (self._busiest, rate, self._meter.per_mature_part(measured_from))
        self._set(self.level, now, "not enough parts to measure")
        return True

    def _note_opening(self, now: float) -> None:
        """The first part is stored: the opening's rate, if no epoch measured it (a capped link often stores
        first), and, stored within the opening, the budget starts; within the first settle, a fast link."""
        if self._probed or self._meter.first_byte is None:
            return
        took = now - self._meter.first_byte
        if took < self.tuning.first_settle:
            return
        if self._opening_rate is None:
            self._opening_rate = (self.tuning.opening, self._meter.sent / took, None)
        if self._widest <= self.tuning.opening and took <= self.tuning.opening_reach:
            self._start_budget(now)

    def _start_budget(self, now: float) -> None:
        """The link is the limit: its rate is what it stores per second, so before anything is stored the
        budget starts with the first part stored (a budget of nothing held a misjudged lossy link for good)."""
        self._budget_due = not self._stored
        if self._stored:
            self._link_rate = self._meter.acked_rate(now)

    def _judge_opening(self, now: float, rate: float, mature: float | None) -> bool:
        """Before the first probe: did the level's parts send no more than the opening's, or each mature part
        little more than its share of the opening's parts' mature pace (caps 0.20-0.23 of it, lossy links
        0.48-2.6; bursts into buffers hide a cap in the total, slow starts inflate the opening's goodput)? Then
        the budget starts and probes add half, and until a part is stored there is none (returns True)."""
        if self._probed or self._opening_rate is None:
            return False  # no opening was measured: a fast link stored its first part within a second
        parts, opening_rate, opening_pace = self._opening_rate
        if parts >= self.level:
            return False
        pace = opening_pace or opening_rate / parts  # a short opening (stored within it) had no mature parts
        shared = mature is not None and mature < SHARED * pace * parts / self.level
        full = shared or rate < opening_rate * (1 + self.tuning.gain_double)
        mb = (rate / 1e6, parts, opening_rate / 1e6, (mature or 0.0) / 1e6, pace / 1e6, ": a full link" if full else "")
        if not self._budget_due:  # judged again each epoch until a part is stored: said once
            log.info("Auto: %d parts %.2f MB/s, the opening's %d %.2f; each %.2f, was %.2f%s", self.level, *mb)
        if full:
            self._factor = 1.5
            self._start_budget(now)
        return full and not self._stored

    def _verdict(self, now: float, rate: float, steady: float | None) -> None:
        """Did the step up pay? Judged on the steady goodput when there is one before and after (the
        total counts new parts' bursts, and slow starts in the baseline hid a lossy link's gain)."""
        tuning = self.tuning
        assert self._previous is not None and self._baseline is not None
        grew = self.level / self._previous
        back_to, self._past_budget = self._past_budget, None
        # A part beyond the budget must pay as a doubling must: one part more is a small step, and on a cap
        # the noise of a small step could end the budget.
        needed = tuning.gain_double if grew >= 2 or back_to else tuning.gain
        if steady is not None and self._steady_base:
            paid = steady >= self._steady_base * (1 + needed)
        else:
            paid = 0 < rate >= self._baseline * (1 + needed)  # nothing sent pays for nothing
        if paid:
            full = grew >= 2 and self._nearly_full(rate, steady)  # smaller steps: noise is as large as the gain
            self._baseline = rate
            self._steady_base = steady
            self._previous = None
            self._factor = 2.0 if grew >= 2 else 1.5
            self._proven = max(self._proven, self.level)
            if self._proves(rate, steady):
                self._proof_level, self._learned = max(self._proof_level, self.level), False
            self._link_rate = None  # more streams paid: they, not the link, were the limit
            self._budget_due = False
            self._hold = tuning.hold
            if not full:
                self._step_up(now, f"kept: {rate / 1e6:.2f} MB/s")
                return
            self._hold = tuning.full_hold  # and as long again after a probe from it that did not pay
            self._hold_until, self._factor = now + tuning.full_hold, 1.5  # then a probe of half as many again
            log.info("Auto: %d parts in flight nearly fill the link (%.2f MB/s): resting", self.level, rate / 1e6)
            self._set(self.level, now, f"kept: {rate / 1e6:.2f} MB/s, and the link is nearly full")
        else:
            level = self._previous
            self._previous = None
            self._factor = 1.5
            self._hold_until = now + self._hold
            self._hold = min(tuning.max_hold, self._hold * 2)
            self._start_budget(now)
            if self._proven <= tuning.opening:
                # Nothing ever paid: the link is full at a level or two, and the parts the probe started
                # would keep a minute of transfer at risk. Once more streams have paid (a lossy link),
                # parts in flight are many by necessity, and shedding would only throw bytes away.
                self._shed_to = level
            # Beyond the budget, back to the level the budget held: below it, probes would fit in the budget,
            # and on a cap, where they show nothing but noise, one of them could end it.
            self._set(back_to or level, now, f"back: {rate / 1e6:.2f} MB/s is no better")

    def _nearly_full(self, rate: float, steady: float | None) -> bool:
        """Did a step that paid add, per part, less than ``full_share`` of what each part sent before it? Then
        the link is nearly full, and a step more would mostly stretch every part and hold more bytes in flight
        (48 parts of 8 MiB took 49-56 s each on a lossy link 24 fill; a slow start at 48 made the verdict pay)."""
        assert self._baseline is not None and self._previous is not None
        readings = [(self._baseline, rate)]  # the total, and the steady goodput: either may read high
        if steady is not None and self._steady_base:
            readings.append((self._steady_base, steady))
        share = self.tuning.full_share
        return any(nearly_full(before, after, self._previous, self.level, share) for before, after in readings)

    def _proves(self, rate: float, steady: float | None) -> bool:
        """Goodput ``PROOF`` times the first probe's, steady to steady where both were measured (bursts of
        new connections inflate the total by half on a simulated lossy link)."""
        total, steady_base = self._first_base or (0.0, None)
        return steady >= PROOF * steady_base if steady and steady_base else 0 < PROOF * total <= rate

    def _probe_past_budget(self, now: float, rate: float, measured_from: float) -> None:
        """The budget, not the file, kept the parts below the level: probe with one part beyond it. On a
        cap it only shares the link and is shed; on a lossy link, where a budget shrinks itself, it pays."""
        self._baseline = rate
        self._steady_base = self._meter.steady_rate(measured_from, now)
        self._previous = self._busiest
        self._past_budget = self.level
        self._set(self._busiest + 1, now, f"probe past the budget from {rate / 1e6:.2f} MB/s")

    def _step_up(self, now: float, why: str) -> None:
        if self.level >= self.tuning.maximum:
            self._set(self.level, now, why + "; at the maximum")
            return
        bigger = max(self.level + 1, math.ceil(self.level * self._factor))
        self._first_base = (self._baseline or 0.0, self._steady_base) if not self._probed else self._first_base
        self._probed = True
        self._previous = self.level
        self._set(min(self.tuning.maximum, bigger), now, why)
