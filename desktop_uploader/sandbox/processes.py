"""Child processes that are stopped by pid, politely first, and never outlive us.

SeaweedFS finishes in about a second on SIGINT but dawdles for ~12 s on SIGTERM, so the polite
signal is SIGINT; after a bound it is SIGKILL. On Linux the child also gets PR_SET_PDEATHSIG, so
a sandbox killed with -9 does not leave a storage server running behind it. Nothing is ever
killed by name: another user's (or another test's) ``weed`` is none of our business.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None

    def _preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return _preexec


def spawn(argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group with output to ``log_path``; what it writes is private."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Private like the folders it sits in: a store copied or moved elsewhere keeps each file's own mode.
    output: IO[bytes] = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    try:
        kwargs: dict[str, object] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
            kwargs["preexec_fn"] = _die_with_parent()
            kwargs["umask"] = 0o077  # what the child writes (weed's volumes, its filer's store) is ours alone
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env, **kwargs
        )
    finally:
        output.close()


def stop(process: subprocess.Popen[bytes], *, grace: float = 5.0, name: str = "process") -> int | None:
    """SIGINT, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
    if process.poll() is not None:
        return process.returncode
    polite = signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT  # type: ignore[attr-defined]
    with contextlib.suppress(ProcessLookupError, OSError):
        process.send_signal(polite)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # Not a warning: weed's volume server can wait 30 s for an idle connection of its own S3 gateway
        # to close (seen in 2 stops of 15). A kill then loses nothing acknowledged: the kernel has the writes.
        log.info("%s (pid %d) ignored SIGINT for %.0f s; killing it", name, process.pid, grace)
    with contextlib.suppress(ProcessLookupError, OSError):
        process.kill()
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL is a kernel matter
        log.error("%s (pid %d) survived SIGKILL", name, process.pid)
        return None
