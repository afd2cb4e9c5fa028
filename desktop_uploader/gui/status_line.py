"""The status bar's two labels, and room for a passing message that says what happened to a drop.

The queue's summary sits under a passing message, as Qt places normal widgets; where uploads go is
permanent. In a window 700 px wide a GUI audit read "Added 2 files. Skipped 1 file that isn't a model.
empty.safetensors was no" run into "Server: Local sandbox (this computer)": the news that a file was
refused was the part cut. A message too long to read beside where uploads go now hides that label for
the message's few seconds; the label is back when the message ends, and its tooltip has it meanwhile.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QLabel, QStatusBar

SPACING = 32  # the bar's margins, the message's indent and the size grip, with a little air


class StatusLine(QObject):
    """Builds ``bar``'s labels (``summary``, ``server``) and keeps a passing message readable."""

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.bar = bar
        self.summary = QLabel(bar)
        self.summary.setObjectName("summary")
        self.server = QLabel(bar)
        self.server.setObjectName("server")
        bar.addWidget(self.summary, 1)
        bar.addPermanentWidget(self.server)
        bar.messageChanged.connect(self._fit)
        bar.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.bar and event.type() == QEvent.Type.Resize:
            self._fit()
        return False

    def _fit(self, *_: object) -> None:
        message = self.bar.currentMessage()
        needed = self.bar.fontMetrics().horizontalAdvance(message) + SPACING
        self.server.setVisible(not message or needed <= self.bar.width() - self.server.sizeHint().width())
