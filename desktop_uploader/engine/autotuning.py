"""Auto concurrency's settings (autotune.py): one place for the numbers its climb is tuned by, each with its why."""

from __future__ import annotations

from dataclasses import dataclass

from desktop_uploader.engine.http import SEND_BLOCK
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import MAX_CONCURRENCY

MEMORY_BUDGET = 48 * MiB  # for the send blocks of one upload's parts in flight


@dataclass(frozen=True)
class AutoTuning:
    start: int = 6
    minimum: int = 1
    maximum: int = min(MAX_CONCURRENCY, MEMORY_BUDGET // SEND_BLOCK)
    first_settle: float = 1.0  # seconds from the first byte before the first measurement
    settle: float = 1.0  # seconds after a change before measuring: new connections fill their buffers
    window: float = 1.2  # seconds of measurement per epoch
    first_step: int = 4  # the first probe multiplies the level by this
    gain_double: float = 0.25  # a probe that doubles (or more) is kept only if goodput rose this much
    gain: float = 0.15  # a smaller step up is kept only if goodput rose at least this much
    # A step that paid (doubling or more), but whose parts each added less than this share of what each earlier
    # part sent, found the link nearly full: the climb rests there (a lossy link 24 parts fill was doubled to 48).
    full_share: float = 0.6
    hold: float = 20.0  # seconds before probing again after a step that did not pay
    busy_hold: float = 30.0  # seconds at the reduced level after a busy answer
    # After a learned start, seconds before the first probe: the level is known, and each probe from 21 to 32
    # parts of 5 MiB on a lossy link stretched the parts it shared the link with from 19 s to 23-28 s.
    learned_hold: float = 80.0
    # After a step that found the link nearly full, seconds of rest before a probe of half as many again: the
    # level fills the link as a learned one does, and each probe from 24 to 36 parts stretched a first upload's
    # parts of 5 MiB from 21 s to 24-26 s.
    full_hold: float = 80.0
    max_hold: float = 160.0  # the wait after a probe that did not pay doubles, up to this
    opening: int = 2  # parts in flight until the first part is stored...
    opening_seconds: float = 3.0  # ...or this long after the first byte (a lossy link stores nothing for 20 s)
    opening_reach: float = 3.5  # stored this soon, the opening starts the budget: it then grows 1.7x per part
    horizon: float = 6.0  # once the link is the limit: seconds of goodput the parts in flight may owe


def nearly_full(before: float, after: float, parts_before: int, parts_after: int, share: float) -> bool:
    """Did a step from ``parts_before`` to ``parts_after`` parts, whose goodput went from ``before`` to ``after``
    bytes/s, add per part less than ``share`` of what each part sent before it? Then the link is nearly full."""
    added = (after - before) / (parts_after - parts_before)
    return before > 0 and added < share * before / parts_before
