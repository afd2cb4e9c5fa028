"""``serverless-function``: the whole file in one form POST, the legacy path for small files."""

from __future__ import annotations

from desktop_uploader.engine.errors import UnsupportedError
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.methods.base import LEGACY, Completion, JobContext
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.state import UploadRecord


def fits(size: int, max_bytes: int) -> bool:
    return max_bytes > 0 and size <= max_bytes


class SingleRequestMethod:
    name = LEGACY

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        """Nothing is left half-done on the server by a single request."""

    def run(self, ctx: JobContext) -> Completion:
        api = ctx.api
        assert api is not None, "single-request uploads need the API"
        caps = api.capabilities(control=ctx.control)
        if not caps.legacy_path:
            raise UnsupportedError("This server does not offer single-request uploads.")
        if not fits(ctx.size, caps.legacy_max_bytes):
            raise UnsupportedError(
                f"Single-request uploads are limited to {human_bytes(caps.legacy_max_bytes)} on this server."
            )
        tracker = ProgressTracker(ctx.job_id, LEGACY, ctx.size, ctx.emit, parts_total=1)
        ctx.announce(LEGACY, PartPlan(ctx.size, ctx.size, 1))
        tracker.flush()
        ensure_unchanged(ctx.path, ctx.identity)
        completion = api.legacy_upload(ctx.path, ctx.name, display_name=ctx.display_name, control=ctx.control)
        tracker.advance_to(ctx.size)
        volume = completion.network_volume_path or ""
        key = volume.split("/", 3)[3] if volume.startswith("s3://") and volume.count("/") >= 3 else ""
        return Completion(
            s3_key=key,
            unique_file_name=completion.unique_file_name,
            comfyui_path=completion.comfyui_path,
            network_volume_path=completion.network_volume_path,
            etag=completion.etag,
            size=ctx.size,
            bytes_sent=ctx.size,
        )
