"""The ending rules read as a table (engine/ending.py): which failures the window tries again by itself."""

from __future__ import annotations

from desktop_uploader.engine.ending import lost_connection
from desktop_uploader.engine.events import Failed


def test_only_a_lost_connection_or_a_busy_server_is_tried_again_by_itself() -> None:
    """A refused token or file would be refused again: those wait for the person."""
    assert lost_connection("NetworkError") and lost_connection("StalledError") and lost_connection("ServerBusyError")
    for kind in ("AuthError", "RejectedError", "PinnedChecksumError", "FileChangedError", "IntegrityError", ""):
        assert not lost_connection(kind), kind
    assert not lost_connection("UploaderError") and not lost_connection("lost_connection")
    assert Failed("j", "x", True, kind="NetworkError").retry_helps
