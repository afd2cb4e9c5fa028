"""Fire-and-forget coroutines on the qasync loop, kept alive until they finish and never silent on failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_running: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coroutine)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("A background task failed", exc_info=task.exception())


def pending() -> int:
    return len(_running)


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking work on the loop's worker threads and await it from the GUI thread."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)
