"""The main window: a drop target, the queue, a toolbar, and a status bar that says where files go."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from desktop_uploader import APP_NAME
from desktop_uploader.connection import direct_place
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.intake import AddOutcome
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.rows import QueueSummary, Row, RowAction
from desktop_uploader.gui.added_rows import AddedRowsInView
from desktop_uploader.gui.button_guard import ButtonGuard
from desktop_uploader.gui.dialogs import CloseChoice, ask_close, confirm_damaged_files, confirm_other_files
from desktop_uploader.gui.drop_highlight import DropHighlight
from desktop_uploader.gui.duplicates import ask_already_uploaded
from desktop_uploader.gui.empty_state import EmptyState
from desktop_uploader.gui.enter_key import EnterPressesButtons
from desktop_uploader.gui.first_run import FirstRun
from desktop_uploader.gui.folders import open_folder
from desktop_uploader.gui.geometry import WindowGeometry
from desktop_uploader.gui.history_dialog import install_history
from desktop_uploader.gui.icons import app_icon, ui_icon
from desktop_uploader.gui.menus import build_menu_bar
from desktop_uploader.gui.pickers import Pickers
from desktop_uploader.gui.queue_delegate import UploadDelegate
from desktop_uploader.gui.removal import RemovalGuard
from desktop_uploader.gui.row_actions import RowActionBar
from desktop_uploader.gui.sandbox_space import install_empty_test_storage
from desktop_uploader.gui.server_uploads import ServerUploadsNotice
from desktop_uploader.gui.session import AppSession, Link
from desktop_uploader.gui.settings_dialog import SettingsDialog
from desktop_uploader.gui.settings_opener import SettingsOpener
from desktop_uploader.gui.status_line import StatusLine
from desktop_uploader.gui.tasks import in_thread, spawn

MenuEntry = tuple[str, Callable[[], None]]


class MainWindow(QMainWindow):
    quitRequested = Signal(bool)  # cancel uploads first?

    def __init__(self, session: AppSession, *, tray_available: bool = False) -> None:
        super().__init__()
        self.session = session
        self.tray_available = tray_available
        self._quitting = False
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(960, 620)
        self.setMinimumSize(640, 420)
        self.geometry_keeper = WindowGeometry(self, session.paths.config_dir / "window.ini")
        self.pickers = Pickers(self, self.add_paths, self.geometry_keeper.store)  # the last folder, kept with it
        self.settings_opener = SettingsOpener(self)
        self.settings_dialog: SettingsDialog | None = None
        self._build_actions()
        self.quit_action = build_menu_bar(
            self,
            add_files=self.add_files_action,
            add_folder=self.add_folder_action,
            settings=self.settings_action,
            uploads=[self.start_all_action, self.pause_all_action, self.clear_action],
            quit_app=self.quit_or_ask,
            open_log_folder=self.open_log_folder,
        )
        self.history_action = install_history(self, session.memory.store)
        self.empty_test_storage_action = install_empty_test_storage(self, session)
        self._build_toolbar()
        self._build_central()
        self.drop_highlight = DropHighlight(self, self.add_paths)  # takes the window's drag and drop events
        self._build_status_bar()
        self.removal = RemovalGuard(self, session)  # asks before stored bytes are thrown away
        self.button_guard = ButtonGuard(self.view, self.delegate)  # row buttons don't change under the pointer
        self.first_run = FirstRun(self)  # files added with no server ask where to go; queued rows say why
        self.enter_key = EnterPressesButtons(self)
        session.model.rowsInserted.connect(self._update_page)
        self.added_rows = AddedRowsInView(self.view, session.model)  # a drop's rows scrolled into view
        session.model.rowsRemoved.connect(self._update_page)
        session.model.summaryChanged.connect(self._show_summary)
        session.linkChanged.connect(self._show_link)
        session.message.connect(self._say)  # a method, not a lambda: Qt lets go of it with the window
        self._show_link()
        self._update_page()

    # -- building -------------------------------------------------------------------------------------------

    def _action(
        self,
        text: str,
        icon: str,
        slot: Callable[[], object],
        shortcut: str | QKeySequence | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(ui_icon(icon), text, self)
        action.setProperty("iconName", icon)  # re-tinted when the palette changes
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.add_files_action = self._action(
            "Add files", "add-file", self.add_files, "Ctrl+O", "Add model files (Ctrl+O)"
        )
        self.add_folder_action = self._action(
            "Add folder",
            "add-folder",
            self.add_folder,
            "Ctrl+Shift+O",
            "Add every model file in a folder (Ctrl+Shift+O)",
        )
        self.start_all_action = self._action(
            "Start all", "start", self.session.start_all, None, "Start or resume every paused upload"
        )
        self.pause_all_action = self._action(
            "Pause all", "pause", self.session.pause_all, None, "Pause every upload; they resume where they stopped"
        )
        self.clear_action = self._action(
            "Clear finished",
            "clear",
            self.session.manager.clear_finished,
            None,
            "Remove completed and cancelled uploads from the list",
        )
        self.settings_action = self._action(
            "Settings", "settings", self.open_settings, "Ctrl+,", "Server, speed and behaviour (Ctrl+,)"
        )

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.add_files_action, self.add_folder_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.start_all_action)
        toolbar.addAction(self.pause_all_action)
        toolbar.addAction(self.clear_action)
        spacer = QWidget(toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addAction(self.settings_action)
        self.addToolBar(toolbar)

    def _build_central(self) -> None:
        self.pages = QStackedWidget(self)
        self.empty = EmptyState(self)
        self.pages.addWidget(self.empty)
        queue_page = QWidget(self)
        layout = QVBoxLayout(queue_page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = QLabel(queue_page)
        self.banner.setObjectName("linkBanner")
        self.banner.setWordWrap(True)
        self.banner.setContentsMargins(12, 6, 12, 6)
        layout.addWidget(self.banner)
        self.view = QListView(queue_page)
        self.view.setObjectName("queueView")
        self.view.setAccessibleName("Upload queue")
        self.view.setModel(self.session.model)
        self.delegate = UploadDelegate(self.session.model.clock, self.view)
        self.delegate.actionTriggered.connect(self.act)
        self.view.setItemDelegate(self.delegate)
        self.delegate.track_hover(self.view)
        self.view.setUniformItemSizes(True)
        self.view.setMouseTracking(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.view)
        self.row_actions = RowActionBar(self.view, self.act, queue_page)  # the row's buttons, for the keyboard
        layout.addWidget(self.row_actions)
        self.pages.addWidget(queue_page)
        # Above both pages, full width: in the status bar its sentence crushed every other message there to
        # "Adc" (a GUI audit), and it shows on the empty page too, where a fresh start lists such uploads.
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.server_uploads_notice = ServerUploadsNotice(self.session.server_uploads, central)
        column.addWidget(self.server_uploads_notice)
        column.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        for keys, slot in (
            (Qt.Key.Key_Space, self._toggle_selected),
            (QKeySequence.StandardKey.Delete, self._remove_selected),
        ):
            shortcut = QShortcut(QKeySequence(keys), self.view)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        copy = QShortcut(QKeySequence.StandardKey.Copy, self.view)
        copy.setContext(Qt.ShortcutContext.WidgetShortcut)
        copy.activated.connect(self._copy_selected)

    def _build_status_bar(self) -> None:
        self.status_line = StatusLine(self.statusBar())  # a drop's message gets room beside where uploads go
        self.summary_label, self.server_label = self.status_line.summary, self.status_line.server
        self._show_summary(self.session.model.summary)

    # -- state ------------------------------------------------------------------------------------------------

    def _update_page(self, *_: object) -> None:
        self.pages.setCurrentIndex(1 if self.session.model.rowCount() else 0)

    def _show_summary(self, summary: QueueSummary) -> None:
        counts = self.session.model.status_counts()
        self.start_all_action.setEnabled(bool(counts[Status.PAUSED] + counts[Status.INTERRUPTED]))
        self.pause_all_action.setEnabled(bool(summary.active + counts[Status.QUEUED]))
        self.clear_action.setEnabled(bool(counts[Status.COMPLETED] + counts[Status.CANCELLED]))
        self.summary_label.setText(summary.text())
        # Ending with the app's name: Qt appends the display name to a title that doesn't (on X11, Wayland, Windows).
        self.setWindowTitle(f"{round(summary.fraction * 100)}% · {APP_NAME}" if summary.active else APP_NAME)

    def _show_link(self) -> None:
        session = self.session
        direct = session.settings.method == DIRECT
        if direct:  # a GUI audit's status bar named the sandbox while files went to S3
            label = f"Uploads go to {direct_place(session.settings)}"
            self.server_label.setText(label)
            self.server_label.setToolTip(label)
        else:
            self.server_label.setText(f"Server: {session.link_label}")
            self.server_label.setToolTip(session.link_detail or session.link_label)
        self.empty.setup.setVisible(session.link == Link.NEEDS_SETUP)
        sandbox = session.link == Link.CONNECTED and session.sandbox is not None and not direct
        text = session.link_detail if (sandbox or session.link == Link.FAILED) else ""
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    def _say(self, text: str) -> None:
        """A sentence in the status bar. The session can outlive the window (a drop's last step ran after
        a test closed it, and a lambda here raised "MainWindow already deleted")."""
        self.statusBar().showMessage(text, 8000)

    # -- commands ----------------------------------------------------------------------------------------------

    def add_files(self) -> None:
        self.pickers.add_files()

    def add_folder(self) -> None:
        self.pickers.add_folder()

    def add_paths(self, paths: list[str]) -> None:
        spawn(self.queue_paths(paths))

    async def queue_paths(self, paths: list[str]) -> AddOutcome:
        """Every way in (drop, dialog, Open With, a second launch) asks the same questions."""
        self.added_rows.expect()
        outcome = await self.session.add_paths(
            paths,
            lambda others: confirm_other_files(self, others),
            lambda damaged: confirm_damaged_files(self, damaged),
            lambda found: ask_already_uploaded(self, found),
        )
        self.added_rows.queued(outcome.added)
        return outcome

    def open_settings(self, *, own_s3: bool = False) -> None:
        self.settings_opener.open(own_s3=own_s3)  # a moment later: the saved secrets are read off this thread first

    def selected_row(self) -> Row | None:
        return self.session.model.row_at(self.view.currentIndex())

    def _act_selected(self, action: RowAction) -> None:
        row = self.selected_row()
        if row is not None and action in row.actions():
            self.act(row.job_id, action)

    def _copy_selected(self) -> None:
        """Ctrl+C: the first thing the row offers to copy. A direct-S3 row has no ComfyUI path, and Ctrl+C
        on it did nothing (an audit); a failed row gives its message."""
        row = self.selected_row()
        if row is None:
            return
        offered = row.actions()
        for action in (RowAction.COPY_COMFYUI, RowAction.COPY_S3, RowAction.COPY_MESSAGE):
            if action in offered:
                self.act(row.job_id, action)
                return

    def _toggle_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.session.toggle(row.job_id, self.act)

    def _remove_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.removal.remove(row)

    def menu_entries(self, row: Row) -> list[MenuEntry]:
        """The context menu as plain (label, callable) pairs, so tests can check it without opening a menu."""
        return [(row.action_label(action), partial(self.act, row.job_id, action)) for action in row.actions()]

    def act(self, job_id: str, action: RowAction) -> None:
        """Row commands, from the menu, the row's buttons and the shortcuts alike (giving up stored work asks)."""
        self.removal.act(job_id, action)

    def _context_menu(self, position: QPoint) -> None:
        index: QModelIndex = self.view.indexAt(position)
        row = self.session.model.row_at(index)
        if row is None:
            return
        menu = QMenu(self)
        for label, callback in self.menu_entries(row):
            menu.addAction(label).triggered.connect(callback)
        menu.addSeparator()
        menu.addAction("Show in folder").triggered.connect(lambda: open_folder(self, row.path.parent))
        menu.popup(self.view.viewport().mapToGlobal(position))

    def changeEvent(self, event: QEvent) -> None:
        """Follow the system's light or dark palette while running: icons are re-tinted to match."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            for action in self.actions():
                name = action.property("iconName")
                if name:
                    action.setIcon(ui_icon(str(name), self.palette()))
            self.view.viewport().update()
        super().changeEvent(event)

    # -- closing --------------------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._quitting:
            event.accept()
            return
        event.ignore()
        self.quit_or_ask(to_tray=True)

    def quit_or_ask(self, *, to_tray: bool = False) -> None:
        """The one way out, for the close button and File › Quit: it asks first when uploads run.
        Only closing the window (``to_tray``) may go to the tray without asking, as the settings say."""
        if not self.session.running():
            self.request_quit(cancel=False)
            return
        if to_tray and self.session.settings.minimize_to_tray and self.tray_available:
            self.hide()
            return
        spawn(self._ask_and_close())

    async def _ask_and_close(self) -> None:
        running = [row.job_id for row in self.session.model.rows() if row.status.active]
        try:
            links_until = await in_thread(self.session.state.links_expire_at, running)
        except UploaderError:
            links_until = None  # an unreadable store: the question is asked all the same
        if not isValid(self):
            return  # the window went while the store was read: nobody left to ask
        choice = await ask_close(self, tray=self.tray_available, links_until=links_until)
        if choice == CloseChoice.KEEP_IN_TRAY:
            self.hide()
        elif choice in (CloseChoice.PAUSE_AND_QUIT, CloseChoice.CANCEL_AND_QUIT):
            self.request_quit(cancel=choice == CloseChoice.CANCEL_AND_QUIT)

    def request_quit(self, *, cancel: bool) -> None:
        self._quitting = True
        self.quitRequested.emit(cancel)

    def open_log_folder(self) -> None:
        open_folder(self, Path(self.session.paths.log_dir))
