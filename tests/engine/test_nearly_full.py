"""A climb rests where a step that paid found the link nearly full (autotune.py, ``full_share``).

On the emulated lossy WAN a first upload's probe from 6 to 24 parts paid, and Auto doubled to 48:
the new parts' slow starts made that verdict pay too, and 48 parts of 8 MiB then took 49-56 s each
(measured at the sink), with nothing stored for the first 56 s. Where the first probe brought each
new part much less than each earlier part sent, the link is nearly full, so the climb rests there.
Where streams are still the limit (every new part adds as much), it climbs on as before.
"""

from __future__ import annotations

from desktop_uploader.engine.autotune import AutoConcurrency
from desktop_uploader.engine.autotuning import AutoTuning, nearly_full
from tests.engine.test_autotune import MB, FakeClock, drive, drive_capped, lossy


def lossier(n: int) -> float:
    """A link the streams limit far past 24 parts: 0.2 MB/s each, 12 MB/s in all."""
    return min(12 * MB, 0.2 * MB * n)


def test_a_lossy_link_the_first_probe_filled_is_not_doubled() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    counts, _ = drive_capped(policy, clock, 0, 40, link=lossy)
    first = AutoTuning().start * AutoTuning().first_step
    rests = [level for _, level, why in policy.history if why.endswith("and the link is nearly full")]
    assert rests == [first], policy.history  # the first probe paid, and found the link (full at 16) nearly full
    assert max(counts) <= first * 1.5, policy.history  # the probe after the rest adds half, never doubles
    last = counts[-40:]  # the last 10 s: still full
    assert sum(lossy(n) for n in last) / len(last) >= 0.95 * 5.9 * MB, policy.history


def wan_like(n: int) -> float:
    """The emulated lossy link as a first upload met it: six streams sent 0.62 MB/s each, 24 filled it."""
    return min(5.9 * MB, 0.62 * MB * n)


def test_a_full_link_whose_older_streams_outpace_the_new_ones_rests_too() -> None:
    """On the WAN a first upload's x4 probe paid and doubled on in 2 runs of 4: 6 parts sent 3.74 MB/s and 24
    sent 5.66, so each new part added 0.11 MB/s where each earlier one had sent 0.62. The steady goodput (the
    mature parts' pace times every part) read far more: the older streams, their windows grown, kept their
    pace while the new ones were young. Either reading saying the link is nearly full is enough."""
    assert nearly_full(3.74 * MB, 5.66 * MB, 6, 24, AutoTuning().full_share)
    assert not nearly_full(1.2 * MB, 4.8 * MB, 6, 24, AutoTuning().full_share)  # each new part added its worth
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    sent = mature = 0.0
    for _ in range(160):  # 40 s: the six oldest parts keep 0.62 MB/s each, and only they count as mature
        level = policy.target()
        clock.now += 0.25
        sent += wan_like(level) * 0.25
        mature += min(level, 6) * 0.62 * MB * 0.25
        policy.observe(int(sent), level, mature=(int(mature), min(level, 6)))
    first = AutoTuning().start * AutoTuning().first_step
    rests = [level for _, level, why in policy.history if why.endswith("and the link is nearly full")]
    assert rests == [first], policy.history
    assert max(level for _, level, _ in policy.history) == first, policy.history


def test_after_resting_as_long_as_after_a_learned_start_it_probes_by_half_and_comes_back() -> None:
    """Each probe past a full link stretches every part while it lasts: the rest is as long as a learned level's."""
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    tuning = AutoTuning()
    first = tuning.start * tuning.first_step
    levels = drive(policy, clock, lossy, 10)
    rested = [at for at, level, why in policy.history if why.endswith("nearly full")]
    assert len(rested) == 1, policy.history
    levels += drive(policy, clock, lossy, rested[0] + tuning.full_hold - 1 - clock.now)
    assert max(levels) == first, policy.history  # no probe during the rest
    levels = drive(policy, clock, lossy, 40)
    probes = [(at, level) for at, level, _ in policy.history if level > first]
    assert probes and probes[0][0] - rested[0] >= tuning.full_hold, policy.history
    assert max(levels) == first * 3 // 2, policy.history
    assert policy.level == first, policy.history


def test_where_streams_are_still_the_limit_the_climb_goes_on() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    levels = drive(policy, clock, lossier, 20)
    assert max(levels) == AutoTuning().maximum, policy.history  # 6, 24, 48: each step added its parts' worth
    assert not any(why.endswith("nearly full") for _, _, why in policy.history), policy.history
