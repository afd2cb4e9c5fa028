"""Start the desktop app: Qt, the qasync event loop, the session, the window, the tray."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from desktop_uploader import APP_ID, APP_NAME, __version__
from desktop_uploader.engine.settings import load_settings
from desktop_uploader.engine.state import StateStore
from desktop_uploader.gui.collector import collect_on_gui_thread
from desktop_uploader.gui.file_open import FileOpenEvents
from desktop_uploader.gui.icons import app_icon
from desktop_uploader.gui.main_window import MainWindow
from desktop_uploader.gui.session import AppSession, Link
from desktop_uploader.gui.single_instance import InstanceServer, become_window_or_hand_over
from desktop_uploader.gui.tasks import cancel_pending, in_thread, spawn
from desktop_uploader.gui.tray import Tray
from desktop_uploader.logsetup import configure_logging
from desktop_uploader.paths import AppPaths

log = logging.getLogger(__name__)


def application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    # Upload threads hold the GIL between socket writes; at CPython's default 5 ms hand-over the window
    # waited up to tens of ms for it with a few files uploading (benchmarks/gui.py). 1 ms keeps it fluid.
    sys.setswitchinterval(0.001)
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(argv or sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    return app


@dataclass
class Desktop:
    session: AppSession
    window: MainWindow
    tray: Tray | None


def build(paths: AppPaths) -> Desktop:
    """The whole app, ready to show; also what the tests build, against their own home."""
    collect_on_gui_thread()  # before any upload thread runs: a Qt object must never die in one
    settings, warnings = load_settings(paths.settings_file)
    state = StateStore.open(paths.state_db)
    session = AppSession(paths, settings, state)
    tray_available = QSystemTrayIcon.isSystemTrayAvailable()
    window = MainWindow(session, tray_available=tray_available)
    tray = Tray(session, window) if tray_available else None
    for warning in warnings:
        session.message.emit(warning)
    return Desktop(session, window, tray)


async def start(desktop: Desktop, files: Sequence[str] = ()) -> None:
    """Show what was interrupted last time, connect, then queue the files the app was opened with.

    The interrupted rows come first: connecting can take half a minute (the sandbox, a busy machine),
    and a window that looked empty meanwhile had people add a file again, which then started over
    beside its own interrupted upload and was stored twice.
    """
    await desktop.session.restore_interrupted()
    # Asked once, off the GUI thread, so the settings can say up front that it won't work here.
    await in_thread(desktop.session.keep_awake.probe)
    await desktop.session.connect_storage()
    await desktop.session.server_uploads.refresh(desktop.session.link == Link.CONNECTED)
    if files:
        await queue_opened(desktop, files)


async def queue_opened(desktop: Desktop, files: Sequence[str]) -> None:
    """Queue files the app was opened with (argv, a second launch, macOS's file-open event); the log
    line is what the installed-package test reads to know they arrived."""
    outcome = await desktop.window.queue_paths(list(files))
    log.info("Opened with %d file(s): %d queued", len(files), outcome.added)


def bring_forward_and_queue(desktop: Desktop, files: list[str]) -> None:
    window = desktop.window
    window.showNormal()
    window.raise_()
    window.activateWindow()
    if files:
        spawn(queue_opened(desktop, files))


def welcome_later_launches(desktop: Desktop, instance: InstanceServer) -> None:
    """Later launches (and those that came while the window was built) bring it to the front and queue
    the files they were opened with."""
    instance.launched.connect(
        lambda files: bring_forward_and_queue(desktop, files), Qt.ConnectionType.QueuedConnection
    )  # sent from its listening thread
    instance.ready()


def welcome_opened_files(app: QApplication, desktop: Desktop) -> FileOpenEvents:
    """macOS's "Open With" and document double-clicks (QFileOpenEvent) queue their files here too."""
    events = FileOpenEvents(app)
    events.opened.connect(lambda files: bring_forward_and_queue(desktop, files))
    app.installEventFilter(events)
    return events


@contextlib.contextmanager
def pause_and_quit_on_ctrl_c(quit_app: Callable[[], None], loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Ctrl-C in the terminal that started the window pauses and quits, as the window's Quit does.

    Python's own handler raised KeyboardInterrupt inside whatever Qt callback ran next, where Qt
    printed it and went on: the window ignored Ctrl-C. A second Ctrl-C ends the process at once (the
    resume store survives that as it survives a crash). An inherited "ignore" (``nohup``) is kept.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def pause_and_quit() -> None:
        log.info("Ctrl-C in the terminal: pause and quit")  # here, not in the handler, which may interrupt a log call
        quit_app()

    def on_ctrl_c(*_: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        loop.call_soon_threadsafe(pause_and_quit)

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run(paths: AppPaths, argv: list[str] | None = None, files: Sequence[str] = ()) -> int:
    configure_logging(paths.log_file)
    claim = become_window_or_hand_over(paths, list(files))
    if claim is None:  # a window is open (or starting) already: it takes the files
        log.info("Handed %d file(s) to the window already open", len(files))
        return 0
    try:
        app = application(argv)
        return _run_window(paths, app, files, InstanceServer(paths))  # listening before the slow start-up
    finally:
        claim.release()  # only now, with the uploads paused: a launch waiting for this window opens its own


def _run_window(paths: AppPaths, app: QApplication, files: Sequence[str], instance: InstanceServer) -> int:
    """The window's whole life, from listening for other launches to the last pause."""
    app.setQuitOnLastWindowClosed(False)  # uploads may go on in the tray
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desktop = build(paths)
    welcome_later_launches(desktop, instance)
    welcome_opened_files(app, desktop)
    finished = asyncio.Event()

    async def quit_app(cancel: bool) -> None:
        log.info("Quitting: %s", "cancelling the uploads" if cancel else "pausing the uploads")  # for support
        instance.close()  # from now on a launch waits for this one to end, then opens its own
        desktop.window.hide()
        try:
            await desktop.session.shutdown(cancel=cancel)
        finally:
            finished.set()

    desktop.window.quitRequested.connect(lambda cancel: spawn(quit_app(cancel)))
    desktop.window.show()
    with loop, pause_and_quit_on_ctrl_c(lambda: desktop.window.quitRequested.emit(False), loop):
        log.info("%s %s started", APP_NAME, __version__)
        loop.create_task(start(desktop, files))
        loop.run_until_complete(finished.wait())
        # A question still open at quit (the first-run one, say) is cancelled and unwinds here: left pending
        # on the closed loop, Python would print "Task was destroyed but it is pending!" in the terminal.
        loop.run_until_complete(cancel_pending())
    if desktop.tray is not None:
        desktop.tray.icon.hide()
    return 0
