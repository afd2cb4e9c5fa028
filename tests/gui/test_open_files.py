"""``desktop-uploader FILE…`` (a file manager's "Open with") opens the window with those files queued."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from desktop_uploader import cli
from desktop_uploader.gui import app as gui_app
from desktop_uploader.gui import single_instance
from desktop_uploader.paths import resolve_paths
from tests.gui.conftest import run, until
from tests.support.safetensors_files import write_safetensors
from tests.support.waiting import SLACK, wait_until


def test_the_command_with_file_paths_opens_the_window_and_queues_them(
    qapp: QApplication, make_file: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = make_file(1024, "first.safetensors")
    second = make_file(2048, "second.safetensors")
    monkeypatch.chdir(first.path.parent)  # a relative path is the file manager's and the shell's way too
    real_start = gui_app.start
    seen: dict[str, Any] = {}

    async def start_then_quit(desktop: gui_app.Desktop, files: Any = ()) -> None:
        """The app's own start-up, then a look at the window it opened, then "Pause and quit"."""
        try:
            await real_start(desktop, files)
            seen["visible"] = desktop.window.isVisible()
            seen["queued"] = sorted(row.file_name for row in desktop.session.model.rows())
        finally:
            seen["tasks"] = asyncio.all_tasks()
            desktop.window.quitRequested.emit(False)

    monkeypatch.setattr(gui_app, "start", start_then_quit)
    assert cli.main([first.path.name, str(second.path)]) == 0
    # What was still running at quit (the first-run question, with no server set up) ended with the app.
    left = [task for task in seen.pop("tasks") if not task.done()]
    assert left == []
    assert seen == {"visible": True, "queued": ["first.safetensors", "second.safetensors"]}


def test_a_missing_path_opens_the_window_with_the_others_and_is_named_there(
    qapp: QApplication, make_file: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ "Open with" on a file whose drive is gone: no window, the other file dropped, a sentence on stderr
    that no one sees (an installed-app audit). A bare word is still taken for a mistyped command (below)."""
    here = make_file(1024, "here.safetensors")
    gone = tmp_path / "unplugged" / "gone.safetensors"
    real_start = gui_app.start
    seen: dict[str, Any] = {}

    async def start_then_quit(desktop: gui_app.Desktop, files: Any = ()) -> None:
        try:
            await real_start(desktop, files)
            await until(lambda: "gone.safetensors" in desktop.window.statusBar().currentMessage(), 30, "the sentence")
            seen["visible"] = desktop.window.isVisible()
            seen["queued"] = [row.file_name for row in desktop.session.model.rows()]
            seen["said"] = desktop.window.statusBar().currentMessage()
        finally:
            desktop.window.quitRequested.emit(False)

    monkeypatch.setattr(gui_app, "start", start_then_quit)
    assert cli.main([str(here.path), str(gone)]) == 0
    assert seen["visible"] and seen["queued"] == ["here.safetensors"]
    assert f"{gone}: no such file or folder." in seen["said"], seen["said"]


def test_a_command_name_still_runs_the_command_and_files_after_a_double_dash_are_files() -> None:
    parser = cli.build_parser()
    assert cli.split_files(parser, ["list", "--json"]) == (["list", "--json"], [])
    assert cli.split_files(parser, []) == ([], [])
    assert cli.split_files(parser, ["--self-test"]) == (["--self-test"], [])
    assert cli.split_files(parser, ["a.safetensors", "b.ckpt"]) == ([], ["a.safetensors", "b.ckpt"])
    assert cli.split_files(parser, ["--", "upload"]) == ([], ["upload"])


def test_a_second_launch_hands_its_files_to_the_open_window_and_exits(make_desktop: Any, aloop: Any) -> None:
    """`desktop-uploader FILE` while the window is open: no second window, the open one queues the file."""
    desktop = make_desktop(auto_start=False)
    instance = single_instance.InstanceServer(desktop.session.paths)
    gui_app.welcome_later_launches(desktop, instance)
    on_gui_thread: list[bool] = []
    instance.launched.connect(
        lambda _files: on_gui_thread.append(threading.current_thread() is threading.main_thread()),
        Qt.ConnectionType.QueuedConnection,
    )
    try:
        handed = desktop.session.paths.data_dir.parent / "handed.safetensors"
        write_safetensors(handed, 4096)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}  # the same profile (DESKTOP_UPLOADER_HOME)
        launch = subprocess.Popen(
            [sys.executable, "-m", "desktop_uploader", str(handed)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            names = lambda: [row.file_name for row in desktop.session.model.rows()]  # noqa: E731
            run(
                aloop, until(lambda: launch.poll() is not None and "handed.safetensors" in names(), 60, "the hand-over")
            )
        finally:
            if launch.poll() is None:  # it opened a window of its own instead
                launch.kill()
            launch.wait(10)
        assert launch.returncode == 0, launch.stderr.read() if launch.stderr else ""
        assert names() == ["handed.safetensors"]
        assert on_gui_thread == [True]
        assert desktop.window.isVisible()
    finally:
        instance.close()


def test_a_launch_while_the_window_starts_waits_for_it_and_its_file_is_queued_once_the_window_is_built(
    make_desktop: Any, aloop: Any
) -> None:
    """An audit opened a file while the window was still starting: a second window opened, and its sandbox
    failed on the first one's data ("weed exited with code 255"). Here the test plays the starting window:
    it holds the profile's claim, then listens, then finishes building, each step when the launch is seen
    waiting for it."""
    desktop = make_desktop(auto_start=False)
    paths = desktop.session.paths
    claim = single_instance._claim(paths)  # what a window takes first, before its slow start-up
    assert claim is not None
    handed = paths.data_dir.parent / "early.safetensors"
    write_safetensors(handed, 4096)
    launch = subprocess.Popen(
        [sys.executable, "-m", "desktop_uploader", str(handed)],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},  # the same profile (DESKTOP_UPLOADER_HOME)
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    instance: single_instance.InstanceServer | None = None
    names = lambda: [row.file_name for row in desktop.session.model.rows()]  # noqa: E731
    try:
        said = lambda: paths.log_file.read_text() if paths.log_file.exists() else ""  # noqa: E731
        run(aloop, until(lambda: "waiting for it" in said() or launch.poll() is not None, 60, "the launch"))
        assert launch.poll() is None and " started" not in said(), "the launch opened a window of its own"
        instance = single_instance.InstanceServer(paths)  # listening, the window not built yet
        run(aloop, until(lambda: launch.poll() is not None, 60, "the hand-over"))
        assert launch.returncode == 0, launch.stderr.read() if launch.stderr else ""
        assert names() == []  # kept by the window until it can queue it
        gui_app.welcome_later_launches(desktop, instance)
        run(aloop, until(lambda: "early.safetensors" in names(), 30, "the file queued"))
        assert names() == ["early.safetensors"]
    finally:
        if launch.poll() is None:
            launch.kill()
        launch.wait(10)
        if instance is not None:
            instance.close()
        claim.release()


def test_a_killed_windows_socket_is_replaced_and_a_closed_window_takes_no_files(make_desktop: Any) -> None:
    desktop = make_desktop(connect=False)
    paths = desktop.session.paths
    stale = single_instance.address(paths)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(stale)  # what a window killed with -9 leaves: a socket file nobody listens on
    dead.close()
    assert not single_instance.hand_over(paths, ["x.safetensors"])
    instance = single_instance.InstanceServer(paths)
    try:
        assert instance.listening
        assert single_instance.hand_over(paths, [])  # answered by the new window
    finally:
        instance.close()
    assert not single_instance.hand_over(paths, [])  # closing: the next launch opens its own window


def test_ctrl_c_in_the_terminal_that_started_the_window_pauses_and_quits(private_home: Path) -> None:
    """Qt swallowed Python's KeyboardInterrupt: a CLI audit pressed Ctrl-C three times and the window ran on."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    window = subprocess.Popen(
        [sys.executable, "-m", "desktop_uploader"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - as from a terminal
    )
    log_file = resolve_paths().log_file
    try:
        wait_until(lambda: log_file.exists() and " started" in log_file.read_text(), 60, "the window")
        window.send_signal(signal.SIGINT)
        _, errors = window.communicate(timeout=30 * SLACK)
    finally:
        if window.poll() is None:
            window.kill()
            window.wait(10)
    assert window.returncode == 0, errors
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors, errors
    said = log_file.read_text()  # a support person can see when and how the uploads stopped
    assert "Ctrl-C in the terminal: pause and quit" in said and "Quitting: pausing the uploads" in said


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["uplaod", "model.safetensors"], "'uplaod' is not a command. Did you mean 'upload'?"),
        (["foo"], "'foo' is neither a command nor a file. The commands are cleanup, discard, list, resume,"),
        (["missing.safetensors"], "'missing.safetensors' is neither a command nor a file."),
    ],
)
def test_a_mistyped_command_is_named_instead_of_opening_the_window(
    words: list[str],
    said: str,
    private_home: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where no such files are
    with pytest.raises(SystemExit) as exit_code:
        cli.main(words)
    assert exit_code.value.code == 2
    assert said in capsys.readouterr().err


def test_without_a_display_the_window_is_not_tried_and_the_terminal_command_is_named(
    private_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over SSH, Qt aborted with "Reinstalling the application may fix this problem" (exit 134)."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert cli.main([]) == 1
    said = capsys.readouterr().err
    assert "needs a desktop to show its window" in said and "desktop-uploader upload FILE" in said
