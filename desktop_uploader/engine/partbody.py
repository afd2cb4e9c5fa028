"""One part of a file, streamed from disk into an HTTP request body.

Nothing is buffered beyond one block, so memory stays flat however many parts are in flight: each
part reads into one buffer of its own, reused block after block (no allocation per block, so no
heap fragmentation over a long upload), and that buffer is smaller when many parts run at once
(:func:`block_for`): the parts of *every* file in the process share ``BLOCK_BUDGET``, so eight
files at once hold no more read buffers than one (a budget per file made 8 files at once pass
100 MB of RSS). Each read checks
the upload's control (pause and cancel act mid-part), takes its share of the bandwidth cap,
reports the bytes to progress, and can hash them on the way for an ETag check.

A pause keeps nearly-done work: a part that, at the moment of the pause, is expected to finish
within ``FINISH_GRACE`` seconds (at its own measured rate, once it is ``MIN_AGE`` old) goes on to
the end, and is stopped anyway if it is not done by twice that; every other part stops at once
and is sent again on resume. Cancel stops everything at once. A part may also be *shed* by the
scheduler (Auto took back a probe): it stops with ``Interrupted(SHED)`` and is queued again.

Block size adapts to the link: large blocks keep Python's per-block overhead small on fast links;
small blocks on slow links keep a pause prompt, because a block handed to the socket must drain
before the next check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from desktop_uploader.engine.bandwidth import TokenBucket
from desktop_uploader.engine.control import PAUSE, Control
from desktop_uploader.engine.errors import Interrupted
from desktop_uploader.engine.fileid import shrank, unreadable

MIN_BLOCK = 16 * 1024
MAX_BLOCK = 1024 * 1024
HASH_BLOCK = 256 * 1024
BLOCK_BUDGET = 8 * 1024 * 1024  # all parts in flight together, across every file in the process
FINISH_GRACE = 3.0  # seconds: a part this close to done when paused is let finish
MIN_AGE = 1.0  # seconds: a younger part's rate is mostly socket buffers filling, so it is not let finish
SHED = "shed"


def block_for(parts_in_flight: int) -> int:
    """The largest block each of ``parts_in_flight`` parts may read, within ``BLOCK_BUDGET``."""
    return max(4 * MIN_BLOCK, min(MAX_BLOCK, BLOCK_BUDGET // max(1, parts_in_flight)))


class _BufferHolders:
    """The part bodies in the process that hold a read buffer now, and its bytes: the budget's split."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._bytes = 0

    def take(self, size_for: Callable[[int], int]) -> int:
        """Join the holders and size one buffer by how many there are now, this one included."""
        with self._lock:
            self._count += 1
            size = size_for(self._count)
            self._bytes += size
            return size

    def give_back(self, size: int) -> None:
        with self._lock:
            self._count -= 1
            self._bytes -= size

    @property
    def held_bytes(self) -> int:
        """Bytes of read buffers held by parts in flight, across every upload in the process."""
        return self._bytes


BUFFER_HOLDERS = _BufferHolders()


def md5_of_span(path: Path, offset: int, size: int, control: Control | None = None) -> str:
    """Base64 MD5 of ``size`` bytes at ``offset``: the Content-MD5 header S3 verifies."""
    digest = hashlib.md5()
    for block in span_blocks(path, offset, size, control, HASH_BLOCK):
        digest.update(block)
    return base64.b64encode(digest.digest()).decode("ascii")


def span_blocks(path: Path, offset: int, size: int, control: Control | None, block_size: int) -> Iterator[bytes]:
    """``size`` bytes at ``offset``, block by block: what a checksum of a part reads.

    A checksum then holds one block however large the part, and many at once stay a few MiB. Fresh
    ``bytes`` suit every hash API (google-crc32c takes nothing else), and cost one copy fewer than
    reading into a reused buffer and copying out of it."""
    try:
        with open(path, "rb", buffering=0) as handle:
            handle.seek(offset)
            remaining = size
            while remaining:
                if control is not None:
                    control.check()
                block = handle.read(min(block_size, remaining))
                if not block:
                    raise shrank(path.name)
                remaining -= len(block)
                yield block
    except OSError as exc:
        raise unreadable(path, exc) from exc


class PartBody(io.RawIOBase):
    def __init__(
        self,
        path: Path,
        offset: int,
        size: int,
        *,
        control: Control,
        on_sent: Callable[[int], None],
        on_rewind: Callable[[], None] | None = None,
        limiter: TokenBucket | None = None,
        hash_md5: bool = False,
        clock: Callable[[], float] = time.monotonic,
        max_block: int = MAX_BLOCK,
    ) -> None:
        super().__init__()
        self.path = path
        self.offset = offset
        self.size = size
        self.control = control
        self.on_sent = on_sent
        self.on_rewind = on_rewind
        self.limiter = limiter
        self.clock = clock
        self._hash_md5 = hash_md5
        self._md5 = hashlib.md5() if hash_md5 else None
        self._position = 0
        self._handle: io.BufferedReader | None = None
        self._max_block = max(MIN_BLOCK, min(MAX_BLOCK, max_block))
        self._block = min(64 * 1024, self._max_block)
        self._buffer: memoryview | None = None
        self._last_read = 0.0
        self._started: float | None = None  # the first read of this attempt
        self._marks: tuple[tuple[float, int], tuple[float, int]] | None = None  # (time, position), a second apart
        self._finish_by: float | None = None  # set at a pause: how long this part may go on
        self.shed = False  # set by the scheduler: stop, and be queued again

    def _check(self) -> None:
        """Stop unless the upload goes on, or this part was let finish after a pause."""
        if self.shed:
            raise Interrupted(SHED)
        control = self.control
        if not control.stopping:
            return
        if control.reason == PAUSE and self._finishing():
            return
        raise Interrupted(control.reason)

    def _finishing(self) -> bool:
        now = self.clock()
        if self._finish_by is None:
            self._finish_by = float("-inf")
            age = now - self._started if self._started is not None else 0.0
            rate = self._recent_rate(now)
            if age >= MIN_AGE and rate > 0 and (self.size - self._position) / rate <= FINISH_GRACE:
                self._finish_by = now + 2 * FINISH_GRACE
        return now <= self._finish_by

    def _recent_rate(self, now: float) -> float:
        """This part's bytes/s over the last second or two: its share of the link once its socket
        buffers are full (since its start, the burst that filled them would count as speed)."""
        if self._marks is None:
            return 0.0
        t0, p0 = self._marks[0]
        return (self._position - p0) / (now - t0) if now - t0 > 0.2 else 0.0

    def _mark(self, now: float) -> None:
        if self._marks is None:
            self._marks = ((now, self._position), (now, self._position))
        elif now - self._marks[1][0] >= 1.0:
            self._marks = (self._marks[1], (now, self._position))

    def _sleep(self, seconds: float) -> None:
        """The bandwidth cap's wait: cut short by a pause, unless this part is finishing."""
        if self.control.stopping and self.control.reason == PAUSE and self._finishing():
            time.sleep(min(seconds, 0.25))
            return
        self.control.sleep(seconds)

    def __len__(self) -> int:
        return self.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._position + offset, io.SEEK_END: self.size + offset}[whence]
        if target not in (0, self._position):
            raise io.UnsupportedOperation("a part body can only be rewound to its start")
        if target == 0 and self._position:
            self._position = 0
            self._started = None
            self._marks = None
            self._md5 = hashlib.md5() if self._hash_md5 else None
            if self._handle is not None:
                self._handle.seek(self.offset)
            if self.on_rewind is not None:
                self.on_rewind()
        return self._position

    def _file(self) -> io.BufferedReader:
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - closed in close()
                self._handle.seek(self.offset + self._position)
            except OSError as exc:
                raise unreadable(self.path, exc) from exc
        return self._handle

    def read(self, size: int = -1) -> bytes | memoryview:
        """The next block, as a view of this part's own buffer: valid until the next read."""
        remaining = self.size - self._position
        if remaining <= 0:
            return b""  # all sent: only storage's answer is missing, and a pause waits for it
        self._check()
        if self._started is None:
            self._started = self.clock()
        want = min(remaining, self._block if size is None or size < 0 else min(size, self._block))
        if self.limiter is not None:
            self.limiter.throttle(want, self._sleep)
        buffer = self._buffer if self._buffer is not None else self._take_buffer()
        data = buffer[:want]
        try:
            got = self._file().readinto(data)
        except OSError as exc:
            raise unreadable(self.path, exc) from exc
        if got != want:
            raise shrank(self.path.name)
        if self._md5 is not None:
            self._md5.update(data)
        self._position += len(data)
        self._adapt()
        self._mark(self._last_read)
        self.on_sent(len(data))
        return data

    def _take_buffer(self) -> memoryview:
        """This part's one buffer, sized by the parts holding one now in every file of the process.

        A part that started while few others ran keeps its larger buffer to its end; the sum stays
        bounded all the same (``BLOCK_BUDGET`` times the harmonic sum over the parts in flight)."""
        if self.closed:
            raise ValueError("read from a closed part body")  # its buffer would never be given back
        size = BUFFER_HOLDERS.take(lambda holders: min(self._max_block, block_for(holders), self.size))
        self._max_block = size
        self._block = min(self._block, size)
        self._buffer = memoryview(bytearray(size))
        return self._buffer

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _adapt(self) -> None:
        now = self.clock()
        if self._last_read:
            gap = now - self._last_read
            if gap < 0.02 and self._block < self._max_block:
                self._block = min(self._block * 2, self._max_block)
            elif gap > 0.2 and self._block > MIN_BLOCK:
                self._block //= 2
        self._last_read = now

    @property
    def md5_hex(self) -> str | None:
        """MD5 of what was read, once the whole part has been read."""
        if self._md5 is None or self._position != self.size:
            return None
        return self._md5.hexdigest()

    def close(self) -> None:
        if self._buffer is not None:  # closed once by its sender, and again when collected
            BUFFER_HOLDERS.give_back(len(self._buffer))
            self._buffer = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()
