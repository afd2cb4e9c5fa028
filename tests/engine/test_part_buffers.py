"""Read buffers of parts in flight share one budget across every file the process uploads.

Eight files at once used to hold eight budgets (each file's parts split 8 MiB among themselves), which
put the benchmark's peak RSS past 100 MB; the budget is now the process's."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.partbody import BLOCK_BUDGET, BUFFER_HOLDERS, MAX_BLOCK, PartBody, block_for

FILES = 8
PARTS_PER_FILE = 6
PART = 4 * MAX_BLOCK


def _bodies(tmp_path: Path) -> list[PartBody]:
    bodies = []
    for index in range(FILES):
        path = tmp_path / f"model-{index}.safetensors"
        path.write_bytes(bytes([index]) * PART * PARTS_PER_FILE)
        for part in range(PARTS_PER_FILE):
            body = PartBody(
                path, part * PART, PART, control=Control(), on_sent=lambda _: None, max_block=block_for(PARTS_PER_FILE)
            )
            bodies.append(body)
    return bodies


def test_eight_files_at_once_hold_about_one_budget_of_read_buffers(tmp_path: Path) -> None:
    before = BUFFER_HOLDERS.held_bytes
    bodies = _bodies(tmp_path)
    for body in bodies:  # every part of every file in flight at once, each past its first block
        assert body.read(MAX_BLOCK)
    held = BUFFER_HOLDERS.held_bytes - before
    # Per file, each part would hold block_for(6) = 1 MiB: 48 MiB. Shared, the early parts keep larger
    # buffers than the late ones, and the sum stays within a few budgets.
    assert held <= 3 * BLOCK_BUDGET < FILES * PARTS_PER_FILE * block_for(PARTS_PER_FILE)
    for body in bodies:
        body.close()
    assert BUFFER_HOLDERS.held_bytes == before


def test_a_part_sent_again_after_the_others_ended_gets_a_large_block_again(tmp_path: Path) -> None:
    """The split follows the parts in flight now, not the most there ever were."""
    bodies = _bodies(tmp_path)
    for body in bodies:
        body.read(MAX_BLOCK)
    for body in bodies:
        body.close()
    alone = PartBody(tmp_path / "model-0.safetensors", 0, PART, control=Control(), on_sent=lambda _: None)
    sizes = []
    while block := alone.read(MAX_BLOCK):
        sizes.append(len(block))
    alone.close()
    assert max(sizes) == MAX_BLOCK and sum(sizes) == PART


def test_a_closed_part_body_cannot_take_a_buffer_it_would_never_give_back(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x" * PART)
    body = PartBody(path, 0, PART, control=Control(), on_sent=lambda _: None)
    body.close()
    before = BUFFER_HOLDERS.held_bytes
    with pytest.raises(ValueError):
        body.read(MAX_BLOCK)
    assert BUFFER_HOLDERS.held_bytes == before
