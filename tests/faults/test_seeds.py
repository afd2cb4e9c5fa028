"""Seeded fault runs: each seed is one upload through faulty proxies (and, for some, kill -9), checked strictly.

Reproduce one seed exactly (its scenario is printed when it fails)::

    .venv/bin/pytest "tests/faults/test_seeds.py::test_seed[17]"        # seeds 0-49, the normal suite
    .venv/bin/pytest -m longrun "tests/faults/test_seeds.py::test_long_seed[1017]"

The long run (200 seeds, skipped unless asked for) and its report::

    FAULTS_REPORT=/tmp/faults.jsonl .venv/bin/pytest -m longrun tests/faults/test_seeds.py
    .venv/bin/python -m tests.faults.report /tmp/faults.jsonl
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import record
from tests.faults.harness import World, run_seed
from tests.faults.scenario import NEXT_ENV, Scenario, scenario
from tests.support.logfail import FAULTS, OWED

# Faults are injected on purpose here: the retries, failures and owed aborts they cause are logged, and expected.
pytestmark = pytest.mark.allow_log(*FAULTS, *OWED)

SEEDS = range(50)
LONG_SEEDS = range(1000, 1200)


def check_seed(world: World, seed: int, make_file: Callable[..., Any], tmp_path: Path) -> None:
    def path_for(sc: Scenario) -> Path:
        sample: Any = make_file(sc.size, name=sc.name, seed=sc.seed)
        return Path(sample.path)

    result = run_seed(world, seed, path_for, tmp_path)
    record(result)
    print(f"seed {seed}: {result.outcome} in {result.seconds:.1f} s; phases {result.phases}; fired {result.faults}")
    assert not result.violations, (
        f"\n{scenario(seed).describe()}\nfired: {result.faults}\nkilled: {result.killed or '-'}\n"
        f"phases: {result.phases}\nviolations:\n  " + "\n  ".join(result.violations)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_seed(world: World, seed: int, make_file: Callable[..., Any], tmp_path: Path) -> None:
    check_seed(world, seed, make_file, tmp_path)


@pytest.mark.longrun
@pytest.mark.parametrize("seed", LONG_SEEDS)
def test_long_seed(world: World, seed: int, make_file: Callable[..., Any], tmp_path: Path) -> None:
    check_seed(world, seed, make_file, tmp_path)


def test_a_next_seed_talks_to_the_route(world: World, make_file: Callable[..., Any], tmp_path: Path) -> None:
    """A seed that picks "next" is served by the Next.js route, through its own API proxy, not by ours.

    Its seed is outside the normal and the long run: a seed run twice in one session meets its own object.
    """
    picked = [s for s in range(5000, 5100) if scenario(s).server == "next" and not scenario(s).cli]
    if not picked:
        pytest.skip(f"no seed picks the Next.js route ({NEXT_ENV}=0?)")
    seed = picked[0]
    check_seed(world, seed, make_file, tmp_path)
    assert world.next_server is not None and world.next_server.started is not None
    assert world.next_server.started.stats.requests("POST") > 0
    assert world.api_proxy.stats.requests() == 0 and world.seed_api_proxy.stats.requests() == 0
