"""Our real CLI (``desktop-uploader upload …``), plus a timestamped log of its progress events.

Why: ``upload --json`` prints only the final results, not progress, and the cap scenario needs
what was *sent* and what was *stored* moment by moment. This runs the CLI's own ``main`` in this
process, unchanged (same settings, same Ctrl-C pause), and subscribes one more listener to the
upload manager that appends each ``Progress`` event as a JSON line to ``PROGRESS_FILE``:
``{"t": seconds since process start, "confirmed": …, "sent": …, "parts_in_flight": …}``.

Usage: ``python -m benchmarks.clients.ours_observed PROGRESS_FILE upload FILE --server … --json``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import IO, Any

STARTED = time.monotonic()


def progress_line(event: Any, now: float) -> str:
    """One progress event as the JSON line the benchmark reads (kept separate so a test can check it)."""
    return json.dumps(
        {
            "t": round(now - STARTED, 3),
            "confirmed": event.confirmed,
            "sent": event.sent,
            "in_flight": event.in_flight,
            "total": event.total,
            "parts_in_flight": event.parts_in_flight,
            "parts_done": event.parts_done,
        }
    )


def observe(sink: IO[str]) -> None:
    """Wrap ``UploadManager.subscribe`` so every manager the CLI makes also reports to ``sink``."""
    from desktop_uploader.engine.events import Progress
    from desktop_uploader.engine.manager import UploadManager

    original = UploadManager.subscribe

    def subscribe(self: UploadManager, listener: Any) -> Any:
        result = original(self, listener)
        if not getattr(self, "_bench_observed", False):
            self._bench_observed = True  # type: ignore[attr-defined]

            def record(event: Any) -> None:
                if isinstance(event, Progress):
                    sink.write(progress_line(event, time.monotonic()) + "\n")
                    sink.flush()

            original(self, record)
        return result

    UploadManager.subscribe = subscribe  # type: ignore[method-assign]


def main() -> int:
    progress_file, argv = sys.argv[1], sys.argv[2:]
    # Started from a driver that runs in the background (``&``), this process inherits SIGINT ignored,
    # and Python leaves an ignored SIGINT alone: Ctrl-C would do nothing. As in a terminal, it raises
    # KeyboardInterrupt, which the CLI turns into a pause.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(progress_file, "a", encoding="utf-8") as sink:
        observe(sink)
        from desktop_uploader.cli import main as cli_main

        code: int = cli_main(argv)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
