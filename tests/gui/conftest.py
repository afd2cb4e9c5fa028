"""The real desktop app, offscreen, on a qasync loop, against the sandbox (or a proxy in front of it).

Scenarios run inside ``loop.run_until_complete``: Qt processes events there exactly as in the app,
and the app's coroutines (connecting, adding files, testing a connection) have their loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from desktop_uploader.engine.credentials import token_key
from desktop_uploader.engine.settings import Settings, save_settings
from desktop_uploader.gui.app import Desktop, build, start
from desktop_uploader.gui.collector import stop_collecting_on_gui_thread
from desktop_uploader.gui.session import in_thread
from desktop_uploader.gui.tasks import cancel_pending
from desktop_uploader.paths import resolve_paths
from desktop_uploader.sandbox.info import SandboxInfo
from tests.conftest import SampleFile
from tests.support.safetensors_files import whole_models
from tests.support.waiting import deadline_after


@pytest.fixture(scope="session", autouse=True)
def release_qt_objects_before_exit() -> Iterator[None]:
    """Qt objects still alive at interpreter exit are torn down after Qt, which can crash the process."""
    yield
    import gc

    from desktop_uploader.gui.icons import forget_icons

    forget_icons()
    gc.collect()


@pytest.fixture(autouse=True)
def python_collects_again_after_each_test() -> Iterator[None]:
    """A window collects on its GUI thread only (gui/collector.py); the tests after it, windows closed,
    collect as Python does (torn down last: autouse fixtures are set up first)."""
    yield
    stop_collecting_on_gui_thread()


@pytest.fixture
def aloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    qapp.setQuitOnLastWindowClosed(False)  # as the app does: uploads may go on in the tray
    loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    yield loop
    # Let cancelled tasks unwind before the loop closes: a task left pending on a closed loop is destroyed at
    # exit, and Python prints "Task was destroyed but it is pending!" under the run's summary.
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.wait(left, timeout=10))
    loop.close()
    asyncio.set_event_loop(None)


async def until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for ``predicate`` (a readiness check, polled) for at most ``timeout`` seconds of a quiet machine."""
    deadline = deadline_after(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def answer(parent: QWidget, name: str, button: str, timeout: float = 10.0) -> None:
    """Click ``button`` on the message box ``name`` once it opens (dialogs are opened, never exec'd)."""
    await until(
        lambda: parent.findChild(QMessageBox, name) is not None and parent.findChild(QMessageBox, name).isVisible(),
        timeout,
        f"the {name} dialog",
    )
    box = parent.findChild(QMessageBox, name)
    assert box is not None
    target = next(b for b in box.buttons() if b.text() == button)
    target.click()


@pytest.fixture
def make_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    """Whole .safetensors files: the window asks before sending one whose header says it is cut short."""
    return whole_models(make_file, tmp_path)


@pytest.fixture
def make_desktop(
    qtbot: Any, aloop: qasync.QEventLoop, sandbox: SandboxInfo, private_home: Any
) -> Iterator[Callable[..., Desktop]]:
    made: list[Desktop] = []

    def make(server: str | None = None, token: str | None = None, *, connect: bool = True, **changes: Any) -> Desktop:
        paths = resolve_paths().ensure()
        url = sandbox.api_url if server is None else server
        settings = Settings(server_url=url, **changes)
        save_settings(paths.settings_file, settings)
        desktop = build(paths)
        if url:
            desktop.session.credentials.set(token_key(url), token or sandbox.token)
        qtbot.addWidget(desktop.window)
        desktop.window.show()
        if connect:
            aloop.run_until_complete(start(desktop))
        made.append(desktop)
        return desktop

    yield make
    for desktop in made:
        if not desktop.session.closed:
            aloop.run_until_complete(desktop.session.shutdown())
    # A question a test left open (first run, cancel, close) would otherwise wait into the next test and
    # keep its "nothing pending" readiness check from ever holding.
    aloop.run_until_complete(cancel_pending())


def run(loop: qasync.QEventLoop, scenario: Awaitable[Any]) -> Any:
    return loop.run_until_complete(scenario)


__all__ = ["answer", "in_thread", "run", "until"]
