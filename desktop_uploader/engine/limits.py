"""S3's multipart rules, in one place for the client's planner and the server's checks.

The numbers are AWS's; SeaweedFS, MinIO and R2 enforce the same minimum (``EntityTooSmall`` at
completion), and stores with tighter rules (RunPod: parts of at most 500 MB) advertise them in the
API's capabilities, which the client turns into a narrower :class:`S3Limits`.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


def human_bytes(n: float) -> str:
    """Binary units with one decimal, as people read file sizes in a file manager."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class S3Limits:
    min_part_size: int = 5 * MiB
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_object_size: int = 5 * TiB
    max_single_put: int = 5 * GiB

    def narrowed(
        self,
        *,
        min_part_size: int | None = None,
        max_part_size: int | None = None,
        max_parts: int | None = None,
        max_object_size: int | None = None,
    ) -> S3Limits:
        """Limits that satisfy both S3 and what a particular server says about itself.

        A server may only make the rules stricter: a capabilities document that claims a 1 MiB
        minimum part would still be rejected by the store at completion.
        """
        return S3Limits(
            min_part_size=max(self.min_part_size, min_part_size or 0),
            max_part_size=min(self.max_part_size, max_part_size or self.max_part_size),
            max_parts=min(self.max_parts, max_parts or self.max_parts),
            max_object_size=min(self.max_object_size, max_object_size or self.max_object_size),
            max_single_put=self.max_single_put,
        )


DEFAULT_LIMITS = S3Limits()


def layout_problem(file_size: int, total_parts: int, limits: S3Limits = DEFAULT_LIMITS) -> str | None:
    """Why ``file_size`` bytes can't be sent as ``total_parts`` equal parts, or ``None`` if they can.

    Used by the server at ``start`` so that a client with a too-small chunk size hears about it
    before sending gigabytes that S3 would refuse at completion. The message says what would work.
    """
    if file_size < 0:
        return "fileSize must not be negative."
    if not 1 <= total_parts <= limits.max_parts:
        return f"totalParts must be between 1 and {limits.max_parts:,}."
    if file_size > limits.max_object_size:
        return (
            f"The file is {human_bytes(file_size)}; this server accepts files of at most "
            f"{human_bytes(limits.max_object_size)}."
        )
    if file_size > total_parts * limits.max_part_size:
        fewest = -(-file_size // limits.max_part_size)
        return (
            f"{total_parts:,} parts for {human_bytes(file_size)} would make parts larger than "
            f"{human_bytes(limits.max_part_size)}; use at least {fewest:,} parts."
        )
    if total_parts > 1 and file_size <= (total_parts - 1) * limits.min_part_size:
        most = max(1, -(-file_size // limits.min_part_size))
        return (
            f"{total_parts:,} parts for {human_bytes(file_size)} would make parts smaller than "
            f"{human_bytes(limits.min_part_size)}, which S3 refuses (every part but the last must be at "
            f"least {human_bytes(limits.min_part_size)}); use at most {most:,} parts."
        )
    return None
