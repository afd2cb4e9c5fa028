"""A process that writes to the resume store, step by step, until it is killed.

``python -m tests.faults.state_worker DB`` reads a JSON list of operations on stdin, applies them one by
one through :class:`StateStore`, and prints ``done N`` (flushed) after the N-th has returned. The test
kills it with SIGKILL at a random moment and then checks that the store is exactly what the first N or
N + 1 operations made it: a write is either wholly there or not at all, and none that returned is lost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.state import SavedPart, StateStore, UploadRecord


def record(upload: str, **fields: Any) -> UploadRecord:
    return UploadRecord(
        id=upload,
        path=f"/models/{upload}.safetensors",
        display_name=upload,
        identity=FileIdentity(123, 456, "a" * 64, "b" * 64),
        method="presigned-s3",
        server="test",
        **fields,
    )


def apply(store: StateStore, op: dict[str, Any]) -> None:
    kind, upload = op["op"], op["upload"]
    if kind == "create":
        store.create(record(upload, upload_id=op.get("upload_id"), part_count=op["parts"], part_size=5))
    elif kind == "update":
        store.update(upload, status=op["status"], message=op["message"], chunk_offset=op["offset"])
    elif kind == "part":
        store.record_part(upload, op["number"], op["etag"], op["size"])
    elif kind == "replace_parts":
        store.replace_parts(upload, [SavedPart(n, e, s) for n, e, s in op["parts"]])
    elif kind == "urls":
        store.save_urls(upload, {int(n): (u, float(x)) for n, (u, x) in op["urls"].items()})
    elif kind == "delete":
        store.delete(upload)
    else:
        raise ValueError(kind)


def main() -> int:
    operations = json.loads(sys.stdin.read())
    store = StateStore.open(Path(sys.argv[1]))
    print("ready", flush=True)
    for number, op in enumerate(operations, start=1):
        apply(store, op)
        print(f"done {number}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
