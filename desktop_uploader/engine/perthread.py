"""One resource per thread (a database connection, an HTTP session), closed when its thread ends.

Keeping a resource per thread avoids a lock on the hot path, but a registry that only lets go at
shutdown leaks one per thread that ever lived: Qt's pool retires idle threads after a while and its
new ones open their own, and on a QThreadPool thread Python's thread state (and with it every
``threading.local`` value) is even dropped after each task. So each resource sits in a
``threading.local`` slot whose finalizer closes it the moment Python lets go of the slot: when a
standard thread exits, or when a Qt pool thread finishes its task. The owner can still close every
resource still open (at shutdown), and the count of open ones is there for tests to watch.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class _Slot(Generic[R]):
    """What a thread's ``threading.local`` holds: its death is the signal to close the resource."""

    __slots__ = ("__weakref__", "resource")

    def __init__(self, resource: R) -> None:
        self.resource = resource


class PerThread(Generic[R]):
    def __init__(self, make: Callable[[], R], close: Callable[[R], None]) -> None:
        self._make = make
        self._close = close
        self._local = threading.local()
        self._open: dict[int, R] = {}  # every resource not closed yet, by a number of its own
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def get(self) -> R:
        """This thread's resource, made on first use."""
        slot: _Slot[R] | None = getattr(self._local, "slot", None)
        if slot is None:
            resource = self._make()
            number = next(self._numbers)
            slot = _Slot(resource)
            with self._lock:
                self._open[number] = resource
            # No atexit call: at interpreter exit the owner's close() has run, or the process is going anyway.
            weakref.finalize(slot, self._release, number).atexit = False
            self._local.slot = slot
        return slot.resource

    def _release(self, number: int) -> None:
        """Runs on the ending thread, as Python drops its thread-local values."""
        with self._lock:
            resource = self._open.pop(number, None)
        if resource is not None:
            self._close_quietly(resource)

    def _close_quietly(self, resource: R) -> None:
        try:
            self._close(resource)
        except Exception as exc:  # a finalizer must not raise; a resource that won't close is gone anyway
            log.debug("Closing a per-thread resource failed: %s", exc)

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        """Close every resource still open (threads that use theirs afterwards get a closed one)."""
        with self._lock:
            resources = list(self._open.values())
            self._open.clear()
        for resource in resources:
            self._close_quietly(resource)
