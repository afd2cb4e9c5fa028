"""An upload one command is sending is named as such by the others, never resumed, discarded or sent twice."""

from __future__ import annotations

import signal
from typing import Any

from desktop_uploader.engine.limits import MiB
from tests.cli.test_cli import wait_for_parts
from tests.support.storage import open_multipart_uploads

RUNNING = "is being uploaded by another Desktop Uploader window or command right now; pause it there first"


def test_an_upload_running_in_another_command_is_named_and_never_resumed_discarded_or_sent_twice(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A CLI audit: with an upload running in one terminal, ``resume ID`` in another said the id "matches no
    interrupted upload", ``list`` said there were none, and uploading the same file began a second upload."""
    sample = make_file(40 * MiB)
    running = cli.popen(
        "upload", str(sample.path), "--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB"
    )
    try:
        wait_for_parts(cli.home, 1, running)
        listing = cli("list", "--json")
        assert listing.code == 0, listing.stderr
        [busy] = listing.json()["runningElsewhere"]
        assert busy["file"] == str(sample.path) and listing.json()["uploads"] == []
        human = cli("list")
        said = " ".join((human.stdout + human.stderr).split())
        assert (
            f"No interrupted uploads. 1 upload is running in another window or command: {busy['displayName']}." in said
        )
        for command in ("resume", "discard"):
            refused = cli(command, busy["id"][:8])
            assert refused.code == 2, refused.stderr
            assert f"'{busy['id'][:8]}' ({busy['displayName']}) {RUNNING}" in " ".join(refused.stderr.split())
        again = cli("upload", str(sample.path), "--json")
        assert again.code == 1, again.stderr
        [refused_upload] = again.json()["uploads"]
        assert refused_upload["status"] == "failed" and RUNNING in refused_upload["message"]
        told = cli("upload", str(sample.path))
        assert told.code == 1 and "0 of 1 uploaded" in told.stdout, told.stdout  # not "0 of 0"
        assert running.poll() is None  # the first one goes on, untouched
    finally:
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=60)
    [paused] = cli("list", "--json").json()["uploads"]
    opened = [u for u in open_multipart_uploads(s3, sandbox.bucket) if sample.path.stem in u["Key"]]
    assert [u["Key"] for u in opened] == [paused["s3Key"]]  # one upload of this file, the first command's
    assert cli("discard", paused["id"]).code == 0  # the bucket is shared: leave no upload open in it
