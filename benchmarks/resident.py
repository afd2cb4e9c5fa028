"""One 64 MiB file dropped on a window that is already open: the per-file cost without the process's start.

The CLI pays an interpreter's start and its imports for every file, which is most of the gap to s5cmd
on a 64 MiB file (docs/benchmarks.md, "Per-file overhead"). People who use the app keep its window
open and drop files on it, so what they feel per file is the engine's own work: reading the header,
queueing, the API's calls, the parts and the completion. This measures that, on the real window.

The parent starts ``python -m benchmarks.resident serve`` (the window, offscreen, connected to the
target, in a home of its own) and waits until it is connected; that start is not timed, as a window
opened before is not. Each round then writes a file's path to the window's stdin; the window times from
taking it (as a drop) until the engine's Completed event: drop to stored, on the machine's monotonic
clock, which the sink's first and last byte share. It measures its own CPU over that span (all
threads) and reports it with its peak RSS. Then the finished row is removed, as a person clearing the
list would, so the same file counts as a new one next round; that happens before the answer, untimed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender, _clean_env
from benchmarks.measure import GiB, Sample, payload_size
from benchmarks.servers import ROOT, SinkServers, Target

READY = "ready"


def window_contender() -> Contender:
    return Contender("ours-window", "window", "Ours, the window already open (drop to stored)")


class ResidentWindow:
    """The window in a child process of its own, driven over stdin/stdout one line per file."""

    def __init__(self, target: Target, home: Path) -> None:
        self.target = target
        self.home = home
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**_clean_env(), "DESKTOP_UPLOADER_HOME": str(self.home), "QT_QPA_PLATFORM": "offscreen"}
        argv = [sys.executable, "-m", "benchmarks.resident", "serve", self.target.api_url, self.target.token]
        with open(self.home / "window.err", "wb") as errors:  # Qt's own warnings, kept out of the tables
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        line = self._read_line(timeout)
        if line.strip() != READY:
            raise RuntimeError(f"the window did not connect: {line.strip()!r}")

    def upload(self, path: Path, timeout: float = 300.0) -> dict[str, Any]:
        """The window's report on ``path``: its status, and when (``time.monotonic()``) it took and finished it."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        report: dict[str, Any] = json.loads(self._read_line(timeout))
        return report

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError):  # a window that died has closed its end already
            if self.process.stdin is not None:
                self.process.stdin.close()  # end of input: the window shuts down
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"the window did not answer within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            said = (self.home / "window.err").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the window exited ({self.process.wait(10)}): {' / '.join(said)}")
        return line


def run_resident(scenario: str, window: ResidentWindow, path: Path, round_no: int, sink: SinkServers | None) -> Sample:
    size = payload_size(path)
    if sink is not None:
        sink.reset()
    server_cpu = window.target.server_cpu()
    try:
        report = window.upload(path)
    except (OSError, RuntimeError, ValueError) as exc:
        return Sample(scenario, "ours-window", round_no, size, False, 0, 0, 0, 0, 0, f"window failed: {exc}")
    began, ended = float(report.get("began", 0.0)), float(report.get("ended", 0.0))
    extra: dict[str, Any] = {
        "server_cpu": round(window.target.server_cpu() - server_cpu, 3),
        "idle_rss_mib": round(int(report.get("idle_rss", 0)) / 2**20, 1),
        "idle_anon_mib": round(int(report.get("idle_anon", 0)) / 2**20, 1),
    }
    ok = report.get("status") == "completed" and report.get("method") == "presigned-s3" and ended > began
    if sink is not None:
        extra |= sink.timing(began, ended)
    wall = ended - began
    cpu = float(report.get("cpu", 0.0))
    return Sample(
        scenario,
        "ours-window",
        round_no,
        size,
        ok,
        round(wall, 4),
        round(cpu, 4),
        int(report.get("max_rss", 0)),
        round(size / wall / 1e6, 1) if ok else 0.0,
        round(cpu / (size / GiB), 3),
        "" if ok else f"{report.get('status')}: {report.get('message', '')} {report.get('method', '')}",
        extra,
    )


async def cleared(model: Any, job_id: str) -> None:
    import asyncio

    while model.row_by_id(job_id) is not None:
        await asyncio.sleep(0.005)


def resident_kib(field: str = "VmRSS") -> int:
    """VmRSS now (Linux), where ``ru_maxrss`` is the peak so far; or RssAnon, what is not shared libraries."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def serve(server_url: str, token: str) -> int:
    """The child: the real window, connected to ``server_url``; one uploaded file per line of stdin."""
    import asyncio
    import resource

    import qasync

    from desktop_uploader.engine.credentials import token_key
    from desktop_uploader.engine.events import Completed, Event, Failed
    from desktop_uploader.engine.rows import RowAction
    from desktop_uploader.engine.settings import Settings, save_settings
    from desktop_uploader.gui.app import application, build, start
    from desktop_uploader.paths import resolve_paths

    app = application([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    paths = resolve_paths().ensure()
    save_settings(paths.settings_file, Settings(server_url=server_url, auto_start=True))

    async def answer_damaged(_found: list[tuple[Path, str]]) -> bool:
        return True  # the drop's question about a cut-short header; a real model file never asks it

    async def scenario() -> None:
        desktop = build(paths)
        desktop.session.credentials.set(token_key(server_url), token)
        session = desktop.session
        desktop.window.show()
        await start(desktop)
        ended: asyncio.Future[Event] | None = None

        def on_event(event: object) -> None:
            if isinstance(event, Completed | Failed) and ended is not None and not ended.done():
                ended.set_result(event)

        session.bridge.engineEvent.connect(on_event)
        # The open, connected window before any upload; about half of it is Qt's libraries, mapped from disk.
        idle_rss, idle_anon = resident_kib() * 1024, resident_kib("RssAnon") * 1024
        print(READY, flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            ended = loop.create_future()
            began, cpu = time.monotonic(), time.process_time()
            outcome = await session.add_paths([line.strip()], confirm_damaged=answer_damaged)
            if not outcome.added:  # refused or already in the list: say so rather than wait for nothing
                print(json.dumps({"status": "not added", "message": outcome.text()}), flush=True)
                continue
            event = await asyncio.wait_for(ended, 300)
            report: dict[str, Any] = {
                "began": began,
                "ended": time.monotonic(),
                "cpu": time.process_time() - cpu,
                "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "idle_rss": idle_rss,
                "idle_anon": idle_anon,
            }
            if isinstance(event, Completed):
                report |= {"status": "completed", "method": event.result.method}
            else:
                assert isinstance(event, Failed)
                report |= {"status": "failed", "message": event.message, "method": event.method}
            session.act(event.job_id, RowAction.REMOVE)
            await asyncio.wait_for(cleared(session.model, event.job_id), 30)  # before the next file is taken
            print(json.dumps(report), flush=True)
        await session.shutdown(cancel=True)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        sys.exit(serve(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m benchmarks.resident serve API_URL TOKEN")
