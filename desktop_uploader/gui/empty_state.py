"""What the window shows while the queue is empty: a drop zone, two buttons, and the first-run choice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop_uploader.engine.filenames import DEFAULT_MODEL_EXTENSIONS
from desktop_uploader.gui.dialogs import FirstRunChoice
from desktop_uploader.gui.icons import ui_icon
from desktop_uploader.gui.tasks import spawn

if TYPE_CHECKING:
    from desktop_uploader.gui.main_window import MainWindow


class EmptyState(QWidget):
    """What a first look shows: where to drop, two buttons, and (on first run) where files would go."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.setObjectName("emptyState")
        self.setAccessibleName("Drop model files or folders here")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(36, 28, 36, 28)
        layout.addStretch(2)
        picture = QLabel(self)
        picture.setPixmap(ui_icon("drop").pixmap(QSize(72, 72)))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(picture)
        title = QLabel("Drop model files or folders here", self)
        title.setObjectName("emptyTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        kinds = " ".join(DEFAULT_MODEL_EXTENSIONS)
        hint = QLabel(f"LoRAs, checkpoints and other model files ({kinds}), of any size.", self)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        layout.addWidget(hint)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for text, icon, slot, name in (
            ("Add files…", "add-file", window.add_files, "Add files"),
            ("Add folder…", "add-folder", window.add_folder, "Add folder"),
        ):
            button = QPushButton(ui_icon(icon), text, self)
            button.setAccessibleName(name)
            button.setMinimumHeight(34)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addSpacing(24)
        self.setup = SetupPanel(window)
        layout.addWidget(self.setup, alignment=Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    def paintEvent(self, event: QPaintEvent) -> None:
        """A dashed drop zone, so the empty window reads as a place to put files."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText), 1.6)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(18, 14, -18, -14), 14, 14)
        painter.end()


class SetupPanel(QFrame):
    """First run: no server is configured, so offer the local sandbox or the settings."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.setObjectName("setupPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        # Explicit line breaks: a word-wrapped label under a centred layout gets too little height.
        self.text = QLabel(
            "<b>No upload server is set up yet.</b><br>Try the app right away with a local test storage on this "
            "computer,<br>or connect to your team's upload server or your own S3 storage.",
            self,
        )
        self.text.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.text)
        row = QHBoxLayout()
        self.try_local = QPushButton("Try it on this computer", self)
        self.try_local.setObjectName("trySandbox")
        self.try_local.setAccessibleName("Try it on this computer with the local sandbox")
        self.try_local.clicked.connect(lambda: spawn(window.session.use_sandbox()))
        self.connect_server = QPushButton("Connect to my server…", self)  # the first-run question's words
        self.connect_server.setAccessibleName("Connect to my server")
        self.connect_server.clicked.connect(window.open_settings)
        self.own_s3 = QPushButton(FirstRunChoice.OWN_S3.value, self)
        self.own_s3.setObjectName("useOwnS3")
        self.own_s3.setAccessibleName("Use my own S3 storage")
        self.own_s3.clicked.connect(lambda: window.open_settings(own_s3=True))
        row.addWidget(self.try_local)
        row.addWidget(self.connect_server)
        row.addWidget(self.own_s3)
        row.addStretch(1)
        layout.addLayout(row)
