"""``desktop-uploader``: the GUI when run bare, and subcommands for scripts and servers.

``desktop-uploader FILE…`` opens the window with those files queued: what a file manager runs for
"Open with" (the desktop entry's ``Exec=desktop-uploader %F``).

Exit codes: 0 when everything asked for was done, 1 when something failed (a file, a server),
2 for usage errors (argparse's own convention).
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import gc
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from desktop_uploader import __version__
from desktop_uploader.cli import records_cmd, sandbox_cmd, serve_cmd, upload_cmd
from desktop_uploader.paths import resolve_paths
from desktop_uploader.system.proxies import never_proxy_loopback

Runner = Callable[[argparse.Namespace], int]


_NEGATIVE_AMOUNT = re.compile(r"^-\d")


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one sentence and where to look, not the whole usage block before it."""

    # The words main() parses: a script asking for --json gets JSON on stdout even for a mistake, and a
    # file named like an option gets told how to name it.
    words: Sequence[str] = ()

    def _parse_optional(self, arg_string: str) -> Any:
        """A dash then a digit is a value, not an option: a CLI audit's ``--chunk-size -5MiB`` was answered
        "expected one argument", because argparse takes only plain negative numbers ("-5") as values."""
        if _NEGATIVE_AMOUNT.match(arg_string):
            return None
        return super()._parse_optional(arg_string)

    def error(self, message: str) -> NoReturn:
        dashed = next((w for w in Parser.words if w.startswith("-") and os.path.isfile(w)), None)
        if dashed is not None:  # a CLI audit's "-x.ckpt" got "the following arguments are required: FILE|DIR"
            message += f". To upload {dashed}, write it as ./{dashed}"
        if "--json" in Parser.words:
            print(json.dumps({"uploads": [], "error": message}))
        self.exit(2, f"{self.prog}: {message}\nSee '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="desktop-uploader",
        usage="%(prog)s [-h] [--version] [--self-test] [COMMAND ... | FILE ...]",
        description="Upload large model files to S3-compatible storage. Run without a command for the app; "
        "name files instead of a command to open the app with them queued.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation: upload a generated file the way the app does, offscreen, and verify it",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", prog="desktop-uploader", parser_class=Parser)
    for module in (upload_cmd, records_cmd, serve_cmd, sandbox_cmd):
        module.register(commands)
    return parser


def _self_test(args: argparse.Namespace) -> int:
    from desktop_uploader.selftest import run_self_test

    return run_self_test(args.paths)


def _desktop_app(args: argparse.Namespace) -> int:
    if no_display():
        print(
            "The app needs a desktop to show its window, and none was found here (no DISPLAY or "
            "WAYLAND_DISPLAY). To upload from this terminal: desktop-uploader upload FILE…",
            file=sys.stderr,
        )
        return 1
    from desktop_uploader.gui.app import run as run_desktop_app

    return run_desktop_app(args.paths, files=args.open_files)


def no_display() -> bool:
    """On Linux, whether Qt would find no display: it would abort with advice to reinstall, over SSH say."""
    names = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    return sys.platform.startswith("linux") and not any(os.environ.get(name) for name in names)


def unknown_words(parser: argparse.ArgumentParser, files: Sequence[str]) -> str | None:
    """What to say when words that should open the app name no file: most often a mistyped command.

    A missing path with a folder in it is a file, not a command: a file manager's "Open with" passes
    whole paths, and one on a drive no longer there exited with this sentence on a terminal nobody
    sees, no window, and the other files dropped too (an installed-app audit). The window says it.
    """
    missing = [file for file in files if not os.path.exists(file) and not _has_folder(file)]
    if not missing:
        return None
    commands = sorted(_commands(parser))
    close = difflib.get_close_matches(missing[0], commands, n=1)
    if close:
        return f"'{missing[0]}' is not a command. Did you mean '{close[0]}'?"
    return (
        f"'{missing[0]}' is neither a command nor a file. The commands are {', '.join(commands)} "
        "(see desktop-uploader --help)."
    )


def _has_folder(word: str) -> bool:
    return os.sep in word or (os.altsep is not None and os.altsep in word)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return dict(action.choices) if action is not None else {}


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return set(_subcommands(parser))


def _parser_of(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    return _subcommands(parser).get(command or "", parser)


def split_files(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Options and files, when the first word that is not an option names no command: ``FILE…``.

    The top-level options take no values, so every other word before a command is a file; after
    ``--`` every word is (a file named like an option or a command).
    """
    words = list(argv)
    commands = _commands(parser)
    if "--" in words:
        cut = words.index("--")
        before, after = words[:cut], words[cut + 1 :]
    else:
        before, after = words, []
    plain = [word for word in before if not word.startswith("-")]
    if (plain and plain[0] in commands) or not (plain or after):
        return words, []
    options = [word for word in before if word.startswith("-")]
    return options, [*plain, *after]


def glue_values(argv: Sequence[str]) -> list[str]:
    """``--token T`` as ``--token=T``: argparse takes a T that starts with "-" for an option, and refused one in
    64 sandbox tokens ("argument --token: expected one argument", a big-file audit's)."""
    words: list[str] = []
    given = iter(argv)
    for word in given:
        value = next(given, None) if word in VALUE_OPTIONS else None
        if value is None:
            words.append(word)
        elif value.startswith("-") and value != "--":
            words.append(f"{word}={value}")
        else:
            words += [word, value]
    return words


VALUE_OPTIONS = frozenset({"--token", "--display-name"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words, files = split_files(parser, glue_values(sys.argv[1:] if argv is None else argv))
    Parser.words = words
    args, extra = parser.parse_known_args(words)
    if extra:  # said by the command's own parser, which names the command and its help
        _parser_of(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    # Not args.files: that is where `upload` keeps its own paths.
    args.open_files = [os.path.abspath(file) for file in files]
    if args.open_files and (args.self_test or args.command):
        parser.error("files open the app: name them without --self-test")
    if (problem := unknown_words(parser, args.open_files and files)) is not None:
        parser.error(problem)
    never_proxy_loopback()  # the sandbox lives on loopback, where no configured proxy can reach
    paths = resolve_paths().ensure()
    runner: Runner | None = getattr(args, "run", None)
    if args.self_test:
        runner = _self_test
    elif runner is None:
        runner = _desktop_app
    args.paths = paths
    if runner is not _desktop_app:
        # A command's objects live until the process ends, and the interpreter's final collections walk
        # all of them: 0.1–0.3 s of every upload's exit. Frozen, they are left to the OS instead
        # (finalizers still run on reference counts). Not for the window, whose Qt objects end in order.
        atexit.unregister(gc.freeze)  # once, however often main() runs in one process (the tests)
        atexit.register(gc.freeze)
    try:
        return runner(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    except Exception:  # never a traceback in a user's face: it goes to the log file
        logging.getLogger("desktop_uploader.cli").exception("Command %s failed", args.command)
        print(f"Something went wrong. Details are in {paths.log_file}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
