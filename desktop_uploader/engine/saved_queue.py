"""Files still waiting in the queue when the app quit, so they come back the next time it opens.

The resume store only knows uploads that have started (it is written when a run creates its
server-side upload). A file queued behind them, or paused before it started, has nothing there, and
was dropped on quit although the quit dialog promises that uploads continue. They are kept here, as
a small JSON file (0600: it names the user's files), rewritten whenever what waits changes (so a
crash or a kill loses nothing either) and read once on start.

Started uploads are listed too, by id: their resume records bring them back (queueing the same file
again is then a no-op), and those the person had paused show as "Paused" (as they were), not
"Interrupted". So writing this list needs no look into the resume store.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from desktop_uploader.engine.private import private_dir, private_file

log = logging.getLogger(__name__)

FILE_NAME = "queue.json"


@dataclass(frozen=True)
class SavedRow:
    path: str
    display_name: str
    paused: bool  # the person paused it (or it was never started): it comes back paused, not running
    job_id: str = ""  # a started upload's resume record has this id; the record brings it back, not this


@dataclass(frozen=True)
class SavedQueue:
    rows: list[SavedRow] = field(default_factory=list)
    saved_at: float = 0.0  # seconds since the epoch: an upload completed later is not brought back

    @property
    def paused_ids(self) -> set[str]:
        return {row.job_id for row in self.rows if row.paused and row.job_id}


def save_queue(data_dir: Path, saved: SavedQueue) -> None:
    """Replace the saved queue (atomically: a crash mid-write leaves the old one or the new one)."""
    target = data_dir / FILE_NAME
    if not saved.rows:
        target.unlink(missing_ok=True)
        return
    private_dir(data_dir)
    temporary = private_file(data_dir / f"{FILE_NAME}.tmp")
    temporary.write_text(json.dumps({"rows": [asdict(row) for row in saved.rows], "saved_at": saved.saved_at}))
    os.replace(temporary, target)


def take_queue(data_dir: Path) -> SavedQueue:
    """The saved queue, which is then forgotten (the queue holds the rows again); a damaged one is empty."""
    target = data_dir / FILE_NAME
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
        rows = [
            SavedRow(str(item["path"]), str(item["display_name"]), bool(item["paused"]), str(item.get("job_id", "")))
            for item in raw["rows"]
        ]
        saved = SavedQueue(rows, float(raw.get("saved_at", 0.0)))
    except FileNotFoundError:
        return SavedQueue()
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("The saved queue %s could not be read (%s); it is left out", target, exc)
        saved = SavedQueue()
    target.unlink(missing_ok=True)
    return saved
