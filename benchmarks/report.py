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


PEERS = ("boto3", "s5cmd")  # the tools ratios are given against, when they ran in the same scenario


def _median_of(runs: list[dict[str, Any]], field: str) -> float | None:
    values = [s[field] for s in runs if s["ok"]]
    return statistics.median(values) if values else None


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "–"


def loopback_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    """One row per contender: medians (min–max), and ratios against each peer that ran alongside.

    A peer's columns appear only when it ran in this scenario, so a table of a run without s5cmd
    (the runs before it joined) reads as it did. Wall time is end to end, so for the small-file
    scenarios "× s5cmd" on MB/s is the inverse of the wall-time ratio.
    """
    peers = [p for p in PEERS if any(s["ok"] for s in rows.get(p, []))]
    peer_mbps = {p: _median_of(rows[p], "mbps") for p in peers}
    peer_cpu = {p: _median_of(rows[p], "cpu_per_gib") for p in peers}
    ceiling_runs = [s["mbps"] for name, runs in rows.items() if name.startswith("curl") for s in runs if s["ok"]]
    ceiling = statistics.median(ceiling_runs) if ceiling_runs else None
    has_data = any("data_mbps" in s["extra"] for runs in rows.values() for s in runs)
    head = "| Contender | Wall s | MB/s |" + "".join(f" × {p} |" for p in peers) + " of ceiling | CPU-s/GiB |"
    head += "".join(f" × {p} CPU |" for p in peers) + " Peak RSS MiB | Server CPU-s |"
    columns = 7 + 2 * len(peers)
    if has_data:
        head += " Data-phase MB/s | Start → first byte s | Last byte → exit s |"
        columns += 3
    lines = [head, "| --- |" + " ---: |" * (columns - 1)]
    for name, runs in rows.items():
        good = [s for s in runs if s["ok"]]
        failed = len(runs) - len(good)
        mbps = [s["mbps"] for s in good]
        cpu = [s["cpu_per_gib"] for s in good]
        mbps_med = statistics.median(mbps) if mbps else None
        cpu_med = statistics.median(cpu) if cpu else None
        of_ceiling = f"{mbps_med / ceiling * 100:.0f}%" if mbps_med and ceiling else "–"
        label = name + (f" ({failed} of {len(runs)} failed)" if failed else "")
        line = f"| {label} | {_spread([s['wall'] for s in good], '{:.2f}')} | {_spread(mbps)} |"
        line += "".join(f" {_ratio(mbps_med, peer_mbps[p])} |" for p in peers)
        line += f" {of_ceiling} | {_spread(cpu, '{:.2f}')} |"
        line += "".join(f" {_ratio(cpu_med, peer_cpu[p])} |" for p in peers)
        line += f" {_spread([s['max_rss'] / MiB for s in good])} |"
        line += f" {_spread([s['extra'].get('server_cpu', 0.0) for s in good], '{:.1f}')} |"
        if has_data:
            line += f" {_spread([s['extra']['data_mbps'] for s in good if 'data_mbps' in s['extra']])} |"
            for field in ("to_first_byte_s", "after_last_byte_s"):
                line += f" {_spread([s['extra'][field] for s in good if field in s['extra']], '{:.2f}')} |"
        lines.append(line)
    return "\n".join(lines)


def wan_table(rows: dict[str, list[dict[str, Any]]], link_mbps: float | None) -> str:
    lines = [
        "| Contender | Goodput MB/s | % of link | Finished in bound | Parts in flight (end) | Part s (median, max) "
        "| Peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in rows.items():
        good = [s for s in runs if s["extra"].get("goodput_mbps") is not None]
        rate = [s["extra"]["goodput_mbps"] for s in good]
        share = f"{statistics.median(rate) / link_mbps * 100:.0f}%" if rate and link_mbps else "–"
        finished = sum(1 for s in runs if s["ok"])
        flight = [s["extra"]["parts_in_flight"] for s in good if s["extra"].get("parts_in_flight") is not None]
        rss = [s["max_rss"] / MiB for s in good]
        median = [s["extra"]["part_seconds_median"] for s in good if "part_seconds_median" in s["extra"]]
        longest = max((s["extra"]["part_seconds_max"] for s in good if "part_seconds_max" in s["extra"]), default=None)
        part_time = f"{statistics.median(median):.1f}, {longest:.1f}" if median and longest is not None else "–"
        lines.append(
            f"| {name} | {_spread(rate, '{:.2f}')} | {share} | {finished}/{len(runs)} | "
            f"{_spread(flight) if flight else '–'} | {part_time} | {_spread(rss)} |"
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
    if "runs" not in meta and "load_before" in meta:  # one run: say how busy the machine was
        out.append(
            f"- Run {meta.get('started')} ({meta.get('seconds')} s, load average before {meta['load_before']}, "
            f"after {meta.get('load_after')})."
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


def markers(block: str = "") -> tuple[str, str]:
    """The comments around a generated block: ``results`` by default, ``results-NAME`` for another run's."""
    name = f"results-{block}" if block else "results"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(document: str, text: str, block: str = "") -> str:
    """``document`` with the block between its markers replaced (appended at the end if it has none yet)."""
    begin, end = markers(block)
    if begin not in document:
        return f"{document.rstrip()}\n\n{begin}\n{text}\n{end}\n"
    before, _, rest = document.partition(begin)
    _, _, after = rest.partition(end)
    return f"{before}{begin}\n{text}\n{end}{after}"


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
    """``python -m benchmarks.report RESULTS.json[:scenario,…] [MORE.json …] [--into DOC.md [--block NAME]]``.

    ``--block NAME`` fills ``<!-- results-NAME:begin/end -->`` instead of the main block: a run made at
    another time (another load) gets tables of its own, and its ratios never mix with another run's.
    """
    args = list(argv if argv is not None else sys.argv[1:])
    into, block = None, ""
    if "--block" in args:
        at = args.index("--block")
        block, args = args[at + 1], args[:at] + args[at + 2 :]
    if "--into" in args:
        at = args.index("--into")
        into, args = Path(args[at + 1]), args[:at] + args[at + 2 :]
    text = summary_text(merged([_load(a) for a in args]))
    if into is not None:
        into.write_text(replace_block(into.read_text(encoding="utf-8"), text, block), encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
