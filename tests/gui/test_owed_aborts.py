"""The window sends the aborts earlier sessions owe, as soon as it is connected to their server.

Before, only the CLI swept: someone who only ever used the window left every owed abort (a cancel
while offline, a lost start) on the server for good.
"""

from __future__ import annotations

from typing import Any

from desktop_uploader.engine.fileid import identify
from desktop_uploader.engine.methods.base import PRESIGNED
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord
from desktop_uploader.paths import resolve_paths
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api import Api
from tests.support.storage import open_multipart_uploads


def test_the_window_removes_an_upload_given_up_offline_once_it_connects(
    make_desktop: Any, make_file: Any, api: Api, sandbox: SandboxInfo, s3: Any
) -> None:
    sample = make_file(6 * 1024 * 1024, name="cancelled-offline.safetensors")
    size = sample.path.stat().st_size
    start = {"action": "start", "fileName": sample.path.name, "totalParts": 1, "fileSize": size}
    started = api.ok(api.presigned(start))
    state = StateStore.open(resolve_paths().ensure().state_db)
    state.create(
        UploadRecord(
            id="feedfacefeedfacefeedfacefeedface",
            path=str(sample.path),
            display_name=sample.path.name,
            identity=identify(sample.path),
            method=PRESIGNED,
            server=sandbox.api_url,  # the id of a server configured by its address
            status=OWED_ABORT,
            upload_id=started["uploadId"],
            s3_key=started["s3Key"],
        )
    )
    state.close()

    desktop = make_desktop()

    assert not [u for u in open_multipart_uploads(s3, sandbox.bucket) if u["UploadId"] == started["uploadId"]]
    assert desktop.session.manager.owed_aborts() == []
    assert desktop.session.model.rowCount() == 0, "an owed abort is not an upload to resume"
