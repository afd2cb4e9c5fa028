"""The fault × outcome matrix of a seeded run, as Markdown, from the JSON lines the run wrote.

FAULTS_REPORT=/tmp/faults.jsonl .venv/bin/pytest -m longrun tests/faults/test_seeds.py
.venv/bin/python -m tests.faults.report /tmp/faults.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from desktop_uploader.engine.settings import AUTO_CONCURRENCY
from tests.faults.scenario import scenario

COLUMNS = (
    "stored",
    "clear error → resumed, stored",
    "clear error → stored after a fault-free resume",
    "clear error → discarded",
    "killed → resumed, stored",
    "killed → stored after a fault-free resume",
    "killed → discarded",
    "VIOLATION",
)
SHORT = {
    "stored": "stored at once",
    "clear error → resumed, stored": "error → resume → stored",
    "clear error → stored after a fault-free resume": "error → 2nd resume (faults off) → stored",
    "clear error → discarded": "error → discarded, nothing left",
    "killed → resumed, stored": "kill -9 → resume → stored",
    "killed → stored after a fault-free resume": "kill -9 → 2nd resume (faults off) → stored",
    "killed → discarded": "kill -9 → discarded, nothing left",
    "VIOLATION": "**violation**",
}


def load(path: Path) -> list[dict[str, Any]]:
    runs: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            run = json.loads(line)
            runs[run["seed"]] = run  # a re-run of a seed replaces its earlier line
    return [runs[seed] for seed in sorted(runs)]


def matrix(runs: list[dict[str, Any]]) -> str:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        kinds = list(run["fired_kinds"]) or ["(no fault fired)"]
        if run["killed"]:
            kinds.append("kill -9: " + run["killed"].split(":")[0])
        for kind in kinds:
            rows[kind][run["outcome"]] += 1
    used = [c for c in COLUMNS if any(r[c] for r in rows.values())]
    lines = ["| Fault (seeds where it fired) | Seeds | " + " | ".join(SHORT[c] for c in used) + " |"]
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in used) + " |")
    for kind in sorted(rows):
        counts = rows[kind]
        lines.append(f"| {kind} | {sum(counts.values())} | " + " | ".join(str(counts[c] or "") for c in used) + " |")
    totals = Counter(run["outcome"] for run in runs)
    lines.append(
        "| **all seeds** | **" + str(len(runs)) + "** | " + " | ".join(f"**{totals[c]}**" for c in used) + " |"
    )
    return "\n".join(lines)


def summary(runs: list[dict[str, Any]]) -> str:
    seconds = [run["seconds"] for run in runs]
    modes = Counter(run["mode"] for run in runs)
    methods = Counter(run["method"] for run in runs)
    servers = Counter(run.get("server", "full") for run in runs)
    owed = sum(1 for run in runs if any("owed abort" in note for note in run["notes"]))
    leftovers = sum(1 for run in runs if any("lost starts" in note for note in run["notes"]))
    auto = sum(1 for run in runs if scenario(run["seed"]).concurrency == AUTO_CONCURRENCY)
    fired = sum(len(run["faults"]) for run in runs)
    failing = [run for run in runs if run["violations"]]
    text = [
        f"{len(runs)} seeds ({modes['engine']} in-process engine, {modes['cli']} real CLI with kill -9), "
        f"methods {dict(methods)}, servers {dict(servers)}, Auto concurrency in {auto}; "
        f"owed aborts kept by other sessions in {owed}, lost starts reported by a seed server in {leftovers}; "
        f"{fired} faults fired; "
        f"{sum(seconds):.0f} s in all, median {statistics.median(seconds):.1f} s, slowest {max(seconds):.1f} s.",
    ]
    copies = [run["seed"] for run in runs if any("copies" in note for note in run["notes"])]
    if copies:
        text.append(f"Seeds that stored more than one complete copy: {copies}.")
    if failing:
        text.append("Violations (reproduce with the seed):")
        text += [f"- seed {run['seed']}: " + "; ".join(run["violations"]) for run in failing]
    else:
        text.append("No violations.")
    return "\n".join(text)


def main(argv: list[str]) -> int:
    runs = load(Path(argv[1]))
    if "--min-seed" in argv:
        lowest = int(argv[argv.index("--min-seed") + 1])
        runs = [run for run in runs if run["seed"] >= lowest]
    print(summary(runs))
    print()
    print(matrix(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
