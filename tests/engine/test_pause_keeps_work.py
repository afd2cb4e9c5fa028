"""A pause keeps nearly-done work, and progress says what was sent next to what was stored: on a fake clock.

The end-to-end proof (real client, real storage, a capped link) is in test_capped_link.py; these pin the
rules themselves: which part a pause lets finish, for how long, and what a row and the CLI show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_uploader.cli.render import sent_text
from desktop_uploader.engine import events
from desktop_uploader.engine.control import CANCEL, PAUSE, Control
from desktop_uploader.engine.errors import Interrupted
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.partbody import FINISH_GRACE, SHED, PartBody
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.rows import Row

SIZE = 4 * MiB
BLOCK = 64 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def body_at(tmp_path: Path, fraction: float, seconds: float) -> tuple[PartBody, Control, FakeClock]:
    """A part that sent ``fraction`` of itself at an even pace over ``seconds``."""
    path = tmp_path / "part.bin"
    path.write_bytes(b"\x01" * SIZE)
    clock = FakeClock()
    control = Control()
    body = PartBody(path, 0, SIZE, control=control, on_sent=lambda _: None, clock=clock, max_block=BLOCK)
    blocks = int(SIZE * fraction) // BLOCK
    for _ in range(blocks):
        body.read(BLOCK)
        clock.now += seconds / blocks
    return body, control, clock


def read_to_end(body: PartBody, clock: FakeClock, step: float) -> int:
    got = 0
    while chunk := body.read(BLOCK):
        got += len(chunk)
        clock.now += step
    return got


def test_a_part_a_second_from_done_finishes_after_a_pause(tmp_path: Path) -> None:
    body, control, clock = body_at(tmp_path, 0.9, 9.0)  # 90 % in 9 s: 1 s to go
    control.request(PAUSE)
    assert read_to_end(body, clock, 1.0 / (SIZE * 0.1 / BLOCK)) > 0
    assert body.tell() == SIZE


def test_a_part_far_from_done_stops_at_once(tmp_path: Path) -> None:
    body, control, _ = body_at(tmp_path, 0.3, 3.0)  # 7 s to go
    control.request(PAUSE)
    with pytest.raises(Interrupted) as stopped:
        body.read(BLOCK)
    assert stopped.value.reason == PAUSE


def test_a_finishing_part_that_stalls_is_stopped_after_twice_the_grace(tmp_path: Path) -> None:
    body, control, clock = body_at(tmp_path, 0.9, 9.0)
    control.request(PAUSE)
    body.read(BLOCK)
    clock.now += 2 * FINISH_GRACE + 0.1  # the link went quiet: the part is no longer nearly done
    with pytest.raises(Interrupted):
        body.read(BLOCK)


def test_cancel_does_not_wait_for_any_part(tmp_path: Path) -> None:
    body, control, _ = body_at(tmp_path, 0.95, 9.5)
    control.request(CANCEL)
    with pytest.raises(Interrupted) as stopped:
        body.read(BLOCK)
    assert stopped.value.reason == CANCEL


def test_a_part_whose_bytes_are_all_handed_over_is_never_cut_by_a_pause(tmp_path: Path) -> None:
    """Only storage's answer is missing: cutting it now would throw the whole part away."""
    body, control, _ = body_at(tmp_path, 1.0, 0.05)  # young, and fast
    control.request(PAUSE)
    assert body.read(BLOCK) == b""


def test_a_shed_part_stops_even_while_the_upload_goes_on(tmp_path: Path) -> None:
    body, _, _ = body_at(tmp_path, 0.5, 5.0)
    body.shed = True
    with pytest.raises(Interrupted) as stopped:
        body.read(BLOCK)
    assert stopped.value.reason == SHED


def test_progress_reports_bytes_sent_next_to_bytes_stored() -> None:
    seen: list[events.Event] = []
    clock = FakeClock()
    tracker = ProgressTracker("job", "presigned-s3", 30 * MiB, seen.append, parts_total=3, clock=clock)
    tracker.sent(1, 4 * MiB)
    tracker.sent(2, 3 * MiB)
    snapshot = tracker.snapshot()
    assert (snapshot.confirmed, snapshot.sent) == (0, 7 * MiB), "a slow link moves before a part is stored"
    tracker.confirmed_part(1, 10 * MiB)
    snapshot = tracker.snapshot()
    assert (snapshot.confirmed, snapshot.in_flight, snapshot.sent) == (10 * MiB, 3 * MiB, 13 * MiB)
    tracker.restarted(2)  # a retry: what it had sent is no longer on its way
    assert tracker.snapshot().sent == 10 * MiB


def test_a_row_shows_sent_while_uploading_and_only_what_is_kept_once_paused() -> None:
    row = Row("job", Path("/tmp/model.safetensors"), "model.safetensors", 30 * MiB, status=Status.UPLOADING)
    progress = events.Progress("job", "presigned-s3", 10 * MiB, 5 * MiB, 30 * MiB, 1e6, 20.0, sent=15 * MiB)
    row.apply(progress, 0.0)
    assert (row.confirmed, row.sent) == (10 * MiB, 15 * MiB)
    row.apply(events.StatusChanged("job", Status.PAUSED, "Paused."), 0.0)
    assert row.sent == row.confirmed == 10 * MiB


def test_the_cli_shows_sent_bytes_only_while_they_differ_from_stored() -> None:
    moving = events.Progress("job", "presigned-s3", 0, 3 * MiB, 30 * MiB, 1e6, None, sent=3 * MiB)
    assert sent_text(moving) == "3.0 MiB sent"
    settled = events.Progress("job", "presigned-s3", 10 * MiB, 0, 30 * MiB, 1e6, None, sent=10 * MiB)
    assert sent_text(settled) == ""


def test_the_cli_bars_give_speed_and_time_left_as_the_window_does() -> None:
    """rich's own columns read MB/s beside MiB sizes, and their time left, from stored bytes, stood still."""
    import io

    from rich.console import Console

    from desktop_uploader.cli.render import Out, ProgressView

    out = Out()
    out._console = Console(file=io.StringIO(), width=200, color_system=None)
    view = ProgressView(out)
    view.handle(events.Queued("job", "/models/lora.safetensors", "lora.safetensors", 30 * MiB))
    view.handle(events.Started("job", "presigned-s3", 5 * MiB, 6))
    view.handle(events.Progress("job", "presigned-s3", 5 * MiB, 3 * MiB, 30 * MiB, 3.1 * MiB, 7.1, sent=8 * MiB))
    out.console.print(view.progress.get_renderable())
    line = out.console.file.getvalue()  # type: ignore[attr-defined]
    assert "5.0/30.0 MiB" in line and "8.0 MiB sent" in line
    assert "3.1 MiB/s" in line and "7 s left" in line and "MB/s" not in line.replace("MiB/s", "")
    view.handle(events.StatusChanged("job", Status.PAUSED, "Paused."))
    out.console.file = io.StringIO()
    out.console.print(view.progress.get_renderable())
    assert "MiB/s" not in out.console.file.getvalue() and "left" not in out.console.file.getvalue()


def test_the_cli_bars_keep_one_line_per_file_in_an_80_column_terminal() -> None:
    """At 80 columns each bar wrapped ("128.0/286.1" over "MiB"), or lost its stored count."""
    import io

    from rich.console import Console

    from desktop_uploader.cli.render import Out, ProgressView

    for width in (80, 100, 160):
        out = Out()
        out._console = Console(file=io.StringIO(), width=width, color_system=None)
        view = ProgressView(out)
        view.handle(events.Queued("a", "/models/portrait-lora-v2-final-final.safetensors", "x", 286 * MiB))
        view.handle(events.Queued("b", "/models/style.ckpt", "style.ckpt", 2 * MiB))
        view.handle(
            events.Progress("a", "presigned-s3", 128 * MiB, 40 * MiB, 286 * MiB, 38.2 * MiB, 75, sent=168 * MiB)
        )
        out.console.print(view.progress.get_renderable())
        lines = out.console.file.getvalue().splitlines()  # type: ignore[attr-defined]
        assert len(lines) == 2, lines
        assert all(part in lines[0] for part in ("128.0/286.0 MiB", "168.0 MiB sent", "38.2 MiB/s", "1 min 15 s left"))
        assert "style.ckpt" in lines[1] and "queued" in lines[1]
        assert ("presigned-s3" in lines[0]) == (width >= 100), "the method shows where there is room for it"
