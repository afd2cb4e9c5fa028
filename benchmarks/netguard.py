"""The cleanup guard of the WAN runs: restores sysctls and removes namespaces, whatever happens to the driver.

The driver starts this first, in its own session (so a Ctrl-C aimed at the driver's process group
does not reach it), and tells it on stdin what to undo, one JSON line per item:
``{"sysctl": NAME, "value": ORIGINAL}`` and ``{"netns": NAME}``. When stdin reaches end-of-file
(the driver finished, crashed, or was killed with -9) it undoes everything it was told, prints
``done`` and exits. ``undo`` on a line of its own makes it undo now and keep listening.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path


def undo(sysctls: dict[str, str], namespaces: list[str]) -> list[str]:
    problems = []
    for name in list(namespaces):
        result = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True, timeout=30)
        if result.returncode == 0 or "No such file" in result.stderr:
            namespaces.remove(name)
        else:
            problems.append(f"netns {name}: {result.stderr.strip()}")
    for name, value in list(sysctls.items()):
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            path.write_text(value + "\n")
            if path.read_text().split() == value.split():
                del sysctls[name]
            else:
                problems.append(f"{name} reads {path.read_text().strip()!r}, not {value!r}")
        except OSError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sysctls: dict[str, str] = {}
    namespaces: list[str] = []
    for raw in sys.stdin:
        line = raw.strip()
        if line == "undo":
            problems = undo(sysctls, namespaces)
            print(json.dumps({"undone": True, "problems": problems}), flush=True)
            continue
        if not line:
            continue
        item = json.loads(line)
        if "sysctl" in item:
            sysctls.setdefault(item["sysctl"], item["value"])  # the first value seen is the original
        elif "netns" in item:
            namespaces.append(item["netns"])
        print(json.dumps({"ok": True}), flush=True)
    problems = undo(sysctls, namespaces)
    for problem in problems:
        print(f"netguard: could not undo {problem}", file=sys.stderr, flush=True)
    print("done", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
