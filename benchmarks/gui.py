"""GUI responsiveness, measured in a real X window (Xvfb): event-loop stalls and cold start.

Stalls: a 5 ms timer ticks on the GUI thread; every tick that comes late is a stall of that many
milliseconds, i.e. time in which the window could not react. Measured in three phases:

- adding 1,000 files to the queue (the rows arrive through the model and the 10 Hz flush),
- scrolling through the 1,000 rows, top to bottom and back, while 4 files upload,
- 4 files uploading with the window idle.

Cold start: from launching ``desktop-uploader`` to its window being visible on the X server
(xdotool), with a server already configured (the first-run sandbox start is measured apart).

    python -m benchmarks.gui            # needs Xvfb and xdotool (Debian: apt-get install xvfb xdotool)
"""

from __future__ import annotations

import asyncio
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TICK_MS = 5
MB = 1000 * 1000


@contextmanager
def xvfb() -> Iterator[str]:
    number = 120 + os.getpid() % 100
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def percentiles(stalls: list[float]) -> dict[str, float]:
    ordered = sorted(stalls) or [0.0]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"ticks": len(stalls), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 2)}


class StallMeter:
    """A fast timer on the GUI thread; lateness of each tick is how long the loop was busy."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.stalls: list[float] = []
        self.gc_ms: list[float] = []
        self._gc_began = 0.0
        import gc

        def watch(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self._gc_began = time.perf_counter()
            elif info.get("generation") == 2:
                self.gc_ms.append((time.perf_counter() - self._gc_began) * 1000)

        gc.callbacks.append(watch)
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now

    def phase(self) -> None:
        self.gc_ms = []
        self.stalls = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return self.stalls


def stall_benchmark(home: Path, rows: int = 1000, uploads: int = 4, seconds: float = 15.0) -> dict[str, Any]:
    import qasync

    from desktop_uploader.connection import launch_sandbox
    from desktop_uploader.engine.credentials import token_key
    from desktop_uploader.engine.events import Status
    from desktop_uploader.engine.rows import RowAction
    from desktop_uploader.engine.settings import Settings, save_settings
    from desktop_uploader.gui.app import application, build, start
    from desktop_uploader.paths import resolve_paths

    app = application([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    paths = resolve_paths().ensure()
    sandbox = launch_sandbox(paths)
    files = home / "models"
    files.mkdir()
    small = []
    for number in range(rows):
        path = files / f"lora-{number:04d}.safetensors"
        path.write_bytes(b"\0" * 1024)
        small.append(str(path))
    big = []
    for number in range(uploads):
        path = files / f"checkpoint-{number}.safetensors"
        with open(path, "wb") as handle:
            handle.truncate(4 * 1024**3)
        big.append(str(path))
    settings = Settings(
        server_url=sandbox.info.api_url, auto_start=False, files_at_once=uploads, bandwidth_limit=40 * MB
    )
    save_settings(paths.settings_file, settings)
    result: dict[str, Any] = {"rows": rows, "uploads": uploads, "tick_ms": TICK_MS}

    async def scenario() -> None:
        desktop = build(paths)
        desktop.session.credentials.set(token_key(sandbox.info.api_url), sandbox.info.token)
        window, session = desktop.window, desktop.session
        window.resize(1180, 720)
        window.show()
        await start(desktop)
        meter = StallMeter()

        meter.phase()
        began = time.perf_counter()
        await session.add_paths(small)
        while session.model.rowCount() < rows:
            await asyncio.sleep(0.01)
        result["adding_seconds"] = round(time.perf_counter() - began, 2)
        result["adding"] = percentiles(meter.stop())

        await session.add_paths(big)
        while session.model.rowCount() < rows + uploads:
            await asyncio.sleep(0.01)
        for row in session.model.rows()[rows:]:
            session.act(row.job_id, RowAction.RESUME)
        while sum(1 for r in session.model.rows() if r.status == Status.UPLOADING) < uploads:
            await asyncio.sleep(0.05)

        profile = None
        if os.environ.get("PROFILE_GUI"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        meter.phase()
        bar = window.view.verticalScrollBar()
        deadline = time.perf_counter() + seconds
        step = max(1, bar.maximum() // 60)
        direction = 1
        while time.perf_counter() < deadline:
            value = bar.value() + direction * step
            if not bar.minimum() <= value <= bar.maximum():
                direction = -direction
            bar.setValue(max(bar.minimum(), min(bar.maximum(), value)))
            await asyncio.sleep(0.05)
        result["scrolling_while_uploading"] = percentiles(meter.stop())
        if profile is not None:
            import pstats

            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(18)
        result["scrolling_while_uploading"]["gc2_ms"] = [round(x, 1) for x in meter.gc_ms]

        meter.phase()
        await asyncio.sleep(seconds)
        result["idle_while_uploading"] = percentiles(meter.stop())
        result["idle_while_uploading"]["gc2_ms"] = [round(x, 1) for x in meter.gc_ms]
        result["uploading_speed_mb_s"] = round(session.model.summary.speed / MB, 1)
        await session.shutdown(cancel=True)

    try:
        loop.run_until_complete(scenario())
    finally:
        sandbox.stop()
        loop.close()
    return result


def cold_start(home: Path, runs: int = 5) -> dict[str, Any]:
    """Launch the installed command until its window shows, several times; the app is closed between."""
    from desktop_uploader.engine.settings import Settings, save_settings
    from desktop_uploader.paths import resolve_paths

    save_settings(resolve_paths().ensure().settings_file, Settings(server_url="http://127.0.0.1:9"))
    command = [str(Path(sys.executable).parent / "desktop-uploader")]
    samples = []
    for _ in range(runs + 1):  # the first run warms the disk cache and is not counted
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            found = subprocess.run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--name", "^Desktop Uploader"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if found.returncode == 0:
                samples.append(time.perf_counter() - began)
        finally:
            process.terminate()
            process.wait(15)
    counted = samples[1:]
    return {
        "runs": len(counted),
        "median_s": round(statistics.median(counted), 2),
        "min_s": round(min(counted), 2),
        "max_s": round(max(counted), 2),
    }


def main() -> int:
    if os.environ.get("SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["SWITCH_INTERVAL"]))
    # Cold start as an installed app starts: from compiled bytecode (see benchmarks/run.py).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "desktop_uploader", quiet=1)
    home = Path(tempfile.mkdtemp(prefix="du-gui-bench-"))
    os.environ["DESKTOP_UPLOADER_HOME"] = str(home)
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    results: dict[str, Any] = {}
    try:
        with xvfb() as display:
            os.environ["DISPLAY"] = display
            results["cold_start"] = (
                cold_start(home)
                if "--no-cold-start" not in sys.argv
                else {"runs": 0, "median_s": 0, "min_s": 0, "max_s": 0}
            )
            results["stalls"] = stall_benchmark(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gui.json").write_text(json.dumps(results, indent=2))
    show(results)
    return 0


def show(results: dict[str, Any]) -> None:
    line: Callable[[str], None] = print
    start = results["cold_start"]
    line(f"cold start to a visible window: median {start['median_s']} s (min {start['min_s']}, max {start['max_s']})")
    stalls = results["stalls"]
    for phase in ("adding", "scrolling_while_uploading", "idle_while_uploading"):
        p = stalls[phase]
        line(f"{phase:28s} stall p50 {p['p50_ms']:6.2f} ms  p99 {p['p99_ms']:6.2f} ms  max {p['max_ms']:7.2f} ms")
    line(
        f"adding {stalls['rows']} rows took {stalls['adding_seconds']} s; uploads ran at "
        f"{stalls['uploading_speed_mb_s']} MB/s"
    )


if __name__ == "__main__":
    sys.exit(main())
