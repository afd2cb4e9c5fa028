"""``python -m benchmarks``: every benchmark, interleaved, with medians, minima and maxima.

See docs/benchmarks.md for what is measured and how. ``--only`` picks scenarios, ``--rounds``
sets the repetitions, ``--quick`` is a smoke run (small files, one round).
"""

from benchmarks.run import main

raise SystemExit(main())
