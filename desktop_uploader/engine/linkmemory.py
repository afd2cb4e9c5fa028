"""Part size from the link the last upload measured: large parts on a fast link, small ones on a slow one.

Why: a part's size is fixed before its first byte (start takes the part count, and some stores,
Cloudflare R2 among them, want every part but the last the same size), so within one upload only
the number of parts in flight can follow the link (autotune.py). With the chunk size fixed at
8 MiB, a lossy link that needs 24 or more parts in flight held 45-68 s of the link in them after a
minute, and a pause there abandons every part that is not nearly done. A fast link pays per part
instead: a second 1 GiB upload to a local sink ran 1.4x as fast with 64 MiB parts as with 8 MiB.

So every Auto upload leaves a :class:`LinkReading` for its server (how fast one part went, and how
fast the link carried bytes), and the next upload there picks its part size from it (:func:`part_size_for`):
a part should take about ``PART_SECONDS`` at the pace parts ran, the first part stored should come
within about ``FIRST_STORED_SECONDS`` of the link's rate (a 5 MB/s cap then keeps small parts, so
progress moves and a pause loses little), and a file keeps at least ``MIN_PARTS_PER_FILE`` parts so
parallel parts still help it. S3's 5 MiB minimum wins over all of these (a lossy link's parts take
about 22 s as 24 share it, so fewer parts in flight shorten that, below), and ``MAX_PART`` bounds
what a pause or a retry can cost on a fast link. Measured in docs/benchmarks.md.

Parts in flight are chosen with the part size: a reading also keeps the level Auto's climb proved
useful there (``parts``: 24 on a lossy link), and the next upload starts at it (autotune.py), which
spares it the climb. That level stands ``MAX_AGE`` from the climb that proved it, not from its last
use, so a link that changed (a cap where a lossy link was) is climbed afresh within the hour. It is
trimmed to what the link carries of the part size in ``PART_SECONDS_MAX`` (:func:`parts_for`): once
the parts fill the link, each more only stretches every part (on a lossy 6 MB/s link, 24 parts of
5 MiB took 20-22 s each, and the 21-22 this trims to fill it to 96-98 % in 19 s).

Readings are kept in ``links.json`` (0600) in the data dir, so one CLI run per file learns too, and
forgotten after ``MAX_AGE``: a laptop that moves from office fibre to a home uplink should not send
64 MiB parts through the uplink for long. The first upload to a server, with nothing measured, is
sent in ``FIRST_PART`` parts, S3's smallest: on a lossy link its 8 MiB parts took 36-52 s where 5 MiB
ones take 20-26 s, at the same share of the link, and on a 5 MB/s cap small parts are stored sooner.
A fast link pays for that once (a first 1 GiB upload to a local sink ran 15 % slower), and every
upload after it is sized by what it measured. Uploads where the person chose a chunk size of their
own, or a preset with fixed parts in flight, keep the chunk size setting.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from desktop_uploader.engine.limits import MiB, human_bytes
from desktop_uploader.engine.private import private_dir, private_file

log = logging.getLogger(__name__)

FILE_NAME = "links.json"
PART_SECONDS = 15.0  # a part should take about this long at the pace parts ran (the 10-20 s)
FIRST_STORED_SECONDS = 1.5  # ...and no longer than this at the link's whole rate
MIN_PARTS_PER_FILE = 6  # Auto's starting level: a file of fewer parts would not fill it
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PART = 64 * MiB  # the Very large preset's parts: what the fastest links gain from (2.2x boto3 on a sink)
FIRST_PART = MIN_PART  # a first upload's parts, before anything is measured: short on any link
PART_SECONDS_MAX = 20.0  # the parts in flight share the link so that each is stored within this (the bound)
MIN_TIMED_PARTS = 4  # fewer parts say too little about a link to plan the next file by
MAX_AGE = 3600.0  # seconds a reading stands for the link


@dataclass(frozen=True)
class LinkReading:
    part_rate: float  # bytes/s, the median of what each part sent from its first byte to stored
    link_rate: float  # bytes/s the link carried from the run's first byte to its last
    at: float  # seconds since the epoch
    parts: int = 0  # parts in flight Auto's climb proved useful (0: none measured)
    parts_at: float = 0.0  # when a climb proved them, seconds since the epoch


def reading_of(part_times: list[tuple[int, float]], carried: int, seconds: float, at: float) -> LinkReading | None:
    """What a run's parts say about the link: ``part_times`` (bytes, seconds) per part, and ``carried`` bytes
    sent in ``seconds`` from the first byte to the last. None when too few parts were timed. (Bytes sent, not
    stored: a run that ends paused holds a link's 20 s in parts not stored yet, so bytes stored by the last
    part stored read a lossy link 20 % slower than it was.)"""
    rates = [size / took for size, took in part_times if took > 0]
    if len(rates) < MIN_TIMED_PARTS or seconds <= 0 or carried <= 0:
        return None
    return LinkReading(part_rate=statistics.median(rates), link_rate=carried / seconds, at=at)


def under_limit(reading: LinkReading, limit: int) -> LinkReading:
    """``reading`` as the link runs under a bandwidth limit of ``limit`` bytes/s (0: none).

    A reading is what the link carried when it was taken; a limit set since caps it. A GUI audit set
    5 MiB/s after two fast uploads: the next file went in 50 MiB parts, six of them shared the limit,
    nothing was stored for a minute, and a pause then lost all that was sent.
    """
    if limit <= 0:
        return reading
    return replace(reading, part_rate=min(reading.part_rate, limit), link_rate=min(reading.link_rate, limit))


def part_size_for(reading: LinkReading, file_size: int) -> int:
    """The part size for a file of ``file_size`` bytes on the link ``reading`` describes (whole MiB)."""
    wish = min(
        reading.part_rate * PART_SECONDS,
        reading.link_rate * FIRST_STORED_SECONDS,
        file_size / MIN_PARTS_PER_FILE,
    )
    return max(MIN_PART, min(MAX_PART, int(wish) // MiB * MiB))


def parts_for(reading: LinkReading, part_size: int) -> int:
    """Parts in flight to start the next upload at, with parts of ``part_size`` bytes: the level the last climb
    proved, but no more than share the link's rate so that each part is stored within ``PART_SECONDS_MAX``."""
    return min(reading.parts, int(PART_SECONDS_MAX * reading.link_rate / part_size))


class LinkMemory:
    """The last reading per server; thread-safe (files finish on their own threads)."""

    def __init__(self, data_dir: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.path = data_dir / FILE_NAME if data_dir is not None else None
        self.clock = clock
        self._lock = threading.Lock()
        self._readings: dict[str, LinkReading] | None = None  # read on first use, on an upload's thread

    def remember(self, server: str, reading: LinkReading) -> None:
        with self._lock:
            readings = self._loaded()
            readings[server] = reading
            self._save(readings)
        log.info(
            "Link to %s: parts ran at %s/s each, the link carried %s/s",
            server,
            human_bytes(int(reading.part_rate)),
            human_bytes(int(reading.link_rate)),
        )

    def recall(self, server: str, limit: int = 0) -> LinkReading | None:
        """The reading for ``server`` if one is recent enough to stand for the link now, under ``limit``."""
        with self._lock:
            reading = self._loaded().get(server)
        if reading is None or not 0 <= self.clock() - reading.at <= MAX_AGE:
            return None
        return under_limit(reading, limit)

    def part_size(self, server: str, file_size: int, limit: int = 0) -> int:
        """The part size for the next upload of ``file_size`` bytes to ``server`` under a bandwidth limit of
        ``limit`` bytes/s (0: none); ``FIRST_PART`` without a reading."""
        reading = self.recall(server, limit)
        if reading is None:
            log.info("Parts of %s: nothing measured of the link to %s yet", human_bytes(FIRST_PART), server)
            return FIRST_PART
        size = part_size_for(reading, file_size)
        log.info(
            "Parts of %s: the last upload here ran %s/s per part, and the link carried %s/s%s",
            human_bytes(size),
            human_bytes(int(reading.part_rate)),
            human_bytes(int(reading.link_rate)),
            f" (a bandwidth limit of {human_bytes(limit)}/s counted)" if limit > 0 else "",
        )
        return size

    def parts(self, server: str, part_size: int, limit: int = 0) -> tuple[int, int]:
        """Parts in flight of ``part_size`` bytes for the next upload to ``server``, and the proof they come from:
        what a climb there proved useful within ``MAX_AGE``, trimmed by :func:`parts_for`; (0, 0) without one. The
        proof stays as it was for the uploads after (a slow run's trim is not the link's for the hour)."""
        reading = self.recall(server, limit)
        if reading is None or not 0 <= self.clock() - reading.parts_at <= MAX_AGE:
            return 0, 0
        level = parts_for(reading, part_size)
        if level < reading.parts:
            log.info(
                "Parts in flight: %d, not the %d proved, so that each part of %s is stored within %.0f s at %s/s",
                level,
                reading.parts,
                human_bytes(part_size),
                PART_SECONDS_MAX,
                human_bytes(int(reading.link_rate)),
            )
        return level, reading.parts

    def _loaded(self) -> dict[str, LinkReading]:
        if self._readings is None:
            self._readings = self._read()
        return self._readings

    def _read(self) -> dict[str, LinkReading]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {server: LinkReading(**fields) for server, fields in data.items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # damaged: it only costs a first guess
            log.info("Link readings in %s unreadable (%s); starting without them", self.path, exc)
            return {}

    def _save(self, readings: dict[str, LinkReading]) -> None:
        if self.path is None:
            return
        try:
            private_dir(self.path.parent)
            temporary = private_file(self.path.with_name(f"{FILE_NAME}.tmp"))
            temporary.write_text(json.dumps({server: asdict(r) for server, r in readings.items()}), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:  # a full or read-only disk: the next upload plans by the chunk size instead
            log.info("Link readings not saved to %s: %s", self.path, exc)
