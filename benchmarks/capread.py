"""Reading a capped upload's progress log against issue 15's targets (no I/O, no clocks: testable).

The log is what benchmarks/clients/ours_observed.py writes: one JSON line per progress event with
``t`` (seconds since the process started), ``sent`` (handed to the network, stored or not) and
``confirmed`` (acknowledged by storage). What a pause or Ctrl-C would throw away at a moment is
``sent - confirmed``; divided by the cap it is the seconds of transfer lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class Point:
    t: float
    sent: int
    confirmed: int
    parts_in_flight: int = 0


@dataclass(frozen=True)
class CapReading:
    first_sent_s: float | None  # first byte on the wire, since process start
    first_stored_s: float | None  # first progress event with stored bytes, since process start
    max_at_risk_bytes: int  # largest sent - confirmed over the samples
    max_at_risk_s: float  # the same in seconds of the cap
    max_at_risk_at: float | None  # when it was largest
    max_parts_in_flight: int
    median_at_risk_s: float  # half the samples (while bytes were on the wire) risked less than this
    stored_rate: float  # bytes/s stored between the first byte sent and the last byte stored
    samples: int


def parse_points(text: str) -> list[Point]:
    points = []
    for line in text.splitlines():
        if not line.strip().startswith("{"):
            continue
        raw = json.loads(line)
        points.append(Point(float(raw["t"]), int(raw["sent"]), int(raw["confirmed"]), int(raw["parts_in_flight"])))
    return points


def read_cap(points: list[Point], cap: float) -> CapReading:
    """The targets' figures from one run's progress samples; ``cap`` in bytes per second."""
    first_sent = next((p.t for p in points if p.sent > 0), None)
    first_stored = next((p.t for p in points if p.confirmed > 0), None)
    worst = max(points, key=lambda p: p.sent - p.confirmed, default=None)
    at_risk = max(0, worst.sent - worst.confirmed) if worst else 0
    last = max(points, key=lambda p: p.confirmed, default=None)
    risks = sorted(p.sent - p.confirmed for p in points if p.sent > p.confirmed)
    median = risks[len(risks) // 2] / cap if risks and cap else 0.0
    rate = 0.0
    if last is not None and first_sent is not None and last.t > first_sent:
        rate = last.confirmed / (last.t - first_sent)
    return CapReading(
        first_sent_s=first_sent,
        first_stored_s=first_stored,
        max_at_risk_bytes=at_risk,
        max_at_risk_s=at_risk / cap if cap else 0.0,
        max_at_risk_at=worst.t if worst and at_risk else None,
        max_parts_in_flight=max((p.parts_in_flight for p in points), default=0),
        median_at_risk_s=median,
        stored_rate=rate,
        samples=len(points),
    )


def table(samples: list[dict[str, Any]]) -> str:
    """Markdown for docs/benchmarks.md from a cap run's samples (as saved in its results JSON)."""
    lines = [
        "| Round | Contender | Wall s | MB/s end to end | of cap | First stored s "
        "| Max at risk, s of cap | Max parts | Through the cap MiB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in samples:
        if s["scenario"] != "cap-5MBps":
            continue
        e = s["extra"]
        first = f"{e['first_stored_s']:.1f}" if e.get("first_stored_s") is not None else "–"
        risk = f"{e['max_at_risk_s']:.1f} ({e['max_at_risk_bytes'] / MiB:.0f} MiB)" if "max_at_risk_s" in e else "–"
        parts = str(e.get("max_parts_in_flight", "–"))
        share = f"{e['of_cap'] * 100:.1f} %"
        crossed = f"{e['crossed_cap'] / MiB:.0f}" if "crossed_cap" in e else "–"
        lines.append(
            f"| {s['round']} | {s['contender']} | {s['wall']:.1f} | {s['mbps']:.2f} | {share} | {first} "
            f"| {risk} | {parts} | {crossed} |"
        )
    pauses = [s for s in samples if s["scenario"] == "cap-5MBps-pause"]
    if pauses:
        lines += [
            "",
            "| Round | Ctrl-C at s | Sent by then MiB | Stored by then MiB | Kept by storage MiB "
            "| Lost, s of cap | Pause took s | Through the cap MiB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in pauses:
            e = s["extra"]
            sent, stored, kept = (e[k] / MiB for k in ("sent_at_sigint", "stored_at_sigint", "kept_by_storage"))
            crossed = f"{e['crossed_cap'] / MiB:.0f}" if "crossed_cap" in e else "–"
            lines.append(
                f"| {s['round']} | {e['pause_at_s']:.1f} | {sent:.1f} | {stored:.1f} | {kept:.1f} | "
                f"{e['lost_s_of_cap']:.1f} | {e['pause_took_s']:.1f} | {crossed} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.capread RESULTS.json``: the cap run's tables, as docs/benchmarks.md quotes them."""
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    data = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    print(table(data["samples"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
