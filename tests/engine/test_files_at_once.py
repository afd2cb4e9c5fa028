"""Files at once, changed while uploads run: a higher number starts more now, a lower one pauses nobody."""

from __future__ import annotations

from typing import Any

from desktop_uploader.engine.events import Completed, Started, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings


def test_a_higher_files_at_once_starts_more_now_and_a_lower_one_lets_running_uploads_finish(
    make_engine: Any, make_file: Any
) -> None:
    """What Settings says of it, proven: an audit lowered it and saw the running uploads go on, as they should,
    under a sentence that had promised it applied at once."""
    settings = Settings(files_at_once=1, bandwidth_limit=4 * 1000 * 1000, chunk_size=5 * MiB, concurrency=1)
    engine = make_engine(settings)
    manager = engine.manager
    ids = [manager.add(make_file(16 * MiB, name=f"file{i}.safetensors").path) for i in range(3)]

    def status(i: int) -> Status:
        return manager.job(ids[i]).status

    engine.wait_for(lambda: status(0).active)
    assert (status(1), status(2)) == (Status.QUEUED, Status.QUEUED)
    manager.update_settings(settings.replace(files_at_once=2))
    engine.wait_for(lambda: status(1).active)  # started beside the first, which goes on
    assert status(0).active and status(2) is Status.QUEUED
    manager.update_settings(settings.replace(files_at_once=1))
    assert status(0).active and status(1).active and status(2) is Status.QUEUED  # nobody paused for it
    assert manager.wait(ids, 180)
    assert [manager.job(i).status for i in ids] == [Status.COMPLETED] * 3
    order = [(type(e), e.job_id) for e in engine.events if isinstance(e, (Started, Completed))]
    third = order.index((Started, ids[2]))
    assert third > min(order.index((Completed, ids[0])), order.index((Completed, ids[1])))
