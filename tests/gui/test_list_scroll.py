"""Where the list is scrolled: to what the person just added, and nowhere when nobody added anything.

A GUI audit reopened the app with 42 files waiting: the list opened scrolled to its bottom, away from the
uploads it had been asked to go on with, because each batch of restored rows was scrolled to as if dropped.
"""

from __future__ import annotations

from typing import Any

from tests.gui.conftest import run, until
from tests.gui.test_history import saved_paths
from tests.gui.test_queue import drop


def on_screen(view: Any, row: int) -> bool:
    return bool(view.viewport().rect().contains(view.visualRect(view.model().index(row, 0))))


def test_files_added_to_a_long_list_are_scrolled_into_view(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(auto_start=False)
    window, view = desktop.window, desktop.window.view
    first = [make_file(1000, name=f"early-{n:02}.safetensors").path for n in range(12)]
    later = [make_file(1000, name=f"later-{n}.safetensors").path for n in range(2)]

    async def scenario() -> None:
        drop(window, first)
        await until(lambda: desktop.session.model.rowCount() == 12, what="twelve rows")
        view.scrollToTop()
        drop(window, later)
        await until(lambda: desktop.session.model.rowCount() == 14, what="fourteen rows")

    run(aloop, scenario())
    assert on_screen(view, 12) and on_screen(view, 13)
    assert not on_screen(view, 0), "the list is longer than the window"


def test_a_big_drop_shows_its_first_file_however_its_rows_arrive(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(auto_start=False)
    window, view, model = desktop.window, desktop.window.view, desktop.session.model
    first = [make_file(1000, name=f"early-{n:02}.safetensors").path for n in range(12)]
    later = [make_file(1000, name=f"later-{n:02}.safetensors").path for n in range(40)]

    async def scenario() -> None:
        drop(window, first)
        await until(lambda: model.rowCount() == 12, what="twelve rows")
        view.scrollToTop()
        drop(window, later)
        await until(lambda: model.rowCount() == 52, what="fifty-two rows")

    run(aloop, scenario())
    assert model.row_at(model.index(12)).file_name == "later-00.safetensors"
    assert on_screen(view, 12), "the first file of the drop is on screen"
    assert not on_screen(view, 51), "not scrolled on to the drop's last rows"


def test_a_reopened_list_starts_at_its_top(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    first = make_desktop(auto_start=False)
    files = [make_file(1000, name=f"waiting-{n:02}.safetensors").path for n in range(40)]

    async def leave() -> None:
        drop(first.window, files)
        await until(lambda: len(saved_paths(first)) == 40, 20, "the saved queue")
        await first.session.shutdown()

    run(aloop, leave())
    first.window.close()

    second = make_desktop()
    view, model = second.window.view, second.session.model
    run(aloop, until(lambda: model.rowCount() == 40, 20, "the restored rows"))
    assert model.row_at(model.index(0)).file_name == "waiting-00.safetensors"
    assert view.verticalScrollBar().value() == 0 and on_screen(view, 0), "opened at the top of the list"
