"""A real drag, from another program, into the real window, under Xvfb: the one GUI test without synthetic events.

Three processes on a private X server (no window manager: XDND works between clients without one):
a tiny drag source holding a file, the app's window against the sandbox, and xdotool pressing,
moving and releasing the mouse. Each step waits for the previous one to be seen: the source says
when its drag has started, the window says when it highlights the drag, and finally what it queued.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.safetensors_files import write_safetensors
from tests.support.waiting import deadline_after

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
    reason="a real drag needs Xvfb and xdotool (apt-get install xvfb xdotool; .ci/run installs them)",
)

SOURCE = """
import sys
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QApplication, QLabel

class Source(QLabel):
    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.MouseButton.LeftButton and not getattr(self, "started", False):
            self.started = True
            mime = QMimeData()
            mime.setUrls([QUrl.fromLocalFile(sys.argv[1])])
            drag = QDrag(self)
            drag.setMimeData(mime)
            print("dragging", flush=True)
            print("dropped" if drag.exec(Qt.DropAction.CopyAction) else "refused", flush=True)

app = QApplication(sys.argv[:1])
source = Source("drag me")
source.setGeometry(20, 20, 200, 150)
source.show()
app.processEvents()
g = source.geometry()
print("ready", g.x(), g.y(), g.width(), g.height(), flush=True)
app.exec()
"""

TARGET = """
import asyncio, sys
import qasync
from PySide6.QtCore import QTimer
from desktop_uploader.engine.credentials import token_key
from desktop_uploader.engine.settings import Settings, save_settings
from desktop_uploader.gui.app import application, build, start
from desktop_uploader.paths import resolve_paths

url, token = sys.argv[1], sys.argv[2]
app = application([sys.argv[0]])
app.setQuitOnLastWindowClosed(False)
loop = qasync.QEventLoop(app)
asyncio.set_event_loop(loop)
paths = resolve_paths().ensure()
save_settings(paths.settings_file, Settings(server_url=url, auto_start=False))
desktop = build(paths)
desktop.session.credentials.set(token_key(url), token)
window = desktop.window
window.setGeometry(420, 60, 800, 560)
window.show()
loop.run_until_complete(start(desktop))
said = set()

def say(line):
    if line not in said:
        said.add(line)
        print(line, flush=True)

async def watch():
    g = window.geometry()
    say(f"ready {g.x()} {g.y()} {g.width()} {g.height()}")
    while True:
        if window.drop_highlight.isVisible():
            say("highlighted")
        rows = desktop.session.model.rows()
        if rows:
            say("queued " + " ".join(row.file_name for row in rows))
            say("highlight " + ("still shown" if window.drop_highlight.isVisible() else "gone"))
            break
        await asyncio.sleep(0.02)
    window.hide()
    await desktop.session.shutdown()

with loop:  # as the app's own run(): closing the loop ends its worker threads
    loop.run_until_complete(watch())
"""


class Process:
    """A child process whose output lines are read as they come, so a test waits for a line, not a time."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.popen.stdout is not None
        threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = deadline_after(timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} line; the process said: {self.seen}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.popen.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"exited with {self.popen.returncode} before {prefix!r}: {self.seen}"
                    ) from None
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def next_line(self, prefix: str, nudge: Any, timeout: float = 30.0) -> str:
        """Like ``wait_for``, calling ``nudge()`` while waiting (a real pointer sends motion as it moves)."""
        deadline = deadline_after(timeout)
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                nudge()
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line; the process said: {self.seen}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@pytest.fixture
def xserver() -> Iterator[str]:
    """A private Xvfb; ``-displayfd`` says its number once it accepts clients (no guessing, no sleeping)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not start"
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def test_a_file_dragged_from_another_program_is_queued(
    xserver: str, sandbox: Any, private_home: Path, tmp_path: Path
) -> None:
    model = tmp_path / "dragged-in.safetensors"
    write_safetensors(model, 4000)
    env = {**os.environ, "DISPLAY": xserver, "QT_QPA_PLATFORM": "xcb", "DESKTOP_UPLOADER_HOME": str(private_home)}
    source_file, target_file = tmp_path / "source.py", tmp_path / "target.py"
    source_file.write_text(SOURCE)
    target_file.write_text(TARGET)
    target = Process([sys.executable, str(target_file), sandbox.api_url, sandbox.token], env)
    source = Process([sys.executable, str(source_file), str(model)], env)

    def xdotool(*args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], env=env, check=True, timeout=30)

    try:
        x, y, w, h = map(int, target.wait_for("ready", 120).split()[1:])
        sx, sy, sw, sh = map(int, source.wait_for("ready").split()[1:])
        start = (sx + sw // 2, sy + sh // 2)
        xdotool("mousemove", "--sync", *start, "mousedown", 1)
        steps = iter(range(1, 10_000))
        source.next_line("dragging", lambda: xdotool("mousemove", "--sync", start[0] + next(steps) * 4, start[1]))
        end = (x + w // 2, y + h // 2)
        xdotool("mousemove", "--sync", *end)
        wiggle = iter(range(10_000))
        target.next_line("highlighted", lambda: xdotool("mousemove", "--sync", end[0] + next(wiggle) % 5, end[1]))
        xdotool("mouseup", 1)
        queued = target.wait_for("queued")
        assert queued == "queued dragged-in.safetensors", target.seen
        assert target.wait_for("highlight") == "highlight gone", "the drop zone stayed lit after the drop"
        assert source.wait_for("dropped", 30) == "dropped", "the source was told the drop was refused"
        assert target.popen.wait(60) == 0, target.seen
    finally:
        source.stop()
        target.stop()
