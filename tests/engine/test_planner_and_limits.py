"""Part planning under S3's rules, and the layout check the server shares with it."""

from __future__ import annotations

import itertools

import pytest

from desktop_uploader.engine.errors import FileTooLargeError
from desktop_uploader.engine.limits import GiB, KiB, MiB, S3Limits, TiB, layout_problem
from desktop_uploader.engine.planner import PartPlan, plan_parts


def covers_exactly(plan: PartPlan) -> bool:
    spans = list(plan.spans())
    contiguous = all(a.end == b.offset for a, b in itertools.pairwise(spans))
    return spans[0].offset == 0 and contiguous and spans[-1].end == plan.file_size


def test_the_seeds_512_kb_wish_is_raised_to_5_mib_and_says_why() -> None:
    plan = plan_parts(64 * MiB, 512 * KiB)
    assert plan.part_size == 5 * MiB and plan.part_count == 13
    assert any("below the 5.0 MiB minimum" in note for note in plan.adjustments)
    assert covers_exactly(plan)


def test_a_50_gib_file_gets_parts_of_at_least_5_12_mib() -> None:
    plan = plan_parts(50 * GiB, 5 * MiB)
    assert plan.part_size >= 50 * GiB / 10_000 and plan.part_count <= 10_000
    assert any("more than 10,000 parts" in note for note in plan.adjustments)
    assert covers_exactly(plan)


@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1])
def test_small_and_zero_byte_files_are_one_part(size: int) -> None:
    plan = plan_parts(size, 8 * MiB)
    if size <= 8 * MiB:
        assert plan.part_count == 1 and plan.span(1).size == size


def test_parts_are_equal_except_the_last() -> None:
    plan = plan_parts(100 * MiB + 3, 8 * MiB)
    sizes = [s.size for s in plan.spans()]
    assert set(sizes[:-1]) == {8 * MiB} and 0 < sizes[-1] <= 8 * MiB and sum(sizes) == 100 * MiB + 3


def test_wishes_above_5_gib_are_capped_and_huge_files_refused() -> None:
    assert plan_parts(20 * GiB, 8 * GiB).part_size == 5 * GiB
    with pytest.raises(FileTooLargeError):
        plan_parts(6 * TiB, 8 * MiB)


def test_a_servers_narrower_limits_are_respected() -> None:
    runpod = S3Limits().narrowed(max_part_size=500 * 1000 * 1000)
    plan = plan_parts(10 * GiB, 1 * GiB, runpod)
    assert plan.part_size <= 500 * 1000 * 1000
    assert S3Limits().narrowed(min_part_size=1 * MiB).min_part_size == 5 * MiB  # never looser than S3


@pytest.mark.parametrize(
    ("size", "parts", "ok"),
    [
        (0, 1, True),
        (10, 1, True),
        (5 * MiB + 1, 2, True),
        (5 * MiB, 2, False),
        (10 * MiB, 3, False),
        (6 * GiB, 1, False),
        (6 * GiB, 2, True),
        (1, 10_001, False),
    ],
)
def test_layout_problem_matches_what_the_planner_can_produce(size: int, parts: int, ok: bool) -> None:
    assert (layout_problem(size, parts) is None) is ok
