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


def _this_loops() -> list[asyncio.Task[Any]]:
    """Tasks of the running loop. A task of a loop that was closed never runs again: it is dropped."""
    loop = _loop()
    for task in [t for t in _running if t.get_loop() is not loop and t.get_loop().is_closed()]:
        _running.discard(task)
    return [task for task in _running if task.get_loop() is loop]


def pending() -> int:
    """Work still running on this loop (a save, a question, a test of the connection)."""
    return len(_this_loops())


async def cancel_pending() -> None:
    """Cancel what a closed window left running (a question nobody will answer now), and let it unwind."""
    tasks = [task for task in _this_loops() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking work on the loop's worker threads and await it from the GUI thread."""
    return await _loop().run_in_executor(None, function, *args)


def _loop() -> asyncio.AbstractEventLoop:
    """The qasync loop. It also steps tasks from Qt events outside its own run (a window closed while Qt
    alone dispatches events: the close question's first step), when asyncio knows of no running loop."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()
