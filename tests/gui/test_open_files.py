"""``desktop-uploader FILE…`` (a file manager's "Open with") opens the window with those files queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from desktop_uploader import cli
from desktop_uploader.gui import app as gui_app


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
            desktop.window.quitRequested.emit(False)

    monkeypatch.setattr(gui_app, "start", start_then_quit)
    assert cli.main([first.path.name, str(second.path)]) == 0
    assert seen == {"visible": True, "queued": ["first.safetensors", "second.safetensors"]}


def test_a_command_name_still_runs_the_command_and_files_after_a_double_dash_are_files() -> None:
    parser = cli.build_parser()
    assert cli.split_files(parser, ["list", "--json"]) == (["list", "--json"], [])
    assert cli.split_files(parser, []) == ([], [])
    assert cli.split_files(parser, ["--self-test"]) == (["--self-test"], [])
    assert cli.split_files(parser, ["a.safetensors", "b.ckpt"]) == ([], ["a.safetensors", "b.ckpt"])
    assert cli.split_files(parser, ["--", "upload"]) == ([], ["upload"])
