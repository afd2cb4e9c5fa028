"""``desktop-uploader``: the GUI when run bare, and subcommands for scripts and servers.

Exit codes: 0 when everything asked for was done, 1 when something failed (a file, a server),
2 for usage errors (argparse's own convention).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from desktop_uploader import __version__
from desktop_uploader.cli import records_cmd, sandbox_cmd, serve_cmd, upload_cmd
from desktop_uploader.paths import resolve_paths
from desktop_uploader.system.proxies import never_proxy_loopback

Runner = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="desktop-uploader",
        description="Upload large model files to S3-compatible storage. Run without a command for the app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation: upload a generated file the way the app does, offscreen, and verify it",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (upload_cmd, records_cmd, serve_cmd, sandbox_cmd):
        module.register(commands)
    return parser


def _self_test(args: argparse.Namespace) -> int:
    from desktop_uploader.selftest import run_self_test

    return run_self_test(args.paths)


def _desktop_app(args: argparse.Namespace) -> int:
    from desktop_uploader.gui.app import run as run_desktop_app

    return run_desktop_app(args.paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    never_proxy_loopback()  # the sandbox lives on loopback, where no configured proxy can reach
    paths = resolve_paths().ensure()
    runner: Runner | None = getattr(args, "run", None)
    if args.self_test:
        runner = _self_test
    elif runner is None:
        runner = _desktop_app
    args.paths = paths
    try:
        return runner(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 1
    except Exception:  # never a traceback in a user's face: it goes to the log file
        logging.getLogger("desktop_uploader.cli").exception("Command %s failed", args.command)
        print(f"Something went wrong. Details are in {paths.log_file}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
