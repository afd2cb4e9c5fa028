"""A ``concurrent.futures.Executor`` on a QThreadPool: the engine's work runs on Qt's own thread pool.

The engine takes any Executor, so the CLI uses the standard library's and the GUI this one. Each
executor owns its QThreadPool (not the global one), so a pool of upload threads can never starve
Qt's own users of the global pool, and file-level and part-level work can't starve each other.

Every future handed out is kept until it is done, so that shutting down with ``cancel_futures``
cancels the ones whose work never started, as the standard library's executor does: whoever waits
on one learns it will never run instead of waiting for ever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QThreadPool

T = TypeVar("T")


class QtPoolExecutor(Executor):
    # How long an idle pool thread lives (Qt's default is 30 s); tests shorten it to cycle threads.
    expiry_ms = 60_000

    def __init__(self, max_threads: int, name: str) -> None:
        self.pool = QThreadPool()
        self.pool.setObjectName(name)
        self.pool.setMaxThreadCount(max_threads)
        self.pool.setExpiryTimeout(self.expiry_ms)
        self._shutdown = False
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()  # handed out and not done yet

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._pending.add(future)
        future.add_done_callback(self._forget)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            self.pool.start(run)
        except BaseException:
            future.cancel()  # never queued: nobody must wait for it
            raise
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """With ``wait``, also destroy the pool now, joining its idle threads.

        Idle pool threads otherwise live until they expire, and if that happens while Python is
        finalizing, tearing down their thread states crashes the interpreter.
        """
        with self._lock:
            if self._shutdown and not wait and not cancel_futures:
                return
            self._shutdown = True
        if cancel_futures:
            # Cancelling first: a task a pool thread has just taken, but not started, then returns at once
            # instead of running after its future said it never would. Running tasks are not cancelled.
            with self._lock:
                pending = list(self._pending)
            for future in pending:
                future.cancel()
            if shiboken6.isValid(self.pool):
                self.pool.clear()
        if wait and shiboken6.isValid(self.pool):
            self.pool.waitForDone()
            shiboken6.delete(self.pool)
