"""One window per person: a second launch hands its files to the running window and quits.

Two windows on one resume store fight over it: the second shows the first one's paused uploads
as interrupted, and resuming them there makes the first one fail. So the first window listens,
and a second ``desktop-uploader [FILE…]`` (a double-click, "Open with") connects, sends the files,
waits for the answer, and exits; the running window comes to the front and queues them.

The channel is the standard library's ``multiprocessing.connection``: a Unix socket in a folder
only this user can enter, or a named pipe on Windows, authenticated with a key kept 0600 in the
user's data folder, so another user's program can't feed the window files. (QLocalServer would do
the same, but QtNetwork is left out of the installers: it drags in Kerberos.) The name follows
the data folder, so a profile of its own (``DESKTOP_UPLOADER_HOME``: tests, a second profile) has
its own window. A socket left by a killed window answers nobody, and the next window replaces it.

A window takes a few seconds to start (tens on a busy machine, with the sandbox), and a launch in that
time found nobody listening and opened a second window, whose sandbox then failed on the first one's
data folder. So a window first claims its profile (an OS file lock, freed even by kill -9) and listens
at once, keeping what launches hand over until it can queue them; a launch that finds the profile
claimed but nobody answering yet waits for that window rather than opening its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

import filelock
from PySide6.QtCore import QObject, Signal

from desktop_uploader.engine.private import FILE_MODE, private_dir
from desktop_uploader.paths import AppPaths

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 3.0  # a running window answers in milliseconds; a hung one must not hold a launch long
KEY_FILE = "instance.key"
CLAIM_FILE = "window.lock"
STARTING_WINDOW_SECONDS = 120.0  # a window starting, or pausing its uploads to quit, on a very busy machine
LOOK_AGAIN_SECONDS = 0.2


def _family() -> str:
    return "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"


def address(paths: AppPaths) -> str:
    """Where the running window listens: short (Unix socket paths hold ~100 bytes) and per profile."""
    digest = hashlib.sha256(str(paths.data_dir.resolve()).encode()).hexdigest()[:16]
    if sys.platform == "win32":
        return rf"\\.\pipe\desktop-uploader-{digest}"  # the key file keeps other users out
    folder = private_dir(Path(tempfile.gettempdir()) / f"desktop-uploader-{os.getuid()}")
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():  # made by someone else, to listen in our place
        raise OSError(f"{folder} belongs to another user")
    return str(folder / f"{digest}.sock")


def _key(paths: AppPaths) -> bytes:
    """The shared secret of this profile's launches, made once, readable by this user only.

    Two first launches at once both make one: each writes its own whole, then links it into place
    only if none is there yet (no half-written key is ever read), and both read the one that won.
    """
    path = paths.data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    private_dir(paths.data_dir)
    draft = path.with_name(f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return path.read_bytes()


def _connect(paths: AppPaths) -> Connection | None:
    try:
        return Client(address(paths), _family(), authkey=_key(paths))
    except (OSError, EOFError):  # nobody listens (no window, or a killed one's socket)
        return None
    except Exception:  # multiprocessing's AuthenticationError: not our window
        log.warning("Something else listens where the window would; starting a window of our own")
        return None


def hand_over(paths: AppPaths, files: list[str]) -> bool:
    """Give ``files`` to the window already running for ``paths``; False when there is none.

    In a thread with a deadline: a window that hangs (or a socket whose listener stopped accepting)
    must not keep this launch waiting for ever; it then opens a window of its own.
    """
    answered: list[bool] = []

    def attempt() -> None:
        connection = _connect(paths)
        if connection is None:
            answered.append(False)
            return
        with connection:
            try:
                connection.send({"files": files})
                answered.append(bool(connection.poll(HANDOVER_SECONDS)) and connection.recv() == "ok")
            except (OSError, EOFError):
                answered.append(False)

    worker = threading.Thread(target=attempt, name="hand-over", daemon=True)
    worker.start()
    worker.join(2 * HANDOVER_SECONDS)
    return bool(answered and answered[0])


def _claim(paths: AppPaths) -> filelock.BaseFileLock | None:
    """This profile's window claim, held for the window's life; None while another window holds it."""
    lock = filelock.FileLock(paths.data_dir / CLAIM_FILE, timeout=0, mode=FILE_MODE, thread_local=False)
    try:
        private_dir(paths.data_dir)
        lock.acquire()
    except filelock.Timeout:
        return None
    except OSError as exc:  # no lock can be made (a full disk): nobody else's can either; go on alone
        log.warning("The window's claim can't be made: %s", exc)
        return _unheld_claim(paths)
    return lock


def _unheld_claim(paths: AppPaths) -> filelock.BaseFileLock:
    """A claim for a window that opens without holding one: never acquired, so releasing it does nothing."""
    return filelock.FileLock(paths.data_dir / CLAIM_FILE)


def become_window_or_hand_over(
    paths: AppPaths,
    files: list[str],
    wait: float = STARTING_WINDOW_SECONDS,
) -> filelock.BaseFileLock | None:
    """None when the running window took ``files``; else the claim this launch holds as the window.

    A window that holds the claim but doesn't answer yet is starting (or quitting): this launch waits
    for it, up to ``wait``, and only then opens a window of its own beside a hung one.
    """
    deadline = time.monotonic() + wait
    said = False
    while True:
        if hand_over(paths, files):
            return None
        claim = _claim(paths)
        if claim is not None:
            return claim
        if time.monotonic() >= deadline:
            log.warning("This profile's window holds its claim but doesn't answer; opening another window")
            return _unheld_claim(paths)
        if not said:
            log.info("A window of this profile is starting or quitting; waiting for it")
            said = True
        time.sleep(LOOK_AGAIN_SECONDS)


class InstanceServer(QObject):
    """The running window's end; ``launched`` carries each later launch's files to the GUI thread.

    It listens from the start of the window's start-up; what arrives before ``ready()`` is kept and
    sent then, in order, so nothing handed over to a window still being built is lost.
    """

    launched = Signal(list)

    def __init__(self, paths: AppPaths) -> None:
        super().__init__()
        self.paths = paths
        self.listener: Listener | None = None
        self._closed = threading.Event()
        self._handing = threading.Lock()
        self._early: list[list[str]] | None = []  # None once the window takes files as they come
        try:
            where = address(paths)
            if _family() == "AF_UNIX" and _connect(paths) is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(where)  # a killed window's socket
            self.listener = Listener(where, _family(), authkey=_key(paths))
        except OSError as exc:  # the window works alone: a second launch opens a second window
            log.warning("Other launches can't reach this window: %s", exc)
            return
        threading.Thread(target=self._serve, name="instance-server", daemon=True).start()

    @property
    def listening(self) -> bool:
        return self.listener is not None and not self._closed.is_set()

    def _serve(self) -> None:
        listener = self.listener
        assert listener is not None
        while not self._closed.is_set():
            try:
                connection = listener.accept()
            except (OSError, EOFError):
                if self._closed.is_set():
                    return
                continue
            except Exception:  # a wrong key: someone else's program; ignored
                log.warning("A connection to the window failed authentication; ignored")
                continue
            with connection:
                try:
                    message = connection.recv() if connection.poll(HANDOVER_SECONDS) else None
                    files = [str(f) for f in message.get("files", [])] if isinstance(message, dict) else None
                    if files is None or self._closed.is_set():
                        continue
                    connection.send("ok")
                except (OSError, EOFError):
                    continue
            log.info("Another launch handed over %d file(s)", len(files))
            with self._handing:
                if self._early is not None:
                    self._early.append(files)
                else:
                    self.launched.emit(files)

    def ready(self) -> None:
        """The window can queue files now: the launches that came while it started are sent on."""
        with self._handing:
            early, self._early = self._early or [], None
            for files in early:
                self.launched.emit(files)

    def close(self) -> None:
        """Stop listening; a launch from now on opens a window of its own."""
        if self.listener is None or self._closed.is_set():
            return
        self._closed.set()
        if _family() == "AF_UNIX":  # wake a waiting accept(): its handshake then fails and the thread ends
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke:
                poke.settimeout(1.0)
                poke.connect(address(self.paths))
        with contextlib.suppress(OSError):
            self.listener.close()
