"""Python's cycle collector runs on the GUI thread only, from a timer.

CPython collects in whichever thread allocates past the threshold, which in this app is mostly an upload
thread. A garbage cycle holding a Qt object (a dialog's wrapper and a lambda slot, say) was then destroyed
there: ``~QObject`` takes Qt's connection lock (one of a pool of mutexes picked by address, so any object's
lock may be another's) and then asks for the GIL for shiboken's override lookup, while the GUI thread,
holding the GIL, waited in a ``connect()`` for a lock of the same pool. The window froze for good; a busy
test run did (2026-12-02, py-spy: the GUI thread in ``QToolButton::setDefaultAction`` →
``QBasicMutex::lockInternal``; an upload thread in ``gc_collect_main`` → ``QObject::~QObject`` →
``GilState::acquire``). The remedy the Qt bindings' users settled on: automatic collection off, and the
interpreter's own thresholds checked on the GUI thread a few times a second. Reference counting, which
frees nearly everything, is untouched.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 250


class GuiThreadCollector(QObject):
    """Collects the generations CPython would have, as it would have, but on the thread it lives on."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def running(self) -> bool:
        return self._timer.isActive() and not gc.isenabled()

    def stop(self) -> None:
        """Back to the interpreter's own collections (the tests, between windows), after one here."""
        self._timer.stop()
        gc.collect()
        gc.enable()

    def collect_due(self) -> int | None:
        """The oldest generation whose count is past its threshold, collected; None when none is due."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return None
        generation = 0
        if counts[1] > thresholds[1]:
            generation = 2 if counts[2] > thresholds[2] else 1
        gc.collect(generation)
        return generation


_installed: GuiThreadCollector | None = None


def collect_on_gui_thread() -> GuiThreadCollector:
    """The app's one collector, started (idempotent); it lives as long as the QApplication."""
    global _installed  # noqa: PLW0603 -- one per process, as the interpreter's own collector is
    if _installed is None:
        _installed = GuiThreadCollector(QCoreApplication.instance())
    if not _installed.running():
        _installed.start()
    return _installed


def stop_collecting_on_gui_thread() -> None:
    """The interpreter collects by itself again (the tests, once their windows are closed)."""
    if _installed is not None:
        _installed.stop()
