"""``list`` and ``discard``: see interrupted uploads, and give one up (aborting it on the server)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from desktop_uploader.cli.options import add_direct_flags, add_server_flags
from desktop_uploader.cli.render import Out, new_console, plain, print_json
from desktop_uploader.cli.server_uploads_cmd import as_json, print_section, server_to_ask, server_uploads
from desktop_uploader.cli.session import (
    UsageError,
    console,
    elsewhere_note,
    engine_session,
    load_base_settings,
    not_one_match,
    running_match,
    setup_logging,
)
from desktop_uploader.cli.wording import for_terminal
from desktop_uploader.connection import ConnectionSetupError
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.jobs import running_elsewhere, stored_bytes
from desktop_uploader.engine.ledger import not_removed, where
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.manager import interrupted_records
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.rows import plural
from desktop_uploader.engine.server_uploads import discard, matching, unknown_uploads
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord


def register(commands: Any) -> None:
    listing: argparse.ArgumentParser = commands.add_parser("list", help="show interrupted uploads")
    listing.add_argument("--json", action="store_true", help="print machine-readable records on stdout")
    add_server_flags(listing)
    listing.set_defaults(run=run_list)
    discard: argparse.ArgumentParser = commands.add_parser(
        "discard",
        help="give up an interrupted upload",
        description="Abort an interrupted upload on the server and forget it, so it stops taking up storage.",
    )
    discard.add_argument("id", help="the upload's id (or its first characters), from 'list'")
    add_server_flags(discard)
    add_direct_flags(discard)  # one sent to your own S3 storage is aborted there, as resume goes on there
    discard.set_defaults(run=run_discard)


def _status(record: UploadRecord) -> str:
    """The record's status as a person should read it.

    Only records no live process holds reach here (interrupted_records asks each one's lock, which the
    OS frees when its holder dies), so "active" means the process that ran it is gone (crash, kill -9,
    power cut) without saying so: the upload is interrupted and resumable, not running.
    """
    return "interrupted" if record.status == "active" else record.status


def _reason(record: UploadRecord) -> str | None:
    """What the record's message adds to its state, if anything (said under the table, where it reads whole)."""
    redundant = record.message.lower().rstrip(".") in {"", record.status, _status(record)}
    return None if redundant else for_terminal(record.message)


def run_list(args: argparse.Namespace) -> int:
    out = console()
    setup_logging(args)
    state = StateStore.open(args.paths.state_db)
    try:
        for notice in state.notices:
            out.print(f"[yellow]{plain(notice)}")
        records = interrupted_records(state)
        running = running_elsewhere(state)
        rows = [(r, stored_bytes(state, r)) for r in records]
        owed = [r for r in state.unfinished() if r.status == OWED_ABORT]
        on_server, server_problem = server_uploads(args, state, out)
    finally:
        state.close()
    if args.json:
        print_json(
            {
                "uploads": [
                    {
                        "id": r.id,
                        "source": "local",
                        "file": r.path,
                        "displayName": r.display_name,
                        "size": r.identity.size,
                        "stored": stored,
                        "method": r.method,
                        "status": _status(r),
                        "message": for_terminal(r.message),
                        "server": r.server,
                        "s3Key": r.s3_key,
                        "updatedAt": r.updated_at,
                    }
                    for r, stored in rows
                ],
                "owedAborts": [
                    {"file": r.display_name or r.path, "server": r.server, "s3Key": r.s3_key, "since": r.updated_at}
                    for r in owed
                ],
                "runningElsewhere": [{"id": r.id, "file": r.path, "displayName": r.display_name} for r in running],
                "serverUploads": [as_json(upload) for upload in on_server],
                "serverProblem": server_problem,  # why serverUploads is empty because the server wasn't asked
            }
        )
        return 0
    _print_owed(out, owed)
    if not rows:
        said = "No interrupted uploads on this computer." if on_server else "No interrupted uploads."
        out.print(f"{said}{elsewhere_note(running)}", soft_wrap=True)
        if on_server:
            print_section(on_server, out)
        return 0
    from rich.table import Table  # only for people: a --json listing never imports it

    table = Table(title="Interrupted uploads", expand=True)
    for column in ("ID", "File", "Stored", "Method", "State", "Last activity"):
        table.add_column(column, overflow="fold")
    reasons: list[str] = []
    for record, stored in rows:
        share = f"{human_bytes(stored)} of {human_bytes(record.identity.size)}"
        ago = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.updated_at))
        table.add_row(
            record.id[:8],
            plain(_file_cell(record)),
            share,
            plain(record.method),
            _status(record),
            ago,
        )
        if (reason := _reason(record)) is not None:
            # In the State column a sentence was folded to a word a line, beside a file name folded too.
            reasons.append(f"{record.id[:8]}: {plain(reason)}")
    listing = new_console()
    listing.print(table)
    for line in reasons:
        listing.print(line)
    out.print("Resume with 'desktop-uploader resume ID' (or --all); give one up with 'desktop-uploader discard ID'.")
    if running:
        out.print(elsewhere_note(running).strip(), soft_wrap=True)
    if on_server:
        print_section(on_server, out)
    return 0


def _file_cell(record: UploadRecord) -> str:
    """The file's own name, and the name it is stored under when the person chose another: the display
    name alone ("lora", without its extension) left two rows of a direct-s3 audit's list alike."""
    name = Path(record.path).name
    chosen = record.display_name
    return for_terminal(name if not chosen or chosen == Path(name).stem else f"{name} “{chosen}”")


def _print_owed(out: Out, owed: list[UploadRecord]) -> None:
    """Partial uploads given up on, whose server hasn't been reached yet to remove them; and starts that got
    no clear answer (a 5xx), which may have left one. A Next.js audit whose starts all failed was told of
    "discarded uploads" it had never discarded."""
    places: dict[tuple[str, bool], int] = {}
    for record in owed:
        places[(record.server, bool(record.upload_id))] = places.get((record.server, bool(record.upload_id)), 0) + 1
    for (server, known), count in places.items():
        place = plain(where(server))
        if known:
            verb = "is" if count == 1 else "are"
            said = f"{plural(count, 'partial upload')} given up here {verb} still to be removed from {place}"
            out.print(f"{said}: that happens the next time the app connects there.", soft_wrap=True)
        else:
            said = f"{plural(count, 'upload start')} that got no clear answer may have left a partial upload on {place}"
            out.print(f"{said}: it is looked for and removed the next time the app connects there.", soft_wrap=True)


def run_discard(args: argparse.Namespace) -> int:
    out = console()
    setup_logging(args)
    state = StateStore.open(args.paths.state_db)
    try:
        matches = [r for r in interrupted_records(state) if r.id.startswith(args.id)]
        running = running_elsewhere(state)
    finally:
        state.close()
    if not matches and running_match(args.id, running) is not None:  # being sent right now: not for discarding
        out.print(f"[red]desktop-uploader: {plain(not_one_match(args.id, 0, running))}")
        return 2
    if not matches:
        return _discard_on_server(args, out)
    if len(matches) != 1:
        for notice in state.notices:
            out.print(f"[yellow]{plain(notice)}")
        out.print(f"[red]desktop-uploader: {plain(not_one_match(args.id, len(matches)))}")
        return 2
    record = matches[0]
    try:
        settings = load_base_settings(args.paths, out)
        if record.method == DIRECT:  # aborted where it was going: a CLI audit's discard started the sandbox
            if not (args.bucket or settings.direct_bucket):
                raise UsageError(
                    f"{record.display_name} was going to {where(record.server)}: discard it with that storage's "
                    "--s3-endpoint, --bucket and --access-key (and $DESKTOP_UPLOADER_S3_SECRET)."
                )
            settings = settings.replace(method=DIRECT)
        with engine_session(args, settings, out) as session:
            settled = session.manager.discard_record(record.id)
    except UsageError as exc:
        out.print(f"[red]{plain(exc)}", soft_wrap=True)
        return 2
    except ConnectionSetupError as exc:
        out.print(f"[red]{plain(exc)}")
        return 1
    except UploaderError as exc:
        out.print(f"[red]{plain(exc.message)}")
        return 1
    name = plain(Path(record.path).name)  # as 'list' names it: the display name lacks the type ("del" for del.bin)
    if not settled.aborted:
        out.print(
            f"Discarded {name}. {plain(not_removed(record, settled.target))}; that is "
            "tried again each time the app or this command connects there (see 'desktop-uploader list').",
            soft_wrap=True,
        )
        return 1
    place = plain(where(record.server)) if record.method == DIRECT else "the server"
    out.print(f"Discarded {name}; its partial upload was removed from {place}.", soft_wrap=True)
    return 0


def _discard_on_server(args: argparse.Namespace, out: Out) -> int:
    """Abort an unfinished upload on the server that no record here knows (its id from 'list')."""
    if not server_to_ask(args):
        out.print(f"[red]desktop-uploader: {plain(not_one_match(args.id, 0))}")
        return 2
    try:
        settings = load_base_settings(args.paths, out)
        with engine_session(args, settings, out) as session:
            api = session.manager.api
            found = matching(unknown_uploads(api, session.state), args.id) if api is not None else []
            if len(found) != 1:
                out.print(f"[red]desktop-uploader: {plain(not_one_match(args.id, len(found)))}")
                return 2
            upload = found[0]
            removed = discard(api, upload) if api is not None else False
    except (UsageError, ConnectionSetupError) as exc:
        out.print(f"[red]{plain(exc)}")
        return 1
    except UploaderError as exc:
        out.print(f"[red]{plain(exc.message)}")
        return 1
    name = plain(upload.name)
    if not removed:
        out.print(f"{name} (upload {plain(upload.short_id)}) was no longer on the server; nothing had to be removed.")
        return 0
    out.print(f"Discarded {name} (upload {plain(upload.short_id)}); its partial upload was removed from the server.")
    return 0
