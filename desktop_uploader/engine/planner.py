"""Turn a file size and the user's chunk-size wish into a part layout that S3 will accept.

The chunk size a person types is a wish. S3 refuses parts under 5 MiB (except the last) at
*completion*, after every byte has been sent, and allows at most 10,000 parts, so the wish is
raised when it must be and every raise comes with a sentence for the log saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from desktop_uploader.engine.errors import FileTooLargeError
from desktop_uploader.engine.limits import DEFAULT_LIMITS, MiB, S3Limits, human_bytes

# Raised part sizes are rounded up to whole MiB: page-aligned reads, and sizes people recognise.
_ALIGN = MiB


@dataclass(frozen=True)
class PartSpan:
    number: int  # 1-based, as S3 counts
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class PartPlan:
    file_size: int
    part_size: int
    part_count: int
    adjustments: tuple[str, ...] = ()

    def span(self, number: int) -> PartSpan:
        if not 1 <= number <= self.part_count:
            raise IndexError(f"part {number} is outside 1..{self.part_count}")
        offset = (number - 1) * self.part_size
        return PartSpan(number, offset, min(self.part_size, self.file_size - offset))

    def spans(self) -> Iterator[PartSpan]:
        for number in range(1, self.part_count + 1):
            yield self.span(number)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def plan_parts(file_size: int, chunk_wish: int, limits: S3Limits = DEFAULT_LIMITS) -> PartPlan:
    """Equal parts of at least the wish, raised to satisfy ``limits``; one part for small files."""
    if file_size < 0:
        raise ValueError("file size must not be negative")
    if file_size > limits.max_object_size:
        raise FileTooLargeError(file_size, limits.max_object_size)
    notes: list[str] = []
    part_size = max(1, chunk_wish)
    if part_size < limits.min_part_size:
        notes.append(
            f"Chunk size {human_bytes(part_size)} is below the {human_bytes(limits.min_part_size)} "
            f"minimum that S3 accepts for every part but the last; using "
            f"{human_bytes(limits.min_part_size)} parts instead."
        )
        part_size = limits.min_part_size
    if part_size > limits.max_part_size:
        notes.append(
            f"Chunk size {human_bytes(part_size)} is above the {human_bytes(limits.max_part_size)} "
            f"maximum part size; using {human_bytes(limits.max_part_size)}."
        )
        part_size = limits.max_part_size
    if -(-file_size // part_size) > limits.max_parts:
        needed = _round_up(-(-file_size // limits.max_parts), _ALIGN)
        needed = min(max(needed, limits.min_part_size), limits.max_part_size)
        notes.append(
            f"{human_bytes(file_size)} in {human_bytes(part_size)} parts would need more than "
            f"{limits.max_parts:,} parts; using {human_bytes(needed)} parts."
        )
        part_size = needed
    part_count = max(1, -(-file_size // part_size))
    if part_count > limits.max_parts:  # only when even max-size parts can't cover the file
        raise FileTooLargeError(file_size, limits.max_parts * limits.max_part_size)
    if part_count == 1:
        part_size = max(file_size, 0)
    return PartPlan(file_size=file_size, part_size=part_size, part_count=part_count, adjustments=tuple(notes))
