"""Where a small upload's time goes: process start → first part byte, and last part byte → exit.

``python -m benchmarks.overhead run [--rounds 5] [--size-mib 64]`` starts the sandbox (SeaweedFS and
the upload API, as a user runs them), then runs our CLI (``python -m desktop_uploader upload …``)
on one file, several times, each traced, and prints the phases' medians:

- *interpreter*: from spawning the process to the first line of Python that runs here;
- *imports*: importing the CLI (``desktop_uploader.cli``, everything it pulls in at module level);
- *set-up*: from there to the first HTTP request (settings, resume store, logging, the manager);
- each API call before the first part (capabilities, start, sign…), timed from the request's send
  to its answer;
- *parts*: the first part's send to the last part's answer;
- *completion*: from the last part's answer to the end of ``complete``;
- *teardown*: from the last request to ``main`` returning, then interpreter exit.

Every HTTP request goes through ``requests``' ``HTTPAdapter.send``; the tracer wraps it (the
``trace`` sub-command, which the ``run`` one starts in place of the plain CLI) and writes the
timeline as JSON. Monotonic clocks are the machine's, so the parent's spawn time and the child's
timestamps compare. The wrapper costs one import of ``json`` and this module; ``run`` reports that
too (``--import-only``), so it is not counted against the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENTERED = time.monotonic()


def _classify(request: Any) -> str:
    """``part``, an API action (``start``, ``sign``, ``complete``…) or ``METHOD /path``."""
    url: str = request.url or ""
    if request.method == "PUT" and "partNumber=" in url:
        return "part"
    body = request.body
    if body:
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
            action = None
        if isinstance(action, str):
            return action
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    return f"{request.method} /{path}"


def trace(out: Path, argv: list[str]) -> int:
    """Run the CLI in this process with every HTTP request timed; write the timeline to ``out``."""
    events: list[dict[str, Any]] = []
    before_imports = time.monotonic()
    from desktop_uploader import cli  # the CLI's module-level imports, as `python -m desktop_uploader` pays

    after_imports = time.monotonic()
    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send

    def timed_send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return original(self, request, *args, **kwargs)
        finally:
            events.append({"what": _classify(request), "began": began, "ended": time.monotonic()})

    HTTPAdapter.send = timed_send  # type: ignore[method-assign]
    code = 1
    try:
        code = cli.main(argv)
    finally:
        timeline = {
            "entered": ENTERED,
            "before_imports": before_imports,
            "after_imports": after_imports,
            "returned": time.monotonic(),
            "code": code,
            "requests": sorted(events, key=lambda e: e["began"]),
        }
        out.write_text(json.dumps(timeline), encoding="utf-8")
    return code


def phases(spawned: float, exited: float, timeline: dict[str, Any]) -> dict[str, float]:
    """Seconds per phase, from one traced run (see the module's docstring)."""
    requests_ = timeline["requests"]
    parts = [r for r in requests_ if r["what"] == "part"]
    result: dict[str, float] = {
        "interpreter": timeline["entered"] - spawned,
        "imports": timeline["after_imports"] - timeline["before_imports"],
    }
    first_request = requests_[0]["began"] if requests_ else timeline["returned"]
    result["set-up"] = first_request - timeline["after_imports"]
    first_part = parts[0]["began"] if parts else timeline["returned"]
    for request in requests_:
        if request["began"] >= first_part:
            break
        key = f"api: {request['what']}"
        result[key] = result.get(key, 0.0) + request["ended"] - request["began"]
    before_parts = first_part - first_request
    result["between API calls"] = before_parts - sum(v for k, v in result.items() if k.startswith("api: "))
    result["start → first part byte"] = first_part - spawned
    if parts:
        last_part = max(r["ended"] for r in parts)
        result["parts"] = last_part - first_part
        after = [r for r in requests_ if r["began"] >= last_part]
        done = max((r["ended"] for r in after), default=last_part)
        result["completion"] = done - last_part
        for request in after:
            key = f"after: {request['what']}"
            result[key] = result.get(key, 0.0) + request["ended"] - request["began"]
        result["teardown in main"] = timeline["returned"] - done
        result["interpreter exit"] = exited - timeline["returned"]
        result["last part byte → exit"] = exited - last_part
    result["total"] = exited - spawned
    return result


def run(args: argparse.Namespace) -> int:
    from benchmarks.measure import MiB, make_file, warm
    from benchmarks.servers import SeaweedSandbox

    work: Path = args.work
    path = make_file(work / "files" / f"overhead-{args.size_mib}MiB.safetensors", args.size_mib * MiB)
    warm(path)
    sandbox = SeaweedSandbox(work / "overhead-sandbox")
    target = sandbox.start()
    runs: list[dict[str, float]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            home = work / "overhead-home" / str(round_no)
            out = work / f"overhead-{round_no}.json"
            env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(home)}
            argv = [sys.executable, "-m", "benchmarks.overhead", "trace", str(out), "--", "upload", str(path)]
            argv += [f"--server={target.api_url}", f"--token={target.token}", "--json", "--send-anyway"]
            spawned = time.monotonic()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
            exited = time.monotonic()
            if done.returncode != 0:
                print(f"round {round_no} failed: {done.stderr[-400:]}", file=sys.stderr)
                continue
            runs.append(phases(spawned, exited, json.loads(out.read_text())))
    finally:
        sandbox.stop()
    keys = list(dict.fromkeys(k for r in runs for k in r))
    print(f"{len(runs)} runs, {args.size_mib} MiB, load average {[round(x, 2) for x in os.getloadavg()]}")
    print("| Phase | Median s | Min–max s |\n| --- | ---: | ---: |")
    for key in keys:
        values = [r[key] for r in runs if key in r]
        print(f"| {key} | {statistics.median(values):.3f} | {min(values):.3f}–{max(values):.3f} |")
    if args.json_out:
        args.json_out.write_text(json.dumps({"load": os.getloadavg(), "runs": runs}, indent=1), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["trace"]:
        cut = words.index("--")
        return trace(Path(words[1]), words[cut + 1 :])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("what", choices=["run"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "du-bench")
    parser.add_argument("--json-out", type=Path, default=None)
    return run(parser.parse_args(words))


if __name__ == "__main__":
    raise SystemExit(main())
