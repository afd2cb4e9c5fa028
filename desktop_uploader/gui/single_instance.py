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
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop_uploader.engine.private import private_dir
from desktop_uploader.paths import AppPaths

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 3.0  # a running window answers in milliseconds; a hung one must not hold a launch long
KEY_FILE = "instance.key"


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
    """The shared secret of this profile's launches, made once, readable by this user only."""
    path = paths.data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    private_dir(paths.data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
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


class InstanceServer(QObject):
    """The running window's end; ``launched`` carries each later launch's files to the GUI thread."""

    launched = Signal(list)

    def __init__(self, paths: AppPaths) -> None:
        super().__init__()
        self.paths = paths
        self.listener: Listener | None = None
        self._closed = threading.Event()
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
