"""The ``desktop-uploader`` command gets the start-up of ``python -m desktop_uploader``.

The installed console script imports the module it names, then calls the function. Naming
``desktop_uploader.cli:main`` imported the whole CLI with the cyclic collector running (it walks
the import's objects again and again) and left them unfrozen for the exit's collections; naming
``desktop_uploader.__main__:run`` pauses it around the imports and freezes what they made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

PROBE = (
    "import gc, json, sys\n"
    "import desktop_uploader.__main__ as entry\n"
    "imported_early = 'desktop_uploader.cli' in sys.modules\n"
    "seen = []\n"
    "import desktop_uploader.cli as cli\n"
    "def main(argv=None):\n"
    "    seen.append({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()})\n"
    "    return 0\n"
    "cli.main = main\n"
    "code = entry.run()\n"
    "print(json.dumps({'early': imported_early, 'code': code, 'seen': seen}))\n"
)


def test_the_console_script_runs_the_entry_point_that_pauses_the_collector() -> None:
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "desktop-uploader"]
    assert script.value == "desktop_uploader.__main__:run"


def test_the_entry_point_imports_the_cli_only_when_run_and_freezes_what_it_made() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout)
    assert report["early"] is False  # importing the entry module (what the script does first) is cheap
    assert report["code"] == 0
    assert report["seen"] == [{"enabled": True, "frozen": report["seen"][0]["frozen"]}]
    assert report["seen"][0]["frozen"] > 0
