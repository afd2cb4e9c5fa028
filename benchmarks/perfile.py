"""Per-file scenarios: one 64 MiB file, and a folder of 20 such files, end to end (process start to exit).

Typical LoRAs are 20–300 MB, so what a user feels is less the data phase than the fixed costs of a
run (start-up, imports, API round trips, completion) and of each file. Each scenario runs on the
discard sink and on the SeaweedFS sandbox, rounds interleaved like the 1 GiB ones; SeaweedFS gets a
fresh store per round (it keeps deleted objects' space until a vacuum).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.contenders import Contender, per_file_contenders
from benchmarks.loopback import run_rounds
from benchmarks.measure import MiB, Sample, make_file, make_folder, warm_all
from benchmarks.resident import ResidentWindow, window_contender
from benchmarks.servers import SeaweedSandbox, SinkServers, Target

FILE_SIZE = 64 * MiB
FOLDER_FILES = 20
KINDS = ("small", "folder")  # the names --only takes


def inputs(work: Path) -> dict[str, Path]:
    """The scenario's input for each kind: one 64 MiB file, or a folder of 20 of them."""
    return {
        "small": make_file(work / "files" / "single" / "lora-64MiB.safetensors", FILE_SIZE),
        "folder": make_folder(work / "files" / f"folder-{FOLDER_FILES}x64MiB", FOLDER_FILES, FILE_SIZE),
    }


def scenario_name(server: str, kind: str) -> str:
    """``sink-64mib``, ``seaweedfs-folder``…: one table per server and input."""
    return f"{server}-{'64mib' if kind == 'small' else f'folder-{FOLDER_FILES}x64mib'}"


@contextlib.contextmanager
def open_window(wanted: bool, target: Target, work: Path) -> Iterator[ResidentWindow | None]:
    """The window already open on ``target`` (its start not timed), when the window contender runs."""
    if not wanted:
        yield None
        return
    window = ResidentWindow(target, work / "homes" / "ours-window")
    try:
        window.start()
        yield window
    finally:
        window.stop()


def per_file_scenarios(
    work: Path,
    kinds: list[str],
    rounds: int,
    log: Callable[[str], None],
    pick: Callable[[list[Contender]], list[Contender]],
    save: Callable[[], None] | None = None,
) -> list[Sample]:
    paths = {kind: path for kind, path in inputs(work).items() if kind in kinds}
    for path in paths.values():
        warm_all(path)
    everyone = pick([*per_file_contenders(), window_contender()])
    # The window takes one file at a time here: a dropped folder is what "files at once" measures.
    contenders = {kind: [c for c in everyone if kind == "small" or c.kind != "window"] for kind in paths}
    wants_window = "small" in paths and any(c.kind == "window" for c in everyone)
    samples: list[Sample] = []
    servers = SinkServers(work / "sink-perfile")
    target = servers.start()
    try:
        with open_window(wants_window, target, work) as window:
            for kind, path in paths.items():
                name = scenario_name("sink", kind)
                samples += run_rounds(
                    name, contenders[kind], target, path, work, rounds, log, sink=servers, window=window
                )
    finally:
        servers.stop()
    if save is not None:
        save()
    for round_no in range(1, rounds + 1):
        store = work / "seaweedfs-perfile"
        shutil.rmtree(store, ignore_errors=True)
        sandbox = SeaweedSandbox(store)
        target = sandbox.start()
        try:
            with open_window(wants_window, target, work) as window:
                for kind, path in paths.items():
                    name = scenario_name("seaweedfs", kind)
                    samples += run_rounds(
                        name, contenders[kind], target, path, work, 1, log, first_round=round_no, window=window
                    )
        finally:
            sandbox.stop()
            shutil.rmtree(store, ignore_errors=True)
        if save is not None:
            save()
    return samples
