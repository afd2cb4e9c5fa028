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


class _Open(Generic[R]):
    """The resources not closed yet, by a number of their own.

    Apart from :class:`PerThread`, so that the finalizers hold this and not the owner: an owner
    nobody uses any more can then be collected, and its thread-local slots (and resources) with it.
    """

    def __init__(self, close: Callable[[R], None]) -> None:
        self._close = close
        self._resources: dict[int, R] = {}
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def add(self, resource: R) -> int:
        number = next(self._numbers)
        with self._lock:
            self._resources[number] = resource
        return number

    def release(self, number: int) -> None:
        """Runs on the ending thread, as Python drops its thread-local values."""
        with self._lock:
            resource = self._resources.pop(number, None)
        if resource is not None:
            self._close_quietly(resource)

    def release_all(self) -> None:
        with self._lock:
            resources = list(self._resources.values())
            self._resources.clear()
        for resource in resources:
            self._close_quietly(resource)

    def __len__(self) -> int:
        with self._lock:
            return len(self._resources)

    def _close_quietly(self, resource: R) -> None:
        try:
            self._close(resource)
        except Exception as exc:  # a finalizer must not raise; a resource that won't close is gone anyway
            log.debug("Closing a per-thread resource failed: %s", exc)


class PerThread(Generic[R]):
    def __init__(self, make: Callable[[], R], close: Callable[[R], None]) -> None:
        self._make = make
        self._local = threading.local()
        self._open: _Open[R] = _Open(close)

    def get(self) -> R:
        """This thread's resource, made on first use."""
        slot: _Slot[R] | None = getattr(self._local, "slot", None)
        if slot is None:
            resource = self._make()
            slot = _Slot(resource)
            # No atexit call: at interpreter exit the owner's close() has run, or the process is going anyway.
            weakref.finalize(slot, self._open.release, self._open.add(resource)).atexit = False
            self._local.slot = slot
        return slot.resource

    def open_count(self) -> int:
        return len(self._open)

    def close(self) -> None:
        """Close every resource still open (threads that use theirs afterwards get a closed one)."""
        self._open.release_all()
