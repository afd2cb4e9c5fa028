"""The chunked fallback: bytes come through the API in small chunks and leave as legal S3 parts.

Chunks are at most 4 MiB (serverless body limits), S3 parts at least 5 MiB, so chunks are staged
until a part's worth has arrived. **All of that state is in object storage**, none on the instance:
any instance behind a load balancer takes any chunk of any upload, and an instance can die between
two chunks without losing one. Per upload, under ``{key_prefix}/.chunked/{hash of the upload id}/``:

- ``size-{fileSize}-part-{partSize}``: an empty marker written at ``start``; the upload's layout.
- ``chunk-{offset:020d}``: a staged chunk, its bytes from ``offset`` on.

and the multipart upload itself, whose parts (ListParts) are the bytes already assembled. Part
``n`` always covers ``[(n-1)·partSize, n·partSize)``. So ``received`` is the parts' total plus the
staged chunks that continue it without a gap; staged chunks before that total are leftovers of a
flush that was cut short, and ignored. A flush uploads the next part from the staged chunks, then
stages the tail of the last chunk (the bytes past the part) at its own offset, then deletes the
chunks it consumed: a crash between any two steps leaves ``received`` at most *smaller* than the
bytes sent (the client then resends from there), never larger.

Memory: a chunk's body is streamed to an unnamed file in ``spool_dir`` as it arrives and to storage
from there; a part is assembled in such a file from its staged chunks: no request holds a chunk or a
part in memory. The cost of statelessness is storage traffic: each byte is staged, read back once,
and sent as a part (3× the bytes of the presigned path, which this is the fallback for).

Concurrency: the protocol is sequential (a client sends a chunk after the previous one's answer),
so two requests for one upload at once are a client's retry of the same chunk: the same bytes at the
same offset, staged under the same name. Within an instance a lock per upload orders them. Across
instances nothing does: if both then flush the same part, both upload the same bytes as that part
(an overwrite), and the slower finds the chunks it was reading deleted; it then answers from what
storage holds, as a ``status`` would. Two ``complete`` calls racing the same way: the slower answers
with the object the faster completed, as a retried ``complete`` would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from desktop_uploader.engine.limits import MiB, human_bytes
from desktop_uploader.engine.planner import plan_parts
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.models import (
    ChunkedAbortRequest,
    ChunkedCompleteRequest,
    ChunkedStartRequest,
    ChunkedStatusRequest,
)
from desktop_uploader.server.naming import checked_name, metadata_for, new_destination, owned_destination
from desktop_uploader.server.presigned import PresignedService, content_type_of
from desktop_uploader.server.room import check_room
from desktop_uploader.server.storage import Storage

log = logging.getLogger(__name__)

# Larger parts than S3's minimum mean fewer UploadPart calls; staging is in storage either way.
_PART_WISH = 8 * MiB
_MARKER = re.compile(r"size-(\d+)-part-(\d+)$")
_CHUNK = re.compile(r"chunk-(\d{20})$")
_GONE = "No such chunked upload (it was completed, aborted, or never started)."


class FileHead(io.RawIOBase):
    """``length`` bytes of an open file from ``start``, as a seekable stream: bytes go to storage from disk."""

    def __init__(self, handle: IO[bytes], length: int, start: int = 0) -> None:
        super().__init__()
        self._handle = handle
        self._start = start
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        # Straight from the file: RawIOBase's read() would allocate, fill and copy a buffer per call.
        left = self._length - self._position
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        self._handle.seek(self._start + self._position)
        data = self._handle.read(wanted)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _OvertakenError(Exception):
    """A chunk being flushed was deleted meanwhile: another instance flushed the same part."""


@dataclass
class Staged:
    """One upload's state, as read from storage."""

    stage: str
    file_size: int
    part_size: int
    parts: int  # how many parts are stored (numbered 1..parts)
    stored: int  # their bytes
    chunks: list[tuple[int, int, str]] = field(default_factory=list)  # (offset, size, key) continuing ``stored``
    stale: list[str] = field(default_factory=list)  # staged chunks a finished flush left behind

    @property
    def received(self) -> int:
        return self.stored + sum(size for _, size, _ in self.chunks)

    @property
    def staged(self) -> int:
        return self.received - self.stored


class ChunkedService:
    def __init__(self, config: ServerConfig, storage: Storage, presigned: PresignedService) -> None:
        self.config = config
        self.storage = storage
        self.presigned = presigned
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _enabled(self) -> None:
        if not self.config.chunked_enabled:
            raise ApiError(404, "Chunked uploads are not offered by this server.")

    def _lock(self, upload_id: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:  # locks of finished uploads: drop the idle ones
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(upload_id, threading.Lock())

    def staging_root(self) -> str:
        """Where every chunked upload's staged state lives (user ids can't start with '.', so no user's folder)."""
        return f"{self.config.key_prefix}/.chunked/"

    def stage_of(self, upload_id: str) -> str:
        return self.staging_root() + hashlib.sha256(upload_id.encode()).hexdigest()[:40] + "/"

    def incoming(self) -> IO[bytes]:
        """Where a chunk's body is streamed as it arrives: an unnamed file in the spool dir, gone when closed."""
        return tempfile.TemporaryFile(dir=self.config.spool_dir)

    def _state(self, user_id: str, upload_id: str, s3_key: str) -> Staged:
        owned_destination(self.config, user_id, s3_key)
        stage = self.stage_of(upload_id)
        objects = self.storage.list_objects(stage)
        layout = [m for key, _, _ in objects if (m := _MARKER.search(key))]
        if not layout:
            raise ApiError(404, _GONE)
        parts = self.storage.list_parts(s3_key, upload_id)  # 404 unless this upload id is this key's
        state = Staged(stage, int(layout[0].group(1)), int(layout[0].group(2)), len(parts), sum(p.size for p in parts))
        cursor = state.stored
        for offset, size, key in sorted(
            (int(m.group(1)), size, key) for key, size, _ in objects if (m := _CHUNK.search(key))
        ):
            if offset == cursor and size:
                state.chunks.append((offset, size, key))
                cursor += size
            elif offset < state.stored:
                state.stale.append(key)
        return state

    def _within_cap(self, user_id: str) -> None:
        """Each unfinished chunked upload may hold up to a part's worth of staged chunks in the bucket;
        the age-based cleanup bounds how long, this bounds how many one person can hold at once."""
        held = len(self.storage.list_uploads(f"{self.config.key_prefix}/{user_id}/"))
        if held >= self.config.max_open_chunked_per_user:
            raise ApiError(
                429,
                f"You have {held} unfinished uploads on this server, the most it keeps for one person. "
                "Finish or cancel some of them, then start this one again.",
            )

    def start(self, user_id: str, request: ChunkedStartRequest) -> dict[str, Any]:
        self._enabled()
        name = checked_name(self.config, request.file_name)
        if request.file_size > self.config.max_file_size:
            raise ApiError(
                400,
                f"The file is {human_bytes(request.file_size)}; this server accepts at most "
                f"{human_bytes(self.config.max_file_size)}.",
            )
        self._within_cap(user_id)
        check_room(self.config.local_store_dir, request.file_size)
        plan = plan_parts(request.file_size, _PART_WISH, self.config.limits)
        destination = new_destination(self.config, user_id, name)
        upload_id = self.storage.create_multipart(
            destination.s3_key,
            content_type_of(request.content_type),
            metadata_for(request.display_name, request.file_name),
        )
        part_size = max(plan.part_size, self.config.limits.min_part_size)
        marker = f"{self.stage_of(upload_id)}size-{request.file_size}-part-{part_size}"
        self.storage.put_object(marker, io.BytesIO(b""), 0, "application/octet-stream", {})
        return {
            "uploadId": upload_id,
            "s3Key": destination.s3_key,
            "uniqueFileName": destination.unique_file_name,
            "comfyUIPath": destination.comfyui_path,
            "maxChunkBytes": self.config.chunk_max_bytes,
        }

    def chunk(
        self, user_id: str, upload_id: str, s3_key: str, offset: int, source: IO[bytes], length: int
    ) -> dict[str, Any]:
        """Stage ``length`` bytes read from ``source`` at ``offset``; never the whole chunk in memory."""
        self._enabled()
        if length > self.config.chunk_max_bytes:
            raise ApiError(413, f"A chunk may be at most {human_bytes(self.config.chunk_max_bytes)}.")
        with self._lock(upload_id):
            state = self._state(user_id, upload_id, s3_key)
            if offset != state.received:
                raise ApiError(
                    409, f"Expected the chunk at offset {state.received}, got {offset}.", expectedOffset=state.received
                )
            if offset + length > state.file_size:
                raise ApiError(400, f"This chunk would go past the declared file size of {state.file_size} bytes.")
            if length:
                key = f"{state.stage}chunk-{offset:020d}"
                self.storage.put_object(key, FileHead(source, length), length, "application/octet-stream", {})
                state.chunks.append((offset, length, key))
            try:
                while state.staged >= state.part_size and state.stored + state.part_size < state.file_size:
                    self._flush(s3_key, upload_id, state, state.part_size)
            except _OvertakenError:
                # Another instance flushed these chunks first (a client's retry racing its original there):
                # what storage holds now is the answer.
                log.info("Chunked upload %s: another instance flushed this part first", s3_key)
                state = self._state(user_id, upload_id, s3_key)
            return {"received": state.received}

    def _flush(self, s3_key: str, upload_id: str, state: Staged, size: int) -> None:
        """Upload the next part (``size`` bytes) from the staged chunks; stage the last one's tail."""
        with tempfile.TemporaryFile(dir=self.config.spool_dir) as assembly:
            consumed: list[str] = []
            gathered = 0
            while gathered < size:
                _, chunk_size, key = state.chunks.pop(0)
                try:
                    self.storage.download_into(key, assembly)
                except ApiError as exc:
                    if exc.status == 404:  # consumed and deleted by another instance's flush of this part
                        raise _OvertakenError from exc
                    raise
                gathered += chunk_size
                consumed.append(key)
            assembly.flush()
            self.storage.upload_part(s3_key, upload_id, state.parts + 1, FileHead(assembly, size), size)
            state.parts += 1
            state.stored += size
            if gathered > size:  # the last chunk reached past the part: its tail is the next part's start
                tail_key = f"{state.stage}chunk-{state.stored:020d}"
                tail = gathered - size
                self.storage.put_object(tail_key, FileHead(assembly, tail, size), tail, "application/octet-stream", {})
                state.chunks.insert(0, (state.stored, tail, tail_key))
        for key in [*consumed, *state.stale]:
            self.storage.delete_object(key)
        state.stale = []

    def forget(self, upload_id: str) -> None:
        """The upload was aborted through the presigned action: its staged chunks go too, and a chunk
        still arriving finds no upload to join."""
        with self._lock(upload_id):
            self.discard(upload_id)

    def discard(self, upload_id: str) -> None:
        """Delete an upload's staged state (the marker and any chunks)."""
        for key, _, _ in self.storage.list_objects(self.stage_of(upload_id)):
            self.storage.delete_object(key)

    def _completed(self, missing: ApiError, user_id: str, s3_key: str) -> tuple[int, str]:
        """Size and ETag of the object an upload whose staging is gone already completed, else ``missing``.

        A complete whose answer was lost (a reset, a crash of the client) is asked again, or resumed with
        ``status``; its staging is gone by then, but its object is at its key, which no other upload shares.
        Answering with that object, not a 404, is what keeps the client from storing the file twice.
        """
        owned_destination(self.config, user_id, s3_key)
        found = self.storage.existing(s3_key) if missing.status == 404 else None
        if found is None:
            raise missing
        return found

    def status(self, user_id: str, request: ChunkedStatusRequest) -> dict[str, Any]:
        self._enabled()
        with self._lock(request.upload_id):
            try:
                state = self._state(user_id, request.upload_id, request.s3_key)
            except ApiError as missing:
                size, _ = self._completed(missing, user_id, request.s3_key)
                return {"received": size, "fileSize": size}
            return {"received": state.received, "fileSize": state.file_size}

    def complete(self, user_id: str, request: ChunkedCompleteRequest) -> dict[str, Any]:
        self._enabled()
        with self._lock(request.upload_id):
            try:
                state = self._state(user_id, request.upload_id, request.s3_key)
            except ApiError as missing:
                _, etag = self._completed(missing, user_id, request.s3_key)
                return self.presigned.completion(owned_destination(self.config, user_id, request.s3_key), etag)
            if state.received != state.file_size:
                raise ApiError(
                    400,
                    f"Only {state.received} of {state.file_size} bytes have arrived; send the rest before completing.",
                    expectedOffset=state.received,
                )
            try:
                if state.staged or not state.parts:
                    self._flush(request.s3_key, request.upload_id, state, state.staged)
                stored = self.storage.list_parts(request.s3_key, request.upload_id)
                parts: list[tuple[int, str, tuple[str, str] | None]] = [(p.number, p.etag, None) for p in stored]
                etag = self.storage.complete(request.s3_key, request.upload_id, parts)
            except (_OvertakenError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status != 404:
                    raise
                # Another instance completed it meanwhile (a retried complete racing its original there).
                _, etag = self._completed(ApiError(404, _GONE), user_id, request.s3_key)
            else:
                self.discard(request.upload_id)
        return self.presigned.completion(owned_destination(self.config, user_id, request.s3_key), etag)

    def abort(self, user_id: str, request: ChunkedAbortRequest) -> dict[str, Any]:
        self._enabled()
        destination = owned_destination(self.config, user_id, request.s3_key)
        with self._lock(request.upload_id):
            self.storage.abort(destination.s3_key, request.upload_id)
            with contextlib.suppress(ApiError):
                self.discard(request.upload_id)
        return {"success": True, "message": "Upload aborted"}
