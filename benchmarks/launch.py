"""A tiny launcher: runs a contender and writes its rusage as JSON, so peak RSS is the contender's own.

Linux carries the resident-set high-water mark of the image a process ``exec``s from into its
``ru_maxrss``: a contender forked from the benchmark driver (160 MiB of imports) would report at
least the driver's size. Started with ``python -S -I`` this launcher is ~10 MiB, and contenders
are spawned from it. Usage: ``python -S -I launch.py RESULT_JSON ARGV...``.
"""

import json
import os
import signal
import sys


def main() -> int:
    result_path, argv = sys.argv[1], sys.argv[2:]
    # A time bound stops a run with SIGINT to the whole group: the contender gets it and winds down,
    # and this launcher outlives it to report its figures. The contender gets the default handlers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pid = os.posix_spawn(argv[0], argv, os.environ, setsigdef=(signal.SIGINT, signal.SIGTERM))
    _, status, usage = os.wait4(pid, 0)
    with open(result_path, "w") as handle:
        json.dump(
            {
                "returncode": os.waitstatus_to_exitcode(status),
                "cpu": usage.ru_utime + usage.ru_stime,
                "max_rss": usage.ru_maxrss * 1024,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
