"""Tables from a results JSON: medians with min–max, and ratios against boto3.

``python -m benchmarks.report RESULTS.json`` prints the Markdown that docs/benchmarks.md quotes.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

MiB = 1 << 20


def _spread(values: list[float], fmt: str = "{:.0f}") -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def grouped(samples: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    table: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        table[sample["scenario"]][sample["contender"]].append(sample)
    return table


def loopback_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    base = [s["mbps"] for s in rows.get("boto3", []) if s["ok"]]
    base_cpu = [s["cpu_per_gib"] for s in rows.get("boto3", []) if s["ok"]]
    boto_mbps = statistics.median(base) if base else None
    boto_cpu = statistics.median(base_cpu) if base_cpu else None
    ceiling_runs = [s["mbps"] for name, runs in rows.items() if name.startswith("curl") for s in runs if s["ok"]]
    ceiling = statistics.median(ceiling_runs) if ceiling_runs else None
    has_data = any("data_mbps" in s["extra"] for runs in rows.values() for s in runs)
    head = "| Contender | MB/s | × boto3 | of ceiling | CPU-s/GiB | × boto3 CPU | Peak RSS MiB | Server CPU-s |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if has_data:
        head += " Data-phase MB/s |"
        rule += " ---: |"
    lines = [head, rule]
    for name, runs in rows.items():
        good = [s for s in runs if s["ok"]]
        failed = len(runs) - len(good)
        mbps = [s["mbps"] for s in good]
        cpu = [s["cpu_per_gib"] for s in good]
        rss = [s["max_rss"] / MiB for s in good]
        server = [s["extra"].get("server_cpu", 0.0) for s in good]
        ratio = f"{statistics.median(mbps) / boto_mbps:.2f}" if mbps and boto_mbps else "–"
        of_ceiling = f"{statistics.median(mbps) / ceiling * 100:.0f}%" if mbps and ceiling else "–"
        cpu_ratio = f"{statistics.median(cpu) / boto_cpu:.2f}" if cpu and boto_cpu else "–"
        label = name + (f" ({failed} of {len(runs)} failed)" if failed else "")
        line = (
            f"| {label} | {_spread(mbps)} | {ratio} | {of_ceiling} | {_spread(cpu, '{:.2f}')} | {cpu_ratio} | "
            f"{_spread(rss)} | {_spread(server, '{:.1f}')} |"
        )
        if has_data:
            line += f" {_spread([s['extra']['data_mbps'] for s in good if 'data_mbps' in s['extra']])} |"
        lines.append(line)
    return "\n".join(lines)


def wan_table(rows: dict[str, list[dict[str, Any]]], link_mbps: float | None) -> str:
    lines = [
        "| Contender | Goodput MB/s | % of link | Finished in bound | Parts in flight (end) | Peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in rows.items():
        good = [s for s in runs if s["extra"].get("goodput_mbps") is not None]
        rate = [s["extra"]["goodput_mbps"] for s in good]
        share = f"{statistics.median(rate) / link_mbps * 100:.0f}%" if rate and link_mbps else "–"
        finished = sum(1 for s in runs if s["ok"])
        flight = [s["extra"]["parts_in_flight"] for s in good if s["extra"].get("parts_in_flight") is not None]
        rss = [s["max_rss"] / MiB for s in good]
        lines.append(
            f"| {name} | {_spread(rate, '{:.2f}')} | {share} | {finished}/{len(runs)} | "
            f"{_spread(flight) if flight else '–'} | {_spread(rss)} |"
        )
    return "\n".join(lines)


def summary_text(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    out = []
    machine = meta.get("machine", {})
    if machine:
        out.append(
            f"Machine: {machine.get('cpu')} × {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
            f"kernel {machine.get('kernel')}, Python {machine.get('python')}; {meta.get('seconds')} s of runs."
        )
    for run in meta.get("runs", []):
        out.append(
            f"- Run {run['started']} ({run['seconds']} s, load average before {run['load_before']}, after "
            f"{run['load_after']}): {', '.join(run['scenarios'])}."
        )
    links = meta.get("links", {})
    for scenario, rows in grouped(data["samples"]).items():
        out.append(f"\n### {scenario}\n")
        if scenario.startswith("wan"):
            out.append(wan_table(rows, links.get(scenario)))
        else:
            out.append(loopback_table(rows))
    return "\n".join(out)


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(arg: str) -> dict[str, Any]:
    """``FILE.json`` or ``FILE.json:scenario,scenario``: a run, or only some of its scenarios."""
    path, _, only = arg.partition(":")
    data: dict[str, Any] = json.loads(Path(path).read_text())
    if only:
        keep = set(only.split(","))
        data["samples"] = [s for s in data["samples"] if s["scenario"] in keep]
    return data


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' results as one: loopback and WAN are run apart (the WAN needs root and an hour).

    Where two runs measured the same contender in the same scenario, the later one's samples are used.
    """
    if len(results) == 1:
        return results[0]
    runs = []
    links: dict[str, Any] = {}
    for result in results:
        meta = result.get("meta", {})
        links.update(meta.get("links", {}))
        scenarios = list(dict.fromkeys(s["scenario"] for s in result["samples"]))
        runs.append(
            {
                "started": meta.get("started"),
                "seconds": meta.get("seconds"),
                "load_before": meta.get("load_before"),
                "load_after": meta.get("load_after"),
                "scenarios": scenarios,
            }
        )
    first = results[0].get("meta", {})
    meta = {
        "machine": first.get("machine", {}),
        "seconds": round(sum(r["seconds"] or 0 for r in runs), 1),
        "runs": runs,
        "links": links,
    }
    # A later run of a contender in a scenario supersedes an earlier one (a re-run after a fix).
    latest: dict[tuple[str, str], int] = {}
    for index, result in enumerate(results):
        for sample in result["samples"]:
            latest[(sample["scenario"], sample["contender"])] = index
    samples = [
        sample
        for index, result in enumerate(results)
        for sample in result["samples"]
        if latest[(sample["scenario"], sample["contender"])] == index
    ]
    return {"meta": meta, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report RESULTS.json[:scenario,…] [MORE.json …] [--into docs/benchmarks.md]``."""
    args = argv if argv is not None else sys.argv[1:]
    into = None
    if "--into" in args:
        at = args.index("--into")
        into, args = Path(args[at + 1]), args[:at] + args[at + 2 :]
    text = summary_text(merged([_load(a) for a in args]))
    if into is not None:
        before, _, rest = into.read_text(encoding="utf-8").partition(BEGIN)
        _, _, after = rest.partition(END)
        into.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
