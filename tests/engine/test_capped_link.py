"""Bytes in flight follow the link, and a pause keeps its work: through a bandwidth-capped link to real storage.

The cap (tests/support/capped_link.py) is a test proxy between the real client and the real sandbox
SeaweedFS that sends every part's body through one shared uplink. The client is the real engine with its
real Auto policy; what is asserted is what a user sees in the events (bytes stored, bytes sent) and in
storage (the object's sha256, one object, no multipart upload left).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_uploader.engine.events import Progress, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import AUTO_CONCURRENCY, Settings
from tests.support.api_servers import api_server
from tests.support.capped_link import assert_stored_once, slow_parts
from tests.support.proxy import Proxy
from tests.support.storage import open_multipart_uploads

PART = 5 * MiB


def test_on_a_capped_link_auto_keeps_bytes_in_flight_to_a_few_seconds_and_stores_early(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, capped: Any
) -> None:
    """Auto used to open with 6 parts and climb to 24 and 48: on 5 MB/s nothing was stored for a minute."""
    cap = 6_000_000
    link = capped(cap)
    sample = make_file(18 * PART)
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(slow_parts)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            settings = Settings(method="presigned", chunk_size=PART, concurrency=AUTO_CONCURRENCY)
            engine = make_engine(settings, api_url=url)
            job = engine.upload(sample.path, timeout=180)
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None
    assert_stored_once(s3, sandbox, job.result.s3_key, sample.sha256)
    progress = engine.of(job.id, Progress)
    assert all(p.sent == p.confirmed + p.in_flight for p in progress)
    # Until the first part was stored, little else was on its way: the opening is two parts, not six.
    opening = [p for p in progress if p.confirmed == 0 and p.sent > 0]
    assert opening, "no progress was shown before the first part was stored"
    assert max(p.parts_in_flight for p in opening) <= 2
    assert max(p.sent for p in opening) <= 2 * PART, f"{max(p.sent for p in opening) / MiB:.1f} MiB sent"
    # What a pause could lose at any moment (bytes across the link in unfinished parts) stays within the
    # issue's 10 s. It used to reach half a minute, then 9.5 s with Auto's first probe of four times the
    # parts; now the opening tells the link is full and the probe is small (5.5-5.8 s measured under load).
    assert link.peak_unfinished <= 10 * cap, f"{link.peak_unfinished / cap:.1f} s of the cap at risk"


def test_a_pause_lets_nearly_done_parts_finish_and_resume_sends_only_the_rest(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, capped: Any
) -> None:
    cap = 3_000_000
    link = capped(cap)
    sample = make_file(4 * PART)
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(slow_parts)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            settings = Settings(method="presigned", chunk_size=PART, concurrency=3)
            engine = make_engine(settings, api_url=url)
            job_id = engine.manager.add(sample.path)

            def nearly_done() -> bool:
                # Three parts at 1 MB/s each, 60 % across: 2 s to go, within the 3 s a pause waits for. Not
                # 85 %: under load the first part starts (signed alone) a second or so before the others,
                # and is stored before the last is 85 % across, so that moment never came.
                crossing = link.unfinished()
                return len(crossing) == 3 and min(crossing) >= 0.6 * PART

            engine.wait_for(nearly_done, timeout=60)
            engine.manager.pause(job_id)
            assert engine.manager.wait([job_id], 60)
            paused = engine.manager.job(job_id)
            assert paused.status == Status.PAUSED, paused.message
            kept = sum(part.size for part in engine.state.parts(job_id).values())
            assert kept == 3 * PART, f"the pause kept {kept / MiB:.1f} MiB of the three nearly-done parts"

            link.rate = 1e12  # the rest goes at loopback speed
            proxy.reset()
            engine.manager.resume(job_id)
            assert engine.manager.wait([job_id], 120)
            job = engine.manager.job(job_id)
            resent = proxy.body_bytes("PUT")
    assert job.status == Status.COMPLETED, job.message
    assert resent == sample.size - 3 * PART, "resume sent only the missing part"
    assert job.result is not None
    assert_stored_once(s3, sandbox, job.result.s3_key, sample.sha256)


def test_a_pause_stops_parts_far_from_done_at_once(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, capped: Any
) -> None:
    """The other half of the rule: a part with most of its bytes still to send is not waited for."""
    cap = 2_000_000
    link = capped(cap)
    big = 16 * MiB  # more than the socket buffers on both sides of the proxy hold
    sample = make_file(2 * big)
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(slow_parts)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            settings = Settings(method="presigned", chunk_size=big, concurrency=2)
            engine = make_engine(settings, api_url=url)
            job_id = engine.manager.add(sample.path)

            def under_way() -> bool:
                crossing = link.unfinished()
                return len(crossing) == 2 and min(crossing) >= big // 4  # 12 s to go at 1 MB/s each

            engine.wait_for(under_way, timeout=60)
            engine.manager.pause(job_id)
            assert engine.manager.wait([job_id], 60)
            paused = engine.manager.job(job_id)
            assert paused.status == Status.PAUSED
            assert engine.state.parts(job_id) == {}
            record = engine.state.get(job_id)
            assert record is not None and record.upload_id
            engine.manager.cancel(job_id)
            engine.wait_for(lambda: engine.manager.job(job_id).status == Status.CANCELLED, timeout=30)
            assert record.s3_key
            engine.wait_for(lambda: not open_multipart_uploads(s3, sandbox.bucket, record.s3_key or ""), timeout=30)


def test_a_bandwidth_limit_you_set_keeps_parts_in_flight_to_a_few_seconds_of_it(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any
) -> None:
    """A network audit set 1 MiB/s: six parts of 5 MiB shared it, and for 30 s nothing was stored for a pause
    to keep. The limit is known before the first byte: the parts may owe six seconds of it, one part at least."""
    limit = 1 * MiB
    sample = make_file(4 * PART)
    settings = Settings(
        method="presigned", chunk_size=PART, concurrency=AUTO_CONCURRENCY, bandwidth_limit=limit, files_at_once=1
    )
    engine = make_engine(settings)
    job = engine.upload(sample.path, timeout=180)
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None
    assert_stored_once(s3, sandbox, job.result.s3_key, sample.sha256)
    progress = engine.of(job.id, Progress)
    # The parts may owe 6 MiB (6 s of 1 MiB/s) when one starts: a second part only once the first owes 1 MiB.
    # What a person sees: the first part stored early, and little sent but not stored for a pause to lose.
    first_stored = next(p for p in progress if p.confirmed > 0)
    bound = 6 * limit + 2 * MiB  # 5.8 MiB measured; 14.6 MiB when six parts shared the limit
    assert first_stored.sent <= bound, f"{first_stored.sent / MiB:.1f} MiB sent before the first part was stored"
    assert max(p.in_flight for p in progress) <= bound, "sent but not stored: what a pause would lose"
