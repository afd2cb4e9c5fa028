"""The one place engine events cross into Qt: re-emitted as a signal, so Qt queues them to the GUI thread.

The engine calls listeners on its worker threads. Emitting a signal there, connected to objects
that live in the GUI thread, makes Qt queue each event to the GUI thread's event loop: no widget
or model is ever touched from a worker, and no lock is needed on the GUI side.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop_uploader.engine.events import Event
from desktop_uploader.engine.manager import UploadManager


class EngineBridge(QObject):
    engineEvent = Signal(object)  # Qt signal naming; "event" would shadow QObject.event

    def __init__(self, manager: UploadManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = manager.subscribe(self._deliver)

    def _deliver(self, event: Event) -> None:  # worker threads
        self.engineEvent.emit(event)

    def close(self) -> None:
        self._unsubscribe()
