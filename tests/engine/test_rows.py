"""What a queue row says and offers, folded from events: the GUI paints exactly this."""

from __future__ import annotations

from pathlib import Path

from desktop_uploader.engine import events
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import Row, RowAction, human_duration, human_speed, plural, summarize


def row(**changes: object) -> Row:
    base = Row("job", Path("/m/lora.safetensors"), "lora", 100 * MiB)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def result(comfyui: str | None = "/runpod-volume/loras/u/x") -> events.UploadResult:
    return events.UploadResult("direct-s3", 1, "x", "loras/x", comfyui, "s3://b/loras/x", "etag")


def test_progress_speed_and_eta_read_like_a_person_would_say_them() -> None:
    r = row(status=Status.UPLOADING)
    r.apply(events.Progress("job", "presigned-s3", 25 * MiB, 3 * MiB, 100 * MiB, 12_500_000, 95.0), now=0)
    assert r.progress_text() == "25.0 MiB of 100.0 MiB stored · 25%"
    assert r.rate_text() == "11.9 MiB/s · 1 min 35 s left"
    assert r.status_text(0) == "Uploading" and r.method == "presigned-s3"
    assert human_speed(900) == "1 KiB/s" and human_duration(3 * 3600 + 61) == "3 h 1 min"
    assert human_duration(0.3) == "1 s", 'a third of a second still to send is not "0 s left"'
    # Around a 1 MiB/s limit the readings stay in one unit (a GUI audit saw 1004, 1015, 1024 KiB/s and 1.0 MiB/s).
    assert {human_speed(kib * 1024) for kib in (1004, 1015, 1024, 1030)} == {"1.0 MiB/s"}
    assert human_speed(999 * 1024) == "999 KiB/s"


def test_retrying_counts_down_says_why_until_more_is_stored_then_returns_to_uploading() -> None:
    r = row(status=Status.UPLOADING)
    r.apply(events.Progress("job", "presigned-s3", 10 * MiB, 0, 100 * MiB, 0.0, None), now=99.0)
    r.apply(events.Retrying("job", "presigned-s3", 4, 1, 5, 4.0, "The connection to storage was lost."), now=100.0)
    assert r.status_text(100.0) == "Retrying in 4 s (attempt 2/5)"
    assert r.status_text(102.5) == "Retrying in 2 s (attempt 2/5)"
    # Its new try on a dead link takes a timeout: the row said a bare "Uploading" for a minute (a network audit).
    r.apply(events.Progress("job", "presigned-s3", 10 * MiB, 5 * MiB, 100 * MiB, 0.0, None), now=104.5)
    assert r.status_text(104.5) == "Retrying (attempt 2/5): The connection to storage was lost."
    r.apply(events.Progress("job", "presigned-s3", 15 * MiB, 5 * MiB, 100 * MiB, 0.0, None), now=110.0)
    assert r.status_text(110.0) == "Uploading", "stored again: the link works"


def test_each_state_offers_the_actions_that_make_sense() -> None:
    assert row(status=Status.UPLOADING).actions() == [RowAction.PAUSE, RowAction.CANCEL]
    assert row(status=Status.PAUSED).actions() == [RowAction.RESUME, RowAction.CANCEL]
    assert row(status=Status.INTERRUPTED).actions() == [RowAction.RESUME, RowAction.DISCARD]
    assert row(status=Status.FAILED).actions() == [RowAction.RETRY, RowAction.REMOVE]
    refused = row(status=Status.FAILED, message="The server refused the file.")
    assert refused.actions() == [RowAction.RETRY, RowAction.REMOVE, RowAction.COPY_MESSAGE]
    assert refused.clipboard_text(RowAction.COPY_MESSAGE) == "The server refused the file."
    assert row(status=Status.FAILED, resumable=True).actions() == [RowAction.RETRY, RowAction.DISCARD]
    done = row(status=Status.COMPLETED, result=result())
    assert done.actions() == [RowAction.REMOVE, RowAction.COPY_COMFYUI, RowAction.COPY_S3]
    assert done.primary_action() == RowAction.COPY_COMFYUI
    assert row(status=Status.COMPLETED, result=result(None)).primary_action() == RowAction.COPY_S3


def test_a_stored_file_still_finishing_offers_its_paths_not_pause_or_cancel() -> None:
    """Storage's answer (Completed) comes a moment before the status does; nothing is left to stop."""
    r = row(status=Status.UPLOADING)
    r.apply(events.StatusChanged("job", Status.COMPLETING, "Finishing…"), now=0)
    assert r.actions() == [RowAction.PAUSE, RowAction.CANCEL]
    r.apply(events.Completed("job", result()), now=0)
    assert r.status_text(0) == "Finishing…"
    assert r.actions() == [RowAction.COPY_COMFYUI, RowAction.COPY_S3]
    assert r.primary_action() == RowAction.COPY_COMFYUI


def test_the_summary_counts_what_a_person_cares_about() -> None:
    rows = [
        row(status=Status.COMPLETED),
        row(status=Status.UPLOADING, confirmed=50 * MiB, speed=2e6),
        row(status=Status.FAILED, message="nope"),
        row(status=Status.CANCELLED),
    ]
    summary = summarize(rows)
    assert (summary.total, summary.done, summary.active, summary.failed) == (3, 1, 1, 1)
    assert summary.text() == "1 of 3 done · 1 uploading · 1 failed · 1 cancelled · 1.9 MiB/s"
    assert summary.fraction == (100 + 50) / 300
    # Every row is counted somewhere: "2 of 3 done · 1 cancelled" left an audit's paused third unexplained.
    rows += [row(status=Status.QUEUED), row(status=Status.PAUSED), row(status=Status.INTERRUPTED)]
    said = summarize(rows).text()
    assert (
        said == "1 of 6 done · 1 uploading · 1 waiting · 1 paused · 1 interrupted · 1 failed · 1 cancelled · 1.9 MiB/s"
    )
    # Files nobody started (automatic start off, or waiting when the window was quit) read "Not started" on their
    # rows: a busy-machine audit's status bar summed 40 of them and 2 paused ones as "42 paused".
    rows += [row(status=Status.PAUSED, message=events.NOT_STARTED) for _ in range(2)]
    said = summarize(rows).text()
    assert said.startswith("1 of 8 done · 1 uploading · 1 waiting · 2 not started · 1 paused · 1 interrupted"), said


def test_counts_are_said_in_the_singular_or_the_plural() -> None:
    assert (plural(1, "upload"), plural(2, "upload"), plural(0, "file")) == ("1 upload", "2 uploads", "0 files")
    assert plural(3, "entry", "entries") == "3 entries"


def test_the_s3_path_is_an_s3_url_or_the_key_never_a_volume_file_path() -> None:
    assert row(result=result()).s3_path == "s3://b/loras/x"
    volume = events.UploadResult("presigned-s3", 1, "x", "loras/x", "/runpod-volume/x", "/runpod-volume/x", "e")
    done = row(status=Status.COMPLETED, result=volume)
    assert done.s3_path == "loras/x" and done.clipboard_text(RowAction.COPY_S3) == "loras/x"
    assert done.clipboard_text(RowAction.COPY_COMFYUI) == "/runpod-volume/x"
    legacy = events.UploadResult("serverless-function", 1, "x", "", "/runpod-volume/x", "/runpod-volume/x", "e")
    assert RowAction.COPY_S3 not in row(status=Status.COMPLETED, result=legacy).actions()  # nothing to copy


def test_a_slow_link_shows_bytes_sent_before_any_are_stored_and_a_pause_keeps_only_the_stored() -> None:
    r = row(status=Status.UPLOADING)
    r.apply(events.Progress("job", "presigned-s3", 0, 12 * MiB, 100 * MiB, 0.0, None, sent=12 * MiB), now=0)
    assert r.progress_text() == "0 B of 100.0 MiB stored · 0%"  # stored: what a pause keeps
    assert r.status_text(0) == "Uploading · 12.0 MiB sent"  # on the wire: the link is moving
    r.apply(events.Progress("job", "presigned-s3", 16 * MiB, 0, 100 * MiB, 2e6, 40.0, sent=16 * MiB), now=1)
    assert r.status_text(1) == "Uploading"  # everything sent is stored: nothing more to say
    r.apply(events.Progress("job", "presigned-s3", 16 * MiB, 4 * MiB, 100 * MiB, 2e6, 40.0, sent=20 * MiB), now=2)
    r.apply(events.StatusChanged("job", Status.PAUSED), now=3)
    assert (r.status_text(3), r.progress_text()) == ("Paused", "16.0 MiB of 100.0 MiB stored · 16%")


def test_a_file_nobody_started_reads_not_started_and_offers_start_not_resume() -> None:
    """With automatic start off, an added file waits as PAUSED: "Paused" and "Resume" told a person who had
    paused nothing that they had."""
    r = row()
    r.apply(events.StatusChanged("job", Status.PAUSED, events.NOT_STARTED), now=0)
    assert r.status_text(0) == "Not started"
    assert [r.action_label(action) for action in r.actions()] == ["Start", "Cancel"]
    r.apply(events.StatusChanged("job", Status.UPLOADING), now=1)
    r.apply(events.Progress("job", "presigned-s3", 8 * MiB, 0, 100 * MiB, 2e6, 40.0, sent=8 * MiB), now=2)
    r.apply(events.StatusChanged("job", Status.PAUSED), now=3)
    assert r.status_text(3) == "Paused"
    assert [r.action_label(action) for action in r.actions()] == ["Resume", "Cancel"]


def test_a_resumed_upload_says_resuming_only_until_it_sends_beyond_what_was_stored() -> None:
    """A GUI audit saw "Resuming…" stay while stored grew from 64 to 128 MiB: it waited for a speed reading."""
    r = row(status=Status.PAUSED, confirmed=64 * MiB, sent=64 * MiB)
    r.apply(events.StatusChanged("job", Status.UPLOADING, events.RESUMING), now=0)
    assert r.status_text(0) == "Resuming…"
    r.apply(events.Started("job", "presigned-s3", 8 * MiB, 13, 64 * MiB), now=0)
    assert r.status_text(0) == "Resuming…"
    r.apply(events.Progress("job", "presigned-s3", 64 * MiB, 16 * MiB, 100 * MiB, 0.0, None, sent=80 * MiB), now=1)
    assert r.status_text(1) == "Uploading · 80.0 MiB sent", "sending again, before any speed is measured"
    r.apply(events.Progress("job", "presigned-s3", 96 * MiB, 0, 100 * MiB, 0.0, None, sent=96 * MiB), now=2)
    assert r.status_text(2) == "Uploading"
