"""Parts in flight start where the last climb to a server proved useful (autotune.py, linkmemory.py).

First on a simulated lossy link and clock: a learned start runs its parts from the first byte and
fills the link in the seconds a fresh climb spends getting there. Then end to end, with the real
engine, API and SeaweedFS behind a counting proxy: a reading in ``links.json`` starts the upload
at its level, the file arrives whole, and the level keeps the time of the climb that proved it, so
it is climbed afresh within the hour however often it is reused.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.autotune import AutoConcurrency
from desktop_uploader.engine.autotuning import AutoTuning
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.linkmemory import (
    FILE_NAME,
    MAX_AGE,
    MIN_PART,
    PART_SECONDS_MAX,
    LinkMemory,
    LinkReading,
    parts_for,
)
from desktop_uploader.engine.settings import Settings
from tests.engine.test_autotune import FakeClock, drive, drive_capped, lossy
from tests.support.api_servers import api_server
from tests.support.capped_link import assert_stored_once
from tests.support.proxy import Proxy

LINK = 5.9e6  # the simulated lossy link's bytes/s (tests/engine/test_autotune.py)
LEARNED = 24
TRIMMED = 22  # 22 parts of 5 MiB share 5.9 MB/s so that each takes 19.5 s; 24 would take 21.3 s


def first_seconds_share(policy: AutoConcurrency, clock: FakeClock, seconds: float) -> float:
    """What share of the lossy link the parts in flight filled over the first ``seconds``."""
    counts, _ = drive_capped(policy, clock, 0, seconds, link=lossy)
    return sum(lossy(n) * 0.25 for n in counts) / (LINK * seconds)


def test_a_learned_level_fills_a_lossy_link_from_the_first_byte() -> None:
    clock = FakeClock()
    fresh = first_seconds_share(AutoConcurrency(clock=clock), clock, 10)
    clock = FakeClock()
    learned = AutoConcurrency(clock=clock)
    learned.start_at(LEARNED)
    share = first_seconds_share(learned, clock, 10)
    assert share >= 0.99, share  # no opening: its 24 parts run at once, past the 16 that fill the link
    assert fresh <= 0.8, fresh  # the climb: two parts, then six, then the probe to 24
    assert learned.history[0][1:] == (LEARNED, "the level the last upload here proved useful")


def test_a_learned_level_holds_before_it_probes_and_says_whose_proof_it_is() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    policy.start_at(LEARNED)
    assert policy.proof == (LEARNED, True)
    levels = drive(policy, clock, lossy, AutoTuning().learned_hold + 10)
    assert set(levels[: int((AutoTuning().learned_hold - 1) / 0.25)]) == {LEARNED}
    probes = [level for _, level, why in policy.history if why.startswith("probe")]
    assert probes == [36], policy.history  # half as many again, not four times: the level is known
    assert policy.level == LEARNED  # the link was full: the probe did not pay
    assert policy.proof == (LEARNED, True)  # still the earlier upload's proof, with its time


def test_a_climb_that_fills_a_lossy_link_is_a_proof_of_this_uploads_own() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    drive_capped(policy, clock, 0, 30, link=lossy, burst=2 * MiB)
    level, learned = policy.proof
    # The climb took half-steps here (6, 9, 14, 21), as real lossy runs often do: each paid, and together
    # they more than doubled the goodput.
    assert level >= 14 and not learned, policy.history


def test_on_a_noisy_cap_a_step_that_pays_by_chance_is_no_proof_for_the_next_upload() -> None:
    """A learned start skips the opening, so a cap must never teach one: with +-30 % noise a probe from 6 to
    9 parts pays in a few of 60 seeds, but no level reaches 1.5x the goodput of the first probe's base."""
    lucky = 0
    for seed in range(60):
        rng = random.Random(seed)
        clock = FakeClock()
        policy = AutoConcurrency(clock=clock)
        drive_capped(policy, clock, 0, 120, link=lambda n, rng=rng: 5e6 * rng.uniform(0.7, 1.3), burst=3 * MiB)
        lucky += any(why.startswith("kept") for _, _, why in policy.history)
        assert policy.proof == (0, False), (seed, policy.history)
    assert lucky >= 1  # else this test shows nothing: the noise must let some step pay


def test_a_smaller_step_that_pays_leaves_the_earlier_proof_and_its_time() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    policy.start_at(6 + 2)  # less than the simulated lossy link needs (16): the probe after the hold pays
    drive(policy, clock, lossy, AutoTuning().learned_hold + 10)
    assert policy.level >= 12, policy.history
    assert policy.proof == (8, True)


@pytest.mark.parametrize("level", [1, AutoTuning().start])
def test_a_learned_level_no_higher_than_the_start_changes_nothing(level: int) -> None:
    policy = AutoConcurrency(clock=FakeClock())
    policy.start_at(level)
    assert policy.level == AutoTuning().start and policy.history == []
    assert policy.proof == (0, False)


def test_a_learned_level_comes_too_late_once_the_first_byte_is_sent() -> None:
    clock = FakeClock()
    policy = AutoConcurrency(clock=clock)
    policy.observe(64 * 1024, 2)
    policy.start_at(LEARNED)
    assert policy.level == AutoTuning().start


def test_a_level_stands_an_hour_from_the_climb_that_proved_it(tmp_path: Path) -> None:
    clock = FakeClock()
    memory = LinkMemory(tmp_path, clock=clock)
    memory.remember("server-a", LinkReading(250_000, 5_900_000, at=clock.now, parts=24, parts_at=clock.now - 600))
    assert memory.parts("server-a", MIN_PART) == (TRIMMED, LEARNED)
    clock.now += MAX_AGE - 600 + 1  # the reading itself is still recent, but the climb is more than an hour old
    assert memory.recall("server-a") is not None
    assert memory.parts("server-a", MIN_PART) == (0, 0)
    assert memory.parts("server-b", MIN_PART) == (0, 0)


@pytest.mark.parametrize(
    ("link_rate", "part_size", "level"),
    [
        (LINK, MIN_PART, TRIMMED),  # a lossy link: 24 proved, but 22 fill it with parts stored within 20 s
        (7e6, MIN_PART, LEARNED),  # a faster one: all 24 proved parts are stored within 20 s
        (100e6, 64 * MiB, LEARNED),  # a fast link with large parts: the same
        (1.5e6, MIN_PART, 5),  # a slow link: fewer than Auto's start, which start_at then keeps
        (LINK, 64 * MiB, 1),  # a chunk size of the person's own on a lossy link: Auto climbs as on a first upload
    ],
)
def test_a_learned_level_is_trimmed_so_each_part_is_stored_within_the_bound(
    link_rate: float, part_size: int, level: int
) -> None:
    reading = LinkReading(250_000, link_rate, at=0, parts=LEARNED, parts_at=0)
    assert parts_for(reading, part_size) == level
    if level < LEARNED:  # each part of the level within the bound at the link's rate; one more part would not be
        assert level * part_size / link_rate <= PART_SECONDS_MAX < (level + 1) * part_size / link_rate


def test_a_trimmed_level_fills_a_lossy_link_as_the_proved_one_does_and_keeps_the_proof() -> None:
    shares = []
    for level in (LEARNED, TRIMMED):
        clock = FakeClock()
        policy = AutoConcurrency(clock=clock)
        policy.start_at(level, LEARNED)
        shares.append(first_seconds_share(policy, clock, 10))
        assert policy.level == level and policy.proof == (LEARNED, True)  # a slower run's trim is not the proof
    assert shares[1] >= 0.99 * shares[0], shares
    policy.busy()  # storage said it is busy: then the proof is no more than the level it halved to
    assert policy.proof == (TRIMMED // 2, True)


def write_reading(data_dir: Path, server: str, *, parts_age: float) -> float:
    """A lossy link's reading (5 MiB parts), taken a minute ago, with 24 parts a climb proved ``parts_age`` ago."""
    now = time.time()
    parts_at = now - parts_age
    reading = {"part_rate": 250_000, "link_rate": 5_900_000, "at": now - 60, "parts": LEARNED, "parts_at": parts_at}
    (data_dir / FILE_NAME).write_text(json.dumps({server: reading}), encoding="utf-8")
    return parts_at


STARTED_AT_LEVEL = f"Auto: {TRIMMED} parts in flight (was {AutoTuning().start}): the level the last upload here"
TRIMMED_FROM_PROOF = f"Parts in flight: {TRIMMED}, not the {LEARNED} proved, so that each part of 5.0 MiB is stored"


def test_an_upload_starts_at_the_level_the_last_climb_to_its_server_proved(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sample = make_file(LEARNED * 5 * 1024 * 1024, name="learned.safetensors")
    proxy = Proxy.start(sandbox.s3_endpoint)
    with proxy, api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
        parts_at = write_reading(tmp_path, url, parts_age=600)
        engine = make_engine(Settings(method="presigned"), api_url=url)
        with caplog.at_level(logging.INFO, logger="desktop_uploader.engine"):
            job = engine.upload(sample.path)
        connections = proxy.stats.connections()
    assert job.result is not None, job.message
    assert_stored_once(s3, sandbox, job.result.s3_key, sample.sha256)
    assert TRIMMED_FROM_PROOF in caplog.text and STARTED_AT_LEVEL in caplog.text
    assert connections >= TRIMMED - 4, connections  # its parts ran at once, each on its own connection
    kept = json.loads((tmp_path / FILE_NAME).read_text(encoding="utf-8"))[url]
    # The climb's proof and time, not this upload's trimmed start: the trim follows each upload's link rate.
    assert kept["parts"] == LEARNED and kept["parts_at"] == parts_at
    assert kept["at"] > parts_at + 600 - 1  # while the rest of the reading is this upload's


def test_a_level_proved_more_than_an_hour_ago_is_climbed_afresh(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sample = make_file(48 * 1024 * 1024, name="stale.safetensors")
    with api_server(sandbox, tmp_path / "api") as url:
        parts_at = write_reading(tmp_path, url, parts_age=MAX_AGE + 60)
        engine = make_engine(Settings(method="presigned"), api_url=url)
        with caplog.at_level(logging.INFO, logger="desktop_uploader.engine.autotune"):
            job = engine.upload(sample.path)
    assert job.result is not None, job.message
    assert_stored_once(s3, sandbox, job.result.s3_key, sample.sha256)
    assert "the level the last upload here proved useful" not in caplog.text
    kept = json.loads((tmp_path / FILE_NAME).read_text(encoding="utf-8"))[url]
    assert kept["parts_at"] > parts_at + MAX_AGE  # what this upload's own climb proved, from now
