"""Guards against a Qt binding that would crash the app after enough signals.

PySide6 6.12.0 returns ``True`` from ``SignalInstance.emit`` without owning a reference, so every
emit drains the refcount of ``True`` until the interpreter aborts (``bool_dealloc``). A long upload
emits hundreds of thousands of signals. pyproject.toml excludes that release; this test catches a
future one with the same defect before users do.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class Emitter(QObject):
    plain = Signal()
    carrying = Signal(object)


def test_emitting_signals_does_not_leak_references_to_true_or_false(qapp: object) -> None:
    emitter = Emitter()
    emitter.plain.connect(lambda: None)
    emitter.carrying.connect(lambda value: None)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        emitter.plain.emit()
        emitter.carrying.emit(False)
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert after[0] >= before[0] - 5 and after[1] >= before[1] - 5, (before, after)
