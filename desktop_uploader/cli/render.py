"""What the CLI shows: a progress bar per file (rich), a summary table, or JSON for scripts.

rich is imported when something is first printed through it, not with the CLI: a script asking for
``--json`` shows no bars and usually prints nothing else, and rich's console and progress modules
cost ~70 ms of every such upload's start (docs/benchmarks.md, "Per-file overhead").

Every file name, server string and message goes through :func:`plain` before it reaches rich: a
name is data, never markup ("[/bold]x" would end in a MarkupError), never emoji codes, and never
terminal control (an ESC or OSC sequence in a name could rewrite the screen or the window title).
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_uploader.cli.wording import for_terminal
from desktop_uploader.engine import events
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.manager import JobView
from desktop_uploader.engine.rows import human_duration, human_speed

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def plain(text: object) -> str:
    """``text`` shown literally in rich markup: control characters made visible, markup escaped.

    Print it on a :func:`new_console`, which also leaves ``:emoji_codes:`` alone.
    """
    from rich.markup import escape

    return escape(shown(str(text)))


@dataclass
class Out:
    """Where the CLI prints: a rich console that prints what it is given (no syntax highlighting, and
    ``:name:`` is not an emoji), made on the first print so that a command printing nothing never
    imports rich."""

    stderr: bool = False
    _console: Console | None = field(default=None, init=False, repr=False)

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, highlight=False, emoji=False)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


def new_console(*, stderr: bool = False) -> Out:
    """Somewhere to print rich markup; see :class:`Out`."""
    return Out(stderr=stderr)


@dataclass
class ProgressView:
    """Turns engine events into rich progress bars; safe to call from worker threads.

    Not ``live`` (``--json``: stdout is the script's), it shows no bars and only prints notices, and
    never imports rich's progress module.
    """

    console: Out
    live: bool = True
    tasks: dict[str, TaskID] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _progress: Progress | None = field(default=None, init=False, repr=False)
    name_width: int = field(default=36, init=False)  # set by the terminal's width with the bars

    @property
    def progress(self) -> Progress:
        if self._progress is None:
            self._progress = self._new_progress()
        return self._progress

    def _new_progress(self) -> Progress:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            Task,
            TextColumn,
        )
        from rich.table import Column
        from rich.text import Text

        class StoredColumn(DownloadColumn):
            """Stored of the size; an empty file's bar, whose total is 1 so that it can fill, read "1/1 bytes"."""

            def render(self, task: Task) -> Text:
                return Text("0 B", style="progress.download") if task.fields.get("empty") else super().render(task)

        # One line per file, however narrow the terminal: at 80 columns the bars wrapped ("128.0/286.1" over
        # "MiB") or lost the stored count. Below 100 columns the method goes, and the name takes what is left.
        width = self.console.console.width
        show_method = width >= WIDE
        self.name_width = max(12, min(36, width - (81 if show_method else 68)))  # the rest at their longest
        columns = [
            # Names and methods are data: shown literally (no markup, no emoji codes), styled by the column.
            TextColumn("{task.fields[name]}", style="bold", markup=False, table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[method]}", style="cyan", markup=False, table_column=Column(no_wrap=True)),
            # Rich's default fill is a pink that 16-colour terminals show as bright red: a CLI audit read a
            # normal upload as an error. Blue while it runs, green once stored.
            BarColumn(
                bar_width=None, complete_style="blue", finished_style="green", table_column=Column(ratio=1, min_width=2)
            ),
            StoredColumn(binary_units=True, table_column=Column(no_wrap=True)),  # stored: what a pause keeps
            # On the wire, stored or not; then the engine's speed (of bytes sent) and time left (of bytes still to
            # send), in MiB/s as the sizes and the window are: rich's own, from stored bytes, read MB/s and stood
            # still while a part was sent.
            TextColumn("{task.fields[sent]}", style="dim", markup=False, table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[speed]}", markup=False, table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[left]}", markup=False, table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[note]}", table_column=Column(no_wrap=True)),
        ]
        if not show_method:
            del columns[1]
        return Progress(*columns, console=self.console.console, transient=False, expand=True)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def _task(self, job_id: str) -> TaskID | None:
        return self.tasks.get(job_id)

    def handle(self, event: events.Event) -> None:
        with self.lock:
            if self.live:
                self._handle(event)
            else:
                self._handle_quietly(event)

    def _handle_quietly(self, event: events.Event) -> None:
        """No bars: remember each file's name, and print its notices."""
        if isinstance(event, events.Queued):  # the name as it is: escaping it would import rich
            self.names[event.job_id] = Path(event.path).name
        elif isinstance(event, events.Notice) and event.job_id in self.names:
            self.console.print(f"[yellow]{plain(self.names[event.job_id])}: {plain(event.message)}")

    def _handle(self, event: events.Event) -> None:
        if isinstance(event, events.Queued):
            name = Path(event.path).name
            self.names[event.job_id] = plain(name)
            self.tasks[event.job_id] = self.progress.add_task(
                "",
                total=max(event.size, 1),
                empty=event.size == 0,
                name=_short(shown(name), self.name_width),
                method="",
                note="queued",
                sent="",
                **STILL,
            )
            return
        task = self._task(event.job_id)
        if task is None:
            return
        if isinstance(event, events.Started):
            self.progress.update(task, method=shown(event.method), note="")
            for note in event.adjustments:
                self.console.print(f"[yellow]{self.names[event.job_id]}: {plain(note)}")
        elif isinstance(event, events.Progress):
            shown_method = shown(event.method)
            self.progress.update(
                task, completed=event.confirmed, method=shown_method, note="", sent=sent_text(event), **pace(event)
            )
        elif isinstance(event, events.Retrying):
            self.progress.update(task, note=f"[yellow]retry {event.attempt}/{event.max_attempts} in {event.delay:.0f}s")
        elif isinstance(event, events.FallingBack):
            self.console.print(
                f"[yellow]{self.names[event.job_id]}: {plain(event.from_method)} failed "
                f"({plain(event.reason)}); trying {plain(event.to_method)}"
            )
            self.progress.update(task, method=shown(event.to_method), completed=0)
        elif isinstance(event, events.Notice):
            self.console.print(f"[yellow]{self.names[event.job_id]}: {plain(event.message)}")
        elif isinstance(event, events.Completed):
            self.progress.update(task, completed=event.result.size or 1, note="[green]done", sent="", **STILL)
        elif isinstance(event, events.Failed):
            self.progress.update(task, note="[red]failed", **STILL)
        elif isinstance(event, events.StatusChanged) and event.status in (
            events.Status.PAUSED,
            events.Status.CANCELLED,
        ):
            self.progress.update(task, note=event.status.value, sent="", **STILL)


def sent_text(event: events.Progress) -> str:
    """Bytes on the wire next to the stored count, while they differ: a slow link shows movement before
    its first part is stored, and the gap is what a pause now would have to send again."""
    sent = max(event.sent, event.confirmed)
    return f"{human_bytes(sent)} sent" if sent > event.confirmed else ""


WIDE = 100  # columns from which the bars name the method too
STILL: dict[str, Any] = {"speed": "", "left": ""}  # nothing moving: no speed, no time left


def pace(event: events.Progress) -> dict[str, Any]:
    """The speed and time-left columns, as the window words them."""
    left = human_duration(event.eta) if event.speed else ""
    return {"speed": human_speed(event.speed), "left": f"{left} left" if left else ""}


def _short(name: str, width: int = 36) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def print_summary(
    out: Out, jobs: list[JobView], direct_flags: str = "", not_started: int = 0, servers: dict[str, str] | None = None
) -> None:
    """One block per file, each path on a line of its own so it can be copied whole; ``direct_flags``, your
    own S3 storage's flags as given, go in the resume hint of an upload sent there. ``not_started`` files were
    asked for but refused before they could start (said above): a CLI audit read "0 of 0 uploaded". ``servers``:
    the ``--server`` flag of an upload that started on another server than this session's."""
    done = sum(1 for j in jobs if j.status == events.Status.COMPLETED)
    out.print(f"[bold]{done} of {len(jobs) + not_started} uploaded")
    for job in jobs:
        result = job.result
        name = plain(job.path.name)
        if job.status == events.Status.COMPLETED and result is not None:
            out.print(f"[green]✓[/] {name}  [dim]({plain(result.method)}, {_what_it_took(result)})")
            if result.comfyui_path:
                out.print(f"    ComfyUI: {plain(result.comfyui_path)}", soft_wrap=True)
            out.print(f"    S3:      {plain(result.network_volume_path or result.s3_key)}", soft_wrap=True)
        else:
            mark = "[red]✗[/]" if job.status == events.Status.FAILED else "[yellow]‖[/]"
            method = f", {plain(job.method)}" if job.method else ""
            stored = f" · {human_bytes(job.confirmed)} of {human_bytes(job.size)} stored" if job.confirmed else ""
            out.print(f"{mark} {name}  [dim]({job.status.value}{method}){stored}")
            if job.message:
                out.print(f"    {plain(for_terminal(job.message))}", soft_wrap=True)
            if job.resumable:
                again = direct_flags if job.method == "direct-s3" else (servers or {}).get(job.id, "")
                out.print(f"    Resume with: desktop-uploader resume {job.id[:8]}{plain(again)}", soft_wrap=True)


def _what_it_took(result: events.UploadResult) -> str:
    """The size, and what this run sent in its time: a resume audit read "229 MiB in 5.8 s" as 39 MiB/s
    when most of it had been stored before the crash, and only the rest was sent then."""
    size, seconds = human_bytes(result.size), f" in {result.seconds:.1f} s" if result.seconds else ""
    if result.size > 0 and result.bytes_sent == 0:
        return f"{size}, all of it stored before"
    if 0 < result.bytes_sent < result.size:
        return f"{size}; {human_bytes(result.bytes_sent)} sent{seconds}, the rest was stored before"
    return f"{size}{seconds}"


def job_json(job: JobView) -> dict[str, Any]:
    result = job.result
    return {
        "id": job.id,
        "file": str(job.path),
        "displayName": job.display_name,
        "size": job.size,
        "status": job.status.value,
        "method": job.method,
        "message": for_terminal(job.message),
        "resumable": job.resumable,
        "stored": job.confirmed,  # bytes safe in storage: all of them once completed, a resume's head start if not
        "comfyUIPath": result.comfyui_path if result else None,
        "networkVolumePath": result.network_volume_path if result else None,
        "s3Key": result.s3_key if result else None,
        "etag": (result.etag or None) if result else None,  # null: the server did not say
        "seconds": round(result.seconds, 3) if result else None,
        "bytesSent": result.bytes_sent if result else None,
    }


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()
