"""The window benchmark's plumbing: a real window in its own process uploads what it is handed, and says so.

Times are never asserted (benchmarks/resident.py measures them); what is checked is that the sample
stands for a real upload: the sink counted the file's bytes, the window answered for that file, and
the same file dropped again on the same open window is uploaded again (the finished row was cleared, so
it is not "already in the queue"), and a file that is not a model is answered at once, not waited for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.measure import make_file
from benchmarks.resident import ResidentWindow, run_resident
from benchmarks.servers import SinkServers

MiB = 1 << 20


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[SinkServers]:
    servers = SinkServers(tmp_path / "sink")
    try:
        yield servers
    finally:
        servers.stop()


def test_the_open_window_uploads_each_file_it_is_handed_and_the_sink_counts_every_byte(
    servers: SinkServers, tmp_path: Path
) -> None:
    target = servers.start()
    window = ResidentWindow(target, tmp_path / "home")
    window.start()
    try:
        model = make_file(tmp_path / "files" / "lora.safetensors", 6 * MiB + 7)
        notes = tmp_path / "files" / "notes.txt"
        notes.write_text("not a model", encoding="utf-8")
        samples = [run_resident("sink-64mib", window, path, n, servers) for n, path in enumerate([model, model], 1)]
        refused = run_resident("sink-64mib", window, notes, 3, servers)
    finally:
        window.stop()
    assert [(s.ok, s.note) for s in samples] == [(True, ""), (True, "")]
    assert [s.extra["payload_bytes"] for s in samples] == [6 * MiB + 7] * 2
    assert not refused.ok
    assert refused.note.startswith("not added: Added 0 files.")
    assert all(s.wall > 0 and s.max_rss > 0 and s.extra["idle_rss_mib"] > 0 for s in samples)
    assert window.process is None
