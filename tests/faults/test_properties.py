"""Properties that must hold for every input, not just the examples a person thought of (hypothesis).

* The part planner: for any size from 0 to 5 TiB and any chunk wish, under S3's limits or a server's
  narrower ones, the plan is legal (part sizes, part count, what the server's own check accepts) and
  covers every byte of the file exactly once, in order.
* The resume store: a process killed with SIGKILL at any moment while writing leaves a store that opens
  cleanly and holds exactly what the writes that returned made it, plus at most the one in flight,
  wholly or not at all.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from desktop_uploader.engine.errors import FileTooLargeError
from desktop_uploader.engine.limits import DEFAULT_LIMITS, GiB, KiB, MiB, S3Limits, TiB, layout_problem
from desktop_uploader.engine.planner import plan_parts
from desktop_uploader.engine.state import StateStore
from tests.support.logfail import FAULTS

# Faults are injected on purpose here: the retries and failures they cause are logged, and expected.
pytestmark = pytest.mark.allow_log(*FAULTS)

# ---------------------------------------------------------------------------------------------------------------
# The planner

sizes = st.one_of(
    st.integers(0, 5 * TiB),
    st.integers(0, 64 * MiB),  # small files, where the single-part and last-part edges are
    st.sampled_from([0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 50 * GiB, 5 * TiB - 1, 5 * TiB]),
    st.integers(1, 10_000).map(lambda n: n * 5 * MiB),  # exact multiples of the minimum part
)
wishes = st.one_of(
    st.integers(1, 6 * GiB),
    st.sampled_from([1, 512 * KiB, 5 * MiB - 1, 5 * MiB, 8 * MiB, 5 * GiB, 5 * GiB + 1]),
)


@st.composite
def narrowed_limits(draw: st.DrawFn) -> S3Limits:
    """What a server may advertise: only ever stricter than S3."""
    return DEFAULT_LIMITS.narrowed(
        min_part_size=draw(st.integers(5 * MiB, 256 * MiB)),
        max_part_size=draw(st.integers(5 * MiB, 5 * GiB)),
        max_parts=draw(st.integers(1, 10_000)),
        max_object_size=draw(st.integers(1, 5 * TiB)),
    )


def assert_legal_and_complete(size: int, wish: int, limits: S3Limits) -> None:
    try:
        plan = plan_parts(size, wish, limits)
    except FileTooLargeError:
        # Refused only when no legal layout exists at all.
        assert size > limits.max_object_size or size > limits.max_parts * limits.max_part_size
        return
    assert plan.file_size == size
    assert 1 <= plan.part_count <= limits.max_parts
    spans = list(plan.spans())
    assert len(spans) == plan.part_count
    assert [s.number for s in spans] == list(range(1, plan.part_count + 1))
    position = 0
    for span in spans:  # every byte exactly once, in order: no gap, no overlap
        assert span.offset == position
        position = span.end
    assert position == size
    for span in spans[:-1]:
        assert limits.min_part_size <= span.size <= limits.max_part_size
        assert span.size == plan.part_size, "parts are equal except the last"
    assert 0 < spans[-1].size <= limits.max_part_size or size == 0
    if plan.part_count > 1:
        assert spans[-1].size <= plan.part_size
        assert layout_problem(size, plan.part_count, limits) is None, "the server's own check accepts it"
    if limits.min_part_size <= wish <= limits.max_part_size and -(-size // wish) <= limits.max_parts:
        assert plan.part_size == wish or plan.part_count == 1, "a legal wish is honoured"
        assert not plan.adjustments
    elif plan.part_count > 1 and plan.part_size != wish:
        assert plan.adjustments, "every raise of the wish says why"


@settings(max_examples=400, deadline=None)
@given(size=sizes, wish=wishes)
def test_any_size_and_wish_gives_a_legal_plan_covering_every_byte_once(size: int, wish: int) -> None:
    assert_legal_and_complete(size, wish, DEFAULT_LIMITS)


@settings(max_examples=300, deadline=None)
@given(size=sizes, wish=wishes, limits=narrowed_limits())
def test_a_servers_narrower_limits_are_met_or_the_file_is_refused(size: int, wish: int, limits: S3Limits) -> None:
    assume(limits.min_part_size <= limits.max_part_size)
    assert_legal_and_complete(size, wish, limits)


# ---------------------------------------------------------------------------------------------------------------
# The resume store under kill -9

UPLOADS = ["u1", "u2", "u3"]
etags = st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda t: f'"{t}"')

operation = st.one_of(
    st.builds(
        lambda u, n, i: {"op": "create", "upload": u, "parts": n, "upload_id": i},
        st.sampled_from(UPLOADS),
        st.integers(1, 10_000),
        st.one_of(st.none(), st.text("abcdef0123456789", min_size=8, max_size=40)),
    ),
    st.builds(
        lambda u, s, m, o: {"op": "update", "upload": u, "status": s, "message": m, "offset": o},
        st.sampled_from(UPLOADS),
        st.sampled_from(["active", "paused", "failed", "abandoned"]),
        st.text(max_size=60),
        st.integers(0, 2**40),
    ),
    st.builds(
        lambda u, n, e, s: {"op": "part", "upload": u, "number": n, "etag": e, "size": s},
        st.sampled_from(UPLOADS),
        st.integers(1, 10_000),
        etags,
        st.integers(1, 5 * GiB),
    ),
    st.builds(
        lambda u, parts: {"op": "replace_parts", "upload": u, "parts": parts},
        st.sampled_from(UPLOADS),
        st.lists(
            st.tuples(st.integers(1, 10_000), etags, st.integers(1, 5 * GiB)), max_size=30, unique_by=lambda p: p[0]
        ),
    ),
    st.builds(
        lambda u, urls: {"op": "urls", "upload": u, "urls": urls},
        st.sampled_from(UPLOADS),
        st.dictionaries(
            st.integers(1, 10_000).map(str),
            st.tuples(st.just("http://127.0.0.1:9/b/k?X-Amz-Signature=feed"), st.floats(0, 2e9)),
            max_size=20,
        ),
    ),
    st.builds(lambda u: {"op": "delete", "upload": u}, st.sampled_from(UPLOADS)),
)

Model = dict[str, dict[str, Any]]


def valid_sequence(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Writes to an upload that doesn't exist (yet, or any more) become its creation, as the engine's are."""
    existing: set[str] = set()
    fixed = []
    for original in ops:
        op = original
        if op["op"] not in ("create", "update") and op["upload"] not in existing and op["op"] != "delete":
            op = {"op": "create", "upload": op["upload"], "parts": 3, "upload_id": None}
        if op["op"] == "create":
            existing.add(op["upload"])
        if op["op"] == "delete":
            existing.discard(op["upload"])
        fixed.append(op)
    return fixed


def model_after(ops: list[dict[str, Any]]) -> Model:
    state: Model = {}
    for op in ops:
        upload = op["upload"]
        if op["op"] == "create":
            state[upload] = {
                "upload_id": op["upload_id"],
                "part_count": op["parts"],
                "status": "active",
                "message": "",
                "offset": 0,
                "parts": {},
                "urls": {},
            }
        elif upload not in state:
            continue
        elif op["op"] == "update":
            state[upload].update(status=op["status"], message=op["message"], offset=op["offset"])
        elif op["op"] == "part":
            state[upload]["parts"][op["number"]] = (op["etag"], op["size"])
            state[upload]["urls"].pop(op["number"], None)  # a stored part's link is not kept
        elif op["op"] == "replace_parts":
            state[upload]["parts"] = {n: (e, s) for n, e, s in op["parts"]}
        elif op["op"] == "urls":
            state[upload]["urls"].update({int(n): (u, float(x)) for n, (u, x) in op["urls"].items()})
        elif op["op"] == "delete":
            del state[upload]
    now = time.time()  # links are read back only while they still work
    for upload in state.values():
        upload["urls"] = {n: (u, x) for n, (u, x) in upload["urls"].items() if x > now}
    return state


def read_store(path: Path) -> Model:
    store = StateStore.open(path)
    try:
        assert store.persistent and not store.notices, f"the store was set aside after the crash: {store.notices}"
        return {
            r.id: {
                "upload_id": r.upload_id,
                "part_count": r.part_count,
                "status": r.status,
                "message": r.message,
                "offset": r.chunk_offset,
                "parts": {n: (p.etag, p.size) for n, p in store.parts(r.id).items()},
                "urls": store.urls(r.id),
            }
            for r in store.unfinished()
        }
    finally:
        store.close()


def run_until_killed(path: Path, ops: list[dict[str, Any]], kill_after: int, delay: float) -> int:
    """Run the writer, SIGKILL it once ``kill_after`` writes returned (plus ``delay``); how many returned."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.state_worker", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(json.dumps(ops))
    worker.stdin.close()
    done = 0
    for line in worker.stdout:
        if line.startswith("done"):
            done = int(line.split()[1])
        if (line.startswith("ready") and kill_after == 0) or done >= kill_after:
            break
    time.sleep(delay)
    worker.send_signal(signal.SIGKILL)
    for line in worker.stdout:  # acknowledgements written before the signal landed
        if line.startswith("done"):
            done = int(line.split()[1])
    worker.wait(10)
    stderr = worker.stderr.read() if worker.stderr else ""
    assert "Traceback" not in stderr, stderr
    return done


@pytest.mark.timeout(600)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(operation, min_size=1, max_size=40).map(valid_sequence),
    kill_at=st.floats(0, 1),
    delay=st.one_of(st.just(0.0), st.floats(0, 0.01)),
)
def test_a_kill_at_any_write_leaves_the_store_consistent(
    ops: list[dict[str, Any]], kill_at: float, delay: float
) -> None:
    with tempfile.TemporaryDirectory(prefix="state-crash-") as folder:
        path = Path(folder) / "uploads.sqlite3"
        done = run_until_killed(path, ops, int(kill_at * len(ops)), delay)
        found = read_store(path)
        candidates = [model_after(ops[:done]), model_after(ops[: done + 1])]
        assert found in candidates, (
            f"after {done} of {len(ops)} writes returned, the store holds neither their result nor that of the "
            f"next one; next was {ops[done] if done < len(ops) else None}"
        )
