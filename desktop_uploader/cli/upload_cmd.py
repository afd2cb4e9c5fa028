"""``upload`` and ``resume``: send files (or finish interrupted uploads) with a progress bar per file."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
from pathlib import Path
from typing import Any

from desktop_uploader.cli.given_paths import expand
from desktop_uploader.cli.options import (
    add_direct_flags,
    add_server_flags,
    add_tuning_flags,
    direct_flags_given,
    settings_from_args,
)
from desktop_uploader.cli.render import Out, ProgressView, job_json, new_console, plain, print_json, print_summary
from desktop_uploader.cli.session import (
    UsageError,
    console,
    elsewhere_note,
    engine_session,
    load_base_settings,
    not_one_match,
    say_if_sandbox_stopped,
    settings_problem,
    setup_logging,
    started_on,
)
from desktop_uploader.connection import ConnectionSetupError
from desktop_uploader.engine.errors import SettingsError, UploaderError
from desktop_uploader.engine.events import Event, Notice, Queued, Status
from desktop_uploader.engine.fileid import quick_unchanged
from desktop_uploader.engine.files import as_given
from desktop_uploader.engine.intake import damaged
from desktop_uploader.engine.jobs import RunningElsewhereError, interrupted_upload_of, running_elsewhere, stored_bytes
from desktop_uploader.engine.ledger import where
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.manager import JobView, UploadManager, interrupted_records
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore, UploadRecord


def register(commands: Any) -> None:
    upload: argparse.ArgumentParser = commands.add_parser(
        "upload", help="upload files or folders", description="Upload model files; folders are searched recursively."
    )
    upload.add_argument("files", nargs="+", metavar="FILE|DIR")
    upload.add_argument("--display-name", help="display name (single file only)")
    upload.add_argument("--json", action="store_true", help="print machine-readable results on stdout")
    upload.add_argument(
        "--send-anyway",
        action="store_true",
        help="upload .safetensors files even when their header says they are incomplete or damaged "
        "(without it such a file is not uploaded, the others are, and the exit code is 1)",
    )
    add_server_flags(upload)
    add_tuning_flags(upload)
    add_direct_flags(upload)
    upload.set_defaults(run=run_upload)

    resume: argparse.ArgumentParser = commands.add_parser(
        "resume",
        help="finish interrupted uploads",
        description="Finish uploads a crash, quit or lost network "
        "interrupted, sending only the parts that never arrived.",
    )
    target = resume.add_mutually_exclusive_group()
    target.add_argument(
        "id", nargs="?", help="the upload's id (or its first characters), from 'list'; without one, every one"
    )
    target.add_argument("--all", action="store_true", help="resume every interrupted upload")
    resume.add_argument("--json", action="store_true", help="print machine-readable results on stdout")
    add_server_flags(resume)
    add_tuning_flags(resume)
    add_direct_flags(resume)
    resume.set_defaults(run=run_resume)


def run_upload(args: argparse.Namespace) -> int:
    out = console()
    setup_logging(args)
    try:
        settings = settings_from_args(load_base_settings(args.paths, out), args)
        files, unsearched = expand(args.files, out)
        if not files:
            raise UsageError("Nothing to upload.")
        if args.display_name and len(files) > 1:
            raise UsageError("--display-name names a single file; drop it to upload several.")
        files, rejected = _preflight(files, args.send_anyway, out)
        rejected = unsearched + rejected
        if not files:
            return _report_rejected(rejected, args)
        with engine_session(args, settings, out) as session:
            code = _upload(session.manager, files, args, out, rejected)
            say_if_sandbox_stopped(session, out)
            return code
    except SettingsError as exc:
        return _usage(settings_problem(exc), out, args)
    except UsageError as exc:
        return _usage(exc, out, args)
    except ConnectionSetupError as exc:
        return _refused(exc, out, args)


def _usage(exc: UsageError, out: Out, args: argparse.Namespace) -> int:
    return _said(exc, f"desktop-uploader: {plain(exc)}", out, args, 2)


def _refused(exc: ConnectionSetupError, out: Out, args: argparse.Namespace) -> int:
    return _said(exc, plain(exc), out, args, 1)


def _said(exc: Exception, shown: str, out: Out, args: argparse.Namespace, code: int) -> int:
    """``shown`` to the person; with --json, the error on stdout too (a CLI audit's script got nothing there)."""
    out.print(f"[red]{shown}")
    if args.json:
        print_json({"uploads": [], "error": str(exc)})
    return code


def _preflight(files: list[Path], send_anyway: bool, out: Out) -> tuple[list[Path], list[dict[str, Any]]]:
    """Check each .safetensors file's header before anything is sent: a cut-short download is refused."""
    kept: list[Path] = []
    rejected: list[dict[str, Any]] = []
    problems = dict(damaged(files))
    for path in files:
        problem = problems.get(path)
        if problem is None:
            kept.append(path)
        elif send_anyway:
            warning = f"{path.name} looks damaged. {problem} Sending it anyway, as asked."
            out.print(f"[yellow]{plain(warning)}", soft_wrap=True)
            kept.append(path)
        else:
            message = f"{path.name} was not uploaded because it looks damaged. {problem}"
            out.print(f"[red]{plain(message)} To upload it as it is, add --send-anyway.", soft_wrap=True)
            rejected.append({"file": str(path), "status": "failed", "message": message})
    return kept, rejected


def _report_rejected(rejected: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        print_json(_as_json([], rejected))
    return 1


def _as_json(uploads: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """Each upload, refused files among them; folders that couldn't be searched apart, being no upload."""
    files = [entry for entry in rejected if "folder" not in entry]
    folders = [entry for entry in rejected if "folder" in entry]
    return {"uploads": uploads + files, **({"unsearchedFolders": folders} if folders else {})}


def _upload(
    manager: UploadManager, files: list[Path], args: argparse.Namespace, out: Out, rejected: list[dict[str, Any]]
) -> int:
    view = ProgressView(out, live=not args.json)
    with view if not args.json else _Quiet():
        _listen(manager, view, json_mode=args.json)
        ids = []
        for path in files:
            try:
                going_on = _go_on_with(manager, path, args.display_name, out)
                ids.append(going_on if going_on is not None else manager.add(path, args.display_name))
            except UploaderError as exc:
                out.print(f"[red]{plain(exc.message)}")
                rejected.append({"file": str(path), "status": "failed", "message": exc.message})
        stopped = _wait(manager, ids, out)
    code = _report(manager, ids, args, out, rejected)
    return stopped or code


def _go_on_with(manager: UploadManager, path: Path, display_name: str | None, out: Out) -> str | None:
    """Resume this file's interrupted upload to this server, if it has one: running the same command again
    after a Ctrl-C or a lost network should go on, not store the file twice."""
    record = interrupted_upload_of(manager.state, as_given(path), manager.server_ids(), display_name)
    if record is None:
        return None
    manager.restore_interrupted(only=[record.id])
    _say_going_on(manager, record, path.name, out)
    manager.resume(record.id)
    return record.id


def _say_going_on(manager: UploadManager, record: UploadRecord, name: str, out: Out) -> None:
    """What is already stored, said before the rest is sent (a CLI audit's ``resume`` never said it). Not for a
    file moved or changed since: its run says why it can't go on, after a "Going on" (a resume audit)."""
    if not quick_unchanged(Path(record.path), record.identity):
        return
    stored = stored_bytes(manager.state, record)
    out.print(
        f"Going on with {plain(name)} where it stopped: {human_bytes(stored)} of "
        f"{human_bytes(record.identity.size)} already stored.",
        soft_wrap=True,
    )


def _listen(manager: UploadManager, view: ProgressView, *, json_mode: bool, only: list[str] | None = None) -> None:
    """Progress bars for people; with --json (stdout is for the script) still the warnings, on stderr."""

    def listener(event: Event) -> None:
        if only is not None and event.job_id not in only:
            return
        if json_mode and not (isinstance(event, Queued) or (isinstance(event, Notice) and event.level == "warning")):
            return
        view.handle(event)

    manager.subscribe(listener)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


# Signals that mean "stop now" and that a shell, a logout or ``kill`` sends; Windows has only SIGTERM.
_STOP_SIGNALS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class _Stopped(KeyboardInterrupt):
    """A stop signal other than Ctrl-C, taken as Ctrl-C is: the uploads pause."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _wait(manager: UploadManager, ids: list[str], out: Out) -> int | None:
    """Wait for the uploads to settle; the exit code when a signal paused them, else None.

    Ctrl-C, a SIGTERM (``kill``, a shutdown; a CLI audit's ended silently, losing the parts in flight)
    and a SIGHUP (the terminal window closed) pause the uploads and wait for the nearly-done parts. The
    code is what a shell reports for the signal (130, 143, 129), so a script can tell "stopped" from
    "failed" (1). An inherited "ignore" is kept (``nohup`` ignores SIGHUP: the upload goes on).
    """

    def stop(signum: int, _: object) -> None:
        raise _Stopped(signum)

    taken = [s for s in _STOP_SIGNALS if signal.getsignal(s) is signal.SIG_DFL]
    for signum in taken:
        signal.signal(signum, stop)
    try:
        manager.wait(ids)
    except KeyboardInterrupt as exc:
        with contextlib.suppress(OSError):  # after a hang-up, the terminal may refuse the words
            out.print("[yellow]Pausing… (what is stored is kept; how to go on follows)")
        manager.pause_all()
        manager.wait(ids, timeout=30)
        return 128 + (exc.signum if isinstance(exc, _Stopped) else signal.SIGINT)
    finally:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)
    return None


def _report(
    manager: UploadManager,
    ids: list[str],
    args: argparse.Namespace,
    out: Out,
    rejected: list[dict[str, Any]] | None = None,
) -> int:
    jobs: list[JobView] = [manager.job(i) for i in ids]
    rejected = rejected or []
    if args.json:
        print_json(_as_json([job_json(j) for j in jobs], rejected))
    else:
        servers = {j.id: f" --server {shlex.quote(url)}" for j in jobs if (url := started_on(manager, j))}
        refused = sum(1 for entry in rejected if "folder" not in entry)
        summary = new_console()
        print_summary(summary, jobs, direct_flags_given(args), refused, servers)
        folders = [entry["message"] for entry in rejected if "folder" in entry]
        if folders:  # said before the bars too, and scrolled away by now
            said = f"{folders[0]} Nothing in it was sent."
            if len(folders) > 1:
                said = f"{len(folders)} folders couldn't be searched; nothing in them was sent."
            summary.print(f"[yellow]{plain(said)}", soft_wrap=True)
    ok = all(j.status == Status.COMPLETED for j in jobs) and not rejected
    return 0 if ok else 1


def run_resume(args: argparse.Namespace) -> int:
    out = console()
    setup_logging(args)
    try:
        settings = settings_from_args(load_base_settings(args.paths, out), args)
        # Choose from the local records first: no server is needed to learn there is nothing to do.
        state = StateStore.open(args.paths.state_db)
        try:
            records = interrupted_records(state)
            running = running_elsewhere(state)
        finally:
            state.close()
        waiting, blocked = _resumable(records, settings, args, out)
        if not waiting and not args.id:
            return _nothing_to_resume(args, out, state.notices, running, blocked=blocked)
        chosen = _choose(waiting, args, running)
        with engine_session(args, settings, out) as session:
            manager = session.manager
            chosen = _still_ours(manager.restore_interrupted(), chosen, records, out)
            if not chosen:
                return 1
            for record in records:
                if record.id in chosen:
                    _say_going_on(manager, record, Path(record.path).name, out)
            view = ProgressView(out, live=not args.json)
            with view if not args.json else _Quiet():
                for job in manager.jobs():
                    if job.id in chosen:
                        view.handle(Queued(job.id, str(job.path), job.display_name, job.size))
                _listen(manager, view, json_mode=args.json, only=chosen)
                for job_id in chosen:
                    manager.resume(job_id)
                stopped = _wait(manager, chosen, out)
            code = _report(manager, chosen, args, out)
            say_if_sandbox_stopped(session, out)
            return stopped or code or (1 if blocked else 0)  # --all left some for their own storage
    except SettingsError as exc:
        return _usage(settings_problem(exc), out, args)
    except UsageError as exc:
        return _usage(exc, out, args)
    except ConnectionSetupError as exc:
        return _refused(exc, out, args)


def _resumable(
    records: list[UploadRecord], settings: Settings, args: argparse.Namespace, out: Out
) -> tuple[list[str], bool]:
    """The ids that may be resumed now, and whether some were set aside for their own storage (said why).

    One sent to your own S3 storage needs that storage named again (or saved in Settings): a CLI audit's
    ``resume`` of such an upload, with no flags, sent the file to the sandbox instead.
    """
    own_storage = bool(getattr(args, "bucket", None) or settings.direct_bucket)  # as cli/session.direct_target
    blocked = [record for record in records if record.method == DIRECT and not own_storage]
    for record in blocked:
        if args.id and not record.id.startswith(args.id):
            continue  # another upload, not asked about: a direct-s3 audit's "resume ID" spoke of three others
        if args.id or (not args.all and len(records) == 1):
            raise UsageError(_needs_its_storage(record))
        out.print(f"[yellow]{plain(_needs_its_storage(record))}")
    return [record.id for record in records if record not in blocked], bool(blocked)


def _nothing_to_resume(
    args: argparse.Namespace, out: Out, notices: list[str], running: list[UploadRecord], *, blocked: bool
) -> int:
    if not blocked:
        for notice in notices:  # why there may be nothing (the session below would say it otherwise)
            out.print(f"[yellow]{plain(notice)}")
        out.print(f"Nothing to resume: there are no interrupted uploads.{elsewhere_note(running)}")
    if args.json:
        print_json({"uploads": []})
    return 2 if blocked else 0  # those set aside need their storage named: a usage to correct


def _needs_its_storage(record: UploadRecord) -> str:
    return (
        f"{record.display_name} was going to {where(record.server)}: resume it with that storage's "
        "--s3-endpoint, --bucket and --access-key (and $DESKTOP_UPLOADER_S3_SECRET), or discard it."
    )


def _still_ours(restored: list[str], chosen: list[str], records: list[UploadRecord], out: Out) -> list[str]:
    """The chosen uploads no other window or command took while this one started (the sandbox's start is
    seconds): two ``resume`` commands half a second apart ended, for one, in a KeyError and "Something
    went wrong" (a resume audit). Those taken are said as they are when seen up front."""
    for record in records:
        if record.id in chosen and record.id not in restored:
            name = f"'{record.id[:8]}' ({record.display_name or record.path})"
            out.print(f"[red]{plain(RunningElsewhereError(name).message)}", soft_wrap=True)
    return [job_id for job_id in chosen if job_id in restored]


def _choose(restored: list[str], args: argparse.Namespace, running: list[UploadRecord]) -> list[str]:
    if args.all:
        return restored
    if args.id:
        matches = [i for i in restored if i.startswith(args.id)]
        if len(matches) != 1:
            raise UsageError(not_one_match(args.id, len(matches), running))
        return matches
    if len(restored) == 1:
        return restored
    raise UsageError("Several uploads are interrupted: name one (see 'desktop-uploader list') or pass --all.")
