"""The app's own files (settings, resume store, logs) as the real CLI finds them: damaged, or exposed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.state import StateStore, UploadRecord

NOTICE = "The settings file could not be read, so the default settings are in use. It was moved to"


def _interrupted(home: Path, server: str) -> None:
    """A record as a killed upload leaves it (its upload id is unknown to storage)."""
    state = StateStore.open(home / "data" / "uploads.sqlite3")
    state.create(
        UploadRecord(
            id="0123456789abcdef",
            path=str(home / "gone.ckpt"),
            display_name="gone",
            identity=FileIdentity(10, 1, "a", "b"),
            method="presigned-s3",
            server=server,
            status="paused",
            upload_id="no-such-upload",
            s3_key="loras/gone.ckpt",
        )
    )
    state.close()


def test_every_command_works_with_a_damaged_settings_file_and_says_so_once(
    cli: Any, make_file: Any, sandbox: Any
) -> None:
    settings = cli.home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    sample = make_file(1 * MiB, name="fine.ckpt")
    _interrupted(cli.home, sandbox.server_id)
    for content, command, codes in (
        (b'{"server_url": "caf\xe9"}', ("upload", str(sample.path)), {0}),
        (b"{not json", ("list",), {0}),
        (b"\xff\xfe{}", ("discard", "01234567"), {0, 1}),
        (b"[1, 2]", ("resume", "--all"), {0}),
    ):
        settings.write_bytes(content)
        result = cli(*command)
        assert result.code in codes, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "Something went wrong" not in result.stderr
        if command[0] != "list":  # list doesn't need settings, so it leaves the file alone
            assert result.stderr.count(NOTICE) == 1, (command, result.stderr)
            asides = sorted(settings.parent.glob("settings.json.damaged-*"))
            assert any(a.read_bytes() == content for a in asides) and not settings.exists()
            for aside in asides:
                aside.unlink()
