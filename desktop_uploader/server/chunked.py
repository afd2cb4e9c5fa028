"""The chunked fallback: bytes come through the API in small chunks and leave as legal S3 parts.

Why a spool: chunks are at most 4 MiB (serverless body limits), S3 parts at least 5 MiB. So each
upload has a folder under ``spool_dir`` on this server's local disk holding the bytes not yet sent
as a part, and a ``meta.json`` naming the parts already stored and the current spool file.

Memory: a chunk's body is streamed to an unnamed file in the spool dir as it arrives, appended to the
spool from there, and a part goes to storage read from the spool file: no request holds a chunk or a
part in memory, whatever the chunk size.

Crash safety: a flush writes the remainder to a *new* spool file, then atomically replaces
``meta.json`` (which names the new file and the new part), then deletes the old spool. A crash at
any point leaves a meta.json whose part list and spool file agree, so ``received`` never lies;
at worst a part is uploaded twice under the same number, which S3 treats as an overwrite.

Several server instances: the spool is local, so chunks of one upload must reach the same instance
(sticky routing on ``uploadId``), or ``spool_dir`` must be a shared volume. A chunk that reaches an
instance without the spool gets a 404 and the client restarts that file through another method.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
from desktop_uploader.server.naming import (
    checked_name,
    metadata_for,
    new_destination,
    owned_destination,
)
from desktop_uploader.server.presigned import PresignedService, content_type_of
from desktop_uploader.server.storage import Storage

# Larger parts than S3's minimum mean fewer UploadPart calls; the spool stays on disk either way.
_PART_WISH = 8 * MiB
_COPY_BLOCK = 1 * MiB


@dataclass
class SpoolMeta:
    upload_id: str
    s3_key: str
    user_id: str
    file_size: int
    part_size: int
    generation: int = 0
    parts: list[list[Any]] = field(default_factory=list)  # [number, etag, size]

    @property
    def stored(self) -> int:
        return sum(int(p[2]) for p in self.parts)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class FileHead(io.RawIOBase):
    """The first ``length`` bytes of an open file as a seekable stream: a part goes to storage from disk."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        super().__init__()
        self._handle = handle
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
        self._handle.seek(self._position)
        data = self._handle.read(wanted)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        self._handle.seek(self._position)
        got = self._handle.readinto(memoryview(buffer)[:wanted])  # type: ignore[attr-defined]
        self._position += got
        return int(got)


class ChunkSpool:
    """One folder per upload; all mutation happens under that upload's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def folder(self, upload_id: str) -> Path:
        return self.root / hashlib.sha256(upload_id.encode()).hexdigest()[:40]

    def lock(self, upload_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(upload_id, threading.Lock())

    def spool_file(self, meta: SpoolMeta) -> Path:
        return self.folder(meta.upload_id) / f"spool-{meta.generation}"

    def create(self, meta: SpoolMeta) -> None:
        folder = self.folder(meta.upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.spool_file(meta).touch()
        self.save(meta)

    def load(self, upload_id: str) -> SpoolMeta | None:
        try:
            raw = json.loads((self.folder(upload_id) / "meta.json").read_text(encoding="utf-8"))
            return SpoolMeta(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, meta: SpoolMeta) -> None:
        folder = self.folder(meta.upload_id)
        tmp = folder / "meta.json.tmp"
        _fsync_write(tmp, json.dumps(asdict(meta)).encode())
        os.replace(tmp, folder / "meta.json")

    def spooled(self, meta: SpoolMeta) -> int:
        try:
            return self.spool_file(meta).stat().st_size
        except FileNotFoundError:
            return 0

    def received(self, meta: SpoolMeta) -> int:
        return meta.stored + self.spooled(meta)

    def append(self, meta: SpoolMeta, source: IO[bytes]) -> None:
        with open(self.spool_file(meta), "ab") as handle:
            shutil.copyfileobj(source, handle, _COPY_BLOCK)
            handle.flush()
            os.fsync(handle.fileno())

    def advance(self, meta: SpoolMeta, part: list[Any], consumed: int) -> None:
        """Record ``part`` as stored and keep only the spool bytes after ``consumed``."""
        old = self.spool_file(meta)
        meta.generation += 1
        meta.parts.append(part)
        with open(old, "rb") as source, open(self.spool_file(meta), "wb") as handle:
            source.seek(consumed)
            shutil.copyfileobj(source, handle, _COPY_BLOCK)
            handle.flush()
            os.fsync(handle.fileno())
        self.save(meta)
        old.unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        shutil.rmtree(self.folder(upload_id), ignore_errors=True)
        with self._guard:
            self._locks.pop(upload_id, None)


class ChunkedService:
    def __init__(self, config: ServerConfig, storage: Storage, presigned: PresignedService) -> None:
        self.config = config
        self.storage = storage
        self.presigned = presigned
        self.spool = ChunkSpool(config.spool_dir)

    def _enabled(self) -> None:
        if not self.config.chunked_enabled:
            raise ApiError(404, "Chunked uploads are not offered by this server.")

    def _meta(self, user_id: str, upload_id: str, s3_key: str) -> SpoolMeta:
        owned_destination(self.config, user_id, s3_key)
        meta = self.spool.load(upload_id)
        if meta is None or meta.s3_key != s3_key or meta.user_id != user_id:
            raise ApiError(404, "No such chunked upload on this server (it was completed, aborted, or never started).")
        return meta

    def start(self, user_id: str, request: ChunkedStartRequest) -> dict[str, Any]:
        self._enabled()
        name = checked_name(self.config, request.file_name)
        if request.file_size > self.config.max_file_size:
            raise ApiError(
                400,
                f"The file is {human_bytes(request.file_size)}; this server accepts at most "
                f"{human_bytes(self.config.max_file_size)}.",
            )
        plan = plan_parts(request.file_size, _PART_WISH, self.config.limits)
        destination = new_destination(self.config, user_id, name)
        upload_id = self.storage.create_multipart(
            destination.s3_key,
            content_type_of(request.content_type),
            metadata_for(request.display_name, request.file_name),
        )
        part_size = max(plan.part_size, self.config.limits.min_part_size)
        self.spool.create(SpoolMeta(upload_id, destination.s3_key, user_id, request.file_size, part_size))
        return {
            "uploadId": upload_id,
            "s3Key": destination.s3_key,
            "uniqueFileName": destination.unique_file_name,
            "comfyUIPath": destination.comfyui_path,
            "maxChunkBytes": self.config.chunk_max_bytes,
        }

    def incoming(self) -> IO[bytes]:
        """Where a chunk's body is streamed as it arrives: an unnamed file in the spool dir, gone when closed."""
        return tempfile.TemporaryFile(dir=self.config.spool_dir)

    def chunk(
        self, user_id: str, upload_id: str, s3_key: str, offset: int, source: IO[bytes], length: int
    ) -> dict[str, Any]:
        """Append ``length`` bytes read from ``source`` at ``offset``; never the whole chunk in memory."""
        self._enabled()
        if length > self.config.chunk_max_bytes:
            raise ApiError(413, f"A chunk may be at most {human_bytes(self.config.chunk_max_bytes)}.")
        with self.spool.lock(upload_id):
            meta = self._meta(user_id, upload_id, s3_key)
            received = self.spool.received(meta)
            if offset != received:
                raise ApiError(409, f"Expected the chunk at offset {received}, got {offset}.", expectedOffset=received)
            if received + length > meta.file_size:
                raise ApiError(400, f"This chunk would go past the declared file size of {meta.file_size} bytes.")
            if length:
                self.spool.append(meta, source)
            while self.spool.spooled(meta) >= meta.part_size and meta.stored + meta.part_size < meta.file_size:
                self._flush(meta, meta.part_size)
            return {"received": self.spool.received(meta)}

    def _flush(self, meta: SpoolMeta, size: int) -> None:
        number = len(meta.parts) + 1
        with open(self.spool.spool_file(meta), "rb") as handle:
            etag = self.storage.upload_part(meta.s3_key, meta.upload_id, number, FileHead(handle, size), size)
        self.spool.advance(meta, [number, etag, size], size)

    def _completed(self, missing: ApiError, user_id: str, s3_key: str) -> tuple[int, str]:
        """Size and ETag of the object an upload whose spool is gone already completed, else ``missing``.

        A complete whose answer was lost (a reset, a crash of the client) is asked again, or resumed with
        ``status``; its spool is gone by then, but its object is at its key, which no other upload shares.
        Answering with that object, not a 404, is what keeps the client from storing the file twice.
        """
        owned_destination(self.config, user_id, s3_key)
        found = self.storage.existing(s3_key) if missing.status == 404 else None
        if found is None:
            raise missing
        return found

    def status(self, user_id: str, request: ChunkedStatusRequest) -> dict[str, Any]:
        self._enabled()
        with self.spool.lock(request.upload_id):
            try:
                meta = self._meta(user_id, request.upload_id, request.s3_key)
            except ApiError as missing:
                size, _ = self._completed(missing, user_id, request.s3_key)
                return {"received": size, "fileSize": size}
            return {"received": self.spool.received(meta), "fileSize": meta.file_size}

    def complete(self, user_id: str, request: ChunkedCompleteRequest) -> dict[str, Any]:
        self._enabled()
        with self.spool.lock(request.upload_id):
            try:
                meta = self._meta(user_id, request.upload_id, request.s3_key)
            except ApiError as missing:
                _, etag = self._completed(missing, user_id, request.s3_key)
                return self.presigned.completion(owned_destination(self.config, user_id, request.s3_key), etag)
            received = self.spool.received(meta)
            if received != meta.file_size:
                raise ApiError(
                    400,
                    f"Only {received} of {meta.file_size} bytes have arrived; send the rest before completing.",
                    expectedOffset=received,
                )
            if self.spool.spooled(meta) or not meta.parts:
                self._flush(meta, self.spool.spooled(meta))
            parts = [(int(p[0]), str(p[1]), None) for p in meta.parts]  # its own parts carry no checksums
            etag = self.storage.complete(meta.s3_key, meta.upload_id, parts)
            self.spool.discard(meta.upload_id)
        destination = owned_destination(self.config, user_id, meta.s3_key)
        return self.presigned.completion(destination, etag)

    def abort(self, user_id: str, request: ChunkedAbortRequest) -> dict[str, Any]:
        self._enabled()
        destination = owned_destination(self.config, user_id, request.s3_key)
        with self.spool.lock(request.upload_id):
            meta = self.spool.load(request.upload_id)
            if meta is not None and (meta.user_id != user_id or meta.s3_key != request.s3_key):
                raise ApiError(404, "No such chunked upload on this server.")
            self.storage.abort(destination.s3_key, request.upload_id)
            with contextlib.suppress(OSError):
                self.spool.discard(request.upload_id)
        return {"success": True, "message": "Upload aborted"}
