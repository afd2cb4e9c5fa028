"""Stop the suite, saying why, when the disk under its temporary files is nearly full.

SeaweedFS marks every volume read-only once less than 1 % of its disk is free (``-minFreeSpace``, which
``weed mini`` doesn't take), so on a nearly full machine every later upload fails, each only after its
retries and the test's timeout: the run ends in a timeout that names no cause (one CI run did, at 61 %,
after 5400 s). This stops the run at the first test that starts with less than that 1 % and
``DISK_ROOM_MIB`` more free, with the figures, instead. Passing
tests' files are removed as they finish (``tmp_path_retention_policy`` in pyproject.toml), which keeps
what the suite holds at once to the session's storage and a few tests' files.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

MIB = 1024 * 1024
# Above the largest file one test writes (a few hundred MiB) plus what the storage keeps of it.
DEFAULT_ROOM_MIB = 1536


def free_mib(folder: str) -> int:
    return shutil.disk_usage(folder).free // MIB


def storage_reserve_mib(folder: str) -> int:
    """What SeaweedFS keeps free on ``folder``'s disk: 1 % of it."""
    return shutil.disk_usage(folder).total // 100 // MIB


def pytest_report_header(config: pytest.Config) -> str:
    folder = tempfile.gettempdir()
    return f"disk room: {free_mib(folder)} MiB free under {folder}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    folder = tempfile.gettempdir()
    room, reserve = int(os.environ.get("DISK_ROOM_MIB", DEFAULT_ROOM_MIB)), storage_reserve_mib(folder)
    left = free_mib(folder)
    if left < room + reserve:
        pytest.exit(
            f"only {left} MiB left on the disk under {folder} before {item.nodeid}: the suite needs {room} MiB "
            f"(DISK_ROOM_MIB) above the {reserve} MiB SeaweedFS keeps free, below which it refuses every write. "
            "Stopping rather than failing every test that stores.",
            returncode=3,
        )
