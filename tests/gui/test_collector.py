"""A Qt object in a garbage cycle dies on the GUI thread, never in the upload thread that happened to allocate.

A busy run froze for good in tests/gui/test_dropping_again.py: an upload thread's automatic collection
destroyed such an object while the GUI thread waited for Qt's connection lock (gui/collector.py).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from PySide6.QtCore import QObject, Qt

from desktop_uploader.gui.collector import collect_on_gui_thread, stop_collecting_on_gui_thread
from tests.gui.conftest import run, until


def allocate_like_an_upload_thread(kept: list[object]) -> None:
    """Enough containers, kept alive, to pass every generation's threshold many times over."""
    for number in range(300_000):
        kept.append([number])


def test_a_qt_object_in_a_garbage_cycle_is_destroyed_on_the_gui_thread(make_desktop: Any, aloop: Any) -> None:
    make_desktop(connect=False)  # the window starts the collector, as the app does
    assert not gc.isenabled(), "the interpreter's own collections are off while a window is open"
    died_in: list[int] = []
    gui_thread = threading.get_ident()

    def make_garbage_cycle() -> None:
        holder: dict[str, object] = {}
        widget_like = QObject()  # owned by Python, as a dialog or a helper a window made and dropped is
        holder["self"] = holder  # a cycle: only the collector frees it
        holder["object"] = widget_like
        widget_like.destroyed.connect(lambda: died_in.append(threading.get_ident()), Qt.ConnectionType.DirectConnection)

    make_garbage_cycle()
    kept: list[object] = []
    worker = threading.Thread(target=allocate_like_an_upload_thread, args=(kept,))
    worker.start()
    worker.join()
    assert died_in == [], "nothing collected it in the upload thread"

    run(aloop, until(lambda: bool(died_in), 10, "the GUI thread's collection"))
    assert died_in == [gui_thread]


def test_without_a_window_python_collects_as_it_always_did(make_desktop: Any) -> None:
    collect_on_gui_thread()
    stop_collecting_on_gui_thread()
    assert gc.isenabled()
