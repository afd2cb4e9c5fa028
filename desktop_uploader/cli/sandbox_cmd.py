"""``desktop-uploader sandbox``: SeaweedFS and the upload API on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from desktop_uploader.engine.filenames import shown
from desktop_uploader.logsetup import configure_logging
from desktop_uploader.paths import AppPaths
from desktop_uploader.sandbox.info import START_FAILED, running_sandbox


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "sandbox",
        help="run a local S3 store and the upload API on loopback",
        description="Start SeaweedFS and the upload API on 127.0.0.1, print one JSON line describing them, "
        "and run until Ctrl-C, SIGTERM, or the parent process exits and no other window or command uses it.",
    )
    parser.add_argument("--data-dir", type=Path, help="where the store keeps its data (default: user data dir)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line (with --empty too)")
    parser.add_argument(
        "--empty", action="store_true", help="delete every file uploaded to the sandbox, then exit (when none runs)"
    )
    parser.set_defaults(
        run=lambda args: (
            empty_sandbox(args.paths, args.data_dir, as_json=args.json)
            if args.empty
            else run_sandbox(
                args.data_dir or args.paths.sandbox_dir,
                json_only=args.json,
                log_file=args.paths.log_dir / "sandbox.log",
                cache_dir=args.paths.cache_dir / "sandbox",
            )
        )
    )


def empty_sandbox(paths: AppPaths, data_dir: Path | None, *, as_json: bool = False) -> int:
    """``sandbox --empty``: the test uploads deleted, and how much space that gave back.

    With --json, stdout is one JSON object whatever happens, as for every other command (a CLI audit's
    script got nothing to parse when a running sandbox refused), and people still read the refusal
    on stderr."""
    from desktop_uploader.connection import empty_sandbox as empty
    from desktop_uploader.engine.limits import human_bytes
    from desktop_uploader.sandbox.storage_use import holds_store

    folder = data_dir or paths.sandbox_dir
    answer: dict[str, Any] = {"dataDir": str(folder), "emptied": False, "freedBytes": 0, "leftBytes": 0}

    def say(code: int, text: str = "", problem: str = "") -> int:
        if problem:
            print(f"desktop-uploader: {problem}", file=sys.stderr)
            answer["error"] = problem
        if as_json:
            print(json.dumps(answer), flush=True)
        elif text:
            print(text)
        return code

    if not holds_store(folder):  # nothing to empty, and nothing to create there (not even a lock)
        return say(0, f"Nothing to empty: {shown(str(folder))} holds no test storage.")
    emptied, refused = empty(paths, folder)
    if emptied is None:
        return say(1, problem=refused)
    answer.update(emptied=True, freedBytes=emptied.freed, leftBytes=emptied.left)
    text = f"Emptied the test storage in {shown(str(folder))}: {human_bytes(emptied.freed)} freed."
    if emptied.left:
        if not as_json:
            print(text)
        return say(1, problem=f"{human_bytes(emptied.left)} could not be removed from {shown(str(folder))}.")
    return say(0, text)


def data_dir_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` can't hold the store, in words (not ``[Errno 17] File exists``), or None."""
    if data_dir.exists() and not data_dir.is_dir():
        return f"{data_dir} is a file; the sandbox keeps its data in a folder."
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"the folder {data_dir} can't be made: {exc.strerror or exc}."
    return None


def start_problem(exc: Exception) -> str:
    """Why the start failed, in words: an OS error as what it means and which file, not ``[Errno 13] …``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() + (f" for {exc.filename}" if exc.filename else "")
    return str(exc).rstrip(".")


def _start_failed(problem: str, json_only: bool) -> int:
    """Said on stderr; with --json, also the one JSON line a script waits for, with an "error"."""
    print(problem, file=sys.stderr)
    if json_only:
        print(json.dumps({"error": problem}), flush=True)
    return 1


def run_sandbox(data_dir: Path, *, json_only: bool, log_file: Path, cache_dir: Path) -> int:
    from desktop_uploader.engine.limits import human_bytes
    from desktop_uploader.sandbox.runtime import Sandbox
    from desktop_uploader.sandbox.storage_use import stored_size
    from desktop_uploader.sandbox.users import in_use

    # Details (and tracebacks) go to the log file; the terminal gets sentences.
    configure_logging(log_file)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    data_dir = data_dir.expanduser().resolve()
    problem = data_dir_problem(data_dir)
    if problem is None and (running := running_sandbox(data_dir)) is not None:
        # A second store on one folder failed as "weed exited with code 255" (an audit), naming nothing.
        problem = f"one is already running on {data_dir} (its upload API is {running.api_url}); stop it first."
    if problem is not None:
        return _start_failed(f"{START_FAILED}{problem}", json_only)
    sandbox = Sandbox(data_dir, cache_dir=cache_dir, log_dir=log_file.parent)
    try:
        info = sandbox.start()
    except Exception as exc:
        logging.getLogger(__name__).exception("sandbox start failed")
        return _start_failed(f"{START_FAILED}{shown(start_problem(exc))}. Details are in {log_file}", json_only)
    if not json_only:
        print(
            "Sandbox running: a real S3 store (SeaweedFS) and the upload API, on this computer only.\n"
            f"  Upload API  {info.api_url}\n"
            f"  S3 store    {info.s3_endpoint}  (bucket '{info.bucket}')\n"
            f"  Data        {info.data_dir}  ({human_bytes(stored_size(data_dir))} stored; --empty deletes it)\n"
            "Upload a file to it with:  desktop-uploader upload FILE\n"
            "Press Ctrl-C to stop. For scripts, --json prints these details with the credentials, as one line.",
            flush=True,
        )
    else:  # the credentials only where asked for: a terminal's scrollback and a shared screen are not for them
        print(info.to_json(), flush=True)
    try:
        while not stop.wait(0.5):
            if os.getppid() != parent and not in_use(data_dir):  # our starter is gone, and everyone else too
                break
            if (code := sandbox.storage_exit_code()) is not None:
                # Killed or crashed, weed left the API answering 503 to every upload, which no Retry could
                # change (a network audit). Stopping with it lets the app see the sandbox stopped and start
                # a new one, as it does for a sandbox that was killed.
                logging.getLogger(__name__).error("The storage server stopped (exit code %s); stopping too", code)
                print("The sandbox's storage server stopped; the sandbox stops with it.", file=sys.stderr)
                return 1
    finally:
        sandbox.stop()
    return 0
