"""One seeded run, end to end, and the strict check of how it ended.

A run goes through phases until the file is stored or given up:

1. The upload, under the scenario's faults (and, for CLI runs, killed with SIGKILL at its point).
2. If it ended in a clear error (or was killed): what the user does next, ``resume`` or ``discard``,
   still under the same faults (their counters go on, so a persistent fault keeps biting).
3. If that failed too: the same again with every fault switched off. This one must succeed.

After every phase the promise is checked against storage itself (boto3, not the client's word):

* a completed upload is an object whose sha256 is the file's, and no object of this file anywhere
  in the bucket differs from it (no corrupted object, no silent success);
* a failed upload has a clear message, and every multipart upload storage still holds for this file
  is referenced by the resume store: kept for resume, or parked to be aborted (never an orphan);
  a failure reported as resumable has its record, pointing at an upload storage still has;
* after discard or cancel, and at the very end, ListMultipartUploads is empty for this file;
* the source file is never modified, and no log line holds the token or a URL signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from desktop_uploader.cli.session import SECRET_ENV
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.state import OWED_ABORT, StateStore
from desktop_uploader.sandbox.info import SandboxInfo
from tests.faults import targets
from tests.faults.scenario import Scenario, SeededPlan, kill_process, scenario
from tests.support.proxy import Proxy
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import deadline_after

USER_PREFIX = targets.USER_PREFIX
SETTLE_TIMEOUT = 120.0
CRASH_MESSAGE = "Something unexpected went wrong"


class LazyServer:
    """A server behind its API proxy, started on first use and then kept: the Next.js route (``next start``
    takes seconds, and only the seeds that pick it need it)."""

    def __init__(self, start: Callable[[], tuple[Proxy, Path]]) -> None:
        self._start = start  # starts the server and its proxy; returns the proxy and the server's log
        self._proxy: Proxy | None = None
        self.log: Path | None = None
        self._lock = threading.Lock()

    def proxy(self) -> Proxy:
        with self._lock:
            if self._proxy is None:
                self._proxy, self.log = self._start()
            return self._proxy

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log and self.log.exists() else 0

    @property
    def started(self) -> Proxy | None:
        return self._proxy


@dataclass
class World:
    """The sandbox's SeaweedFS behind a storage proxy, and the APIs (presigning for that proxy) behind API proxies:
    ours with every action, one that offers only the seed's start/complete/abort, and the Next.js route
    (server-examples/nextjs, the whole contract), started when a seed first picks it."""

    sandbox: SandboxInfo
    s3: Any
    storage_proxy: Proxy
    api_proxy: Proxy
    log_file: Path
    seed_api_proxy: Proxy
    next_server: LazyServer | None = None

    @property
    def api_url(self) -> str:
        return self.api_proxy.url

    def next_api_proxy(self) -> Proxy:
        if self.next_server is None:
            raise RuntimeError("this world has no Next.js route")
        return self.next_server.proxy()

    def proxy_for(self, sc: Scenario) -> Proxy:
        """The API proxy a scenario's faults go to (direct-s3 talks to no API; its plan's API half stays idle)."""
        if sc.server == "seed":
            return self.seed_api_proxy
        if sc.server == "next":
            return self.next_api_proxy()
        return self.api_proxy

    def api_proxies(self) -> tuple[Proxy, ...]:
        started = self.next_server.started if self.next_server else None
        return (self.api_proxy, self.seed_api_proxy, *((started,) if started else ()))

    def plan(self, sc: Scenario) -> SeededPlan:
        return SeededPlan(sc, self.proxy_for(sc))

    def install(self, plan: SeededPlan | None) -> None:
        self.storage_proxy.set_fault_plan(plan.storage if plan else None)
        used = self.proxy_for(plan.scenario) if plan else None
        for proxy in self.api_proxies():
            proxy.set_fault_plan(plan.api if plan and proxy is used else None)
            proxy.reset()
        self.storage_proxy.reset()


@dataclass
class SeedResult:
    seed: int
    mode: str
    method: str
    server: str
    size: int
    faults: list[str]
    fired_kinds: list[str]
    killed: str
    phases: list[str] = field(default_factory=list)
    outcome: str = ""
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Rec(NamedTuple):
    """A resume record, as far as the checks care."""

    id: str
    upload_id: str | None
    status: str
    s3_key: str | None


class BrokenPromiseError(AssertionError):
    """The run broke the promise in a way that stops it from going on (a hang, a damaged store)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------------------
# What storage says


NEXT_STAGING = "loras/.chunked/"  # where the Next.js route keeps a chunked upload's chunks until they make a part


def staging_objects(world: World) -> set[str]:
    """Objects under the Next.js route's chunked staging prefix: each belongs to an unfinished chunked upload."""
    pages = world.s3.get_paginator("list_objects_v2").paginate(Bucket=world.sandbox.bucket, Prefix=NEXT_STAGING)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def open_uploads(world: World, name: str) -> dict[str, str]:
    """Multipart uploads storage still holds for this file: upload id -> key."""
    return {
        u["UploadId"]: u["Key"]
        for u in open_multipart_uploads(world.s3, world.sandbox.bucket, USER_PREFIX)
        if u["Key"].endswith("_" + name)
    }


def stored_objects(world: World, name: str) -> list[str]:
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": world.sandbox.bucket, "Prefix": USER_PREFIX}
    while True:
        page = world.s3.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith("_" + name)]
        if not page.get("IsTruncated"):
            return keys
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def signatures(world: World) -> set[str]:
    return {r.query["X-Amz-Signature"] for r in world.storage_proxy.stats.records() if "X-Amz-Signature" in r.query}


# ------------------------------------------------------------------------------------------------------------
# The checks


@dataclass
class Checker:
    world: World
    scenario: Scenario
    path: Path
    sha256: str
    result: SeedResult
    plan: SeededPlan | None = None
    logs: Callable[[], str] = lambda: ""  # what this run logged so far (the seed server's leftovers are reported)
    leftovers: dict[str, str] = field(default_factory=dict)  # lost starts' uploads a seed server can't list

    def fail(self, message: str) -> None:
        self.result.violations.append(message)

    def objects_are_the_file(self) -> list[str]:
        keys = stored_objects(self.world, self.scenario.name)
        for key in keys:
            digest = object_sha256(self.world.s3, self.world.sandbox.bucket, key)
            if digest != self.sha256:
                self.fail(f"corrupted object: {key} has sha256 {digest[:12]}…, the file {self.sha256[:12]}…")
        if len(keys) > 1:
            self.fail(f"{len(keys)} complete copies of the file were stored (all but one cost storage for nothing)")
        return keys

    def completed(self, key: str | None, phase: str) -> None:
        if not key:
            self.fail(f"{phase}: reported completed without a key")
            return
        keys = self.objects_are_the_file()
        if key not in keys:
            self.fail(f"{phase}: silent success: reported {key} completed, but storage has no such object")

    def message_is_clear(self, message: str, phase: str) -> None:
        if not message.strip():
            self.fail(f"{phase}: failed without a message")
        elif CRASH_MESSAGE in message or "Traceback" in message or "Error(" in message or "<class" in message:
            self.fail(f"{phase}: failed with an unclear message: {message!r}")

    def nothing_orphaned(self, records: list[Rec], phase: str) -> None:
        """Every upload storage holds for this file is one the resume store references.

        A record without an upload id is an *intent* (a start whose answer never came): it stands for the
        uploads that start may have created, which its resume, discard or sweep aborts (checked at the end).
        """
        referenced = {r.upload_id for r in records if r.upload_id}
        if any(r.upload_id is None for r in records):
            return
        unreferenced = {u: k for u, k in open_uploads(self.world, self.scenario.name).items() if u not in referenced}
        for upload_id, key in targets.tolerate_lost_starts(self, unreferenced, self.logs).items():
            if upload_id not in self.leftovers:
                self.fail(f"{phase}: orphan multipart upload {key} ({upload_id[:16]}…): no resume record references it")

    def resumable_record_is_live(self, record: Rec | None, phase: str) -> None:
        """What a resumable failure keeps must let it resume: its upload, or the object a lost answer finished."""
        if record is None:
            self.fail(f"{phase}: reported resumable, but it has no resume record")
        elif record.upload_id is None:
            return  # an intent: resuming looks for what its start left, then starts afresh
        elif record.upload_id not in open_uploads(self.world, self.scenario.name):
            if record.s3_key in stored_objects(self.world, self.scenario.name):
                self.result.notes.append(f"{phase}: completed on the server, but the answer was lost")
            else:
                self.fail(f"{phase}: reported resumable, but storage no longer has upload {record.upload_id[:16]}…")

    def nothing_left(self, records: list[Rec], phase: str) -> None:
        left = {u: k for u, k in open_uploads(self.world, self.scenario.name).items() if u not in self.leftovers}
        left = targets.tolerate_lost_starts(self, left, self.logs) if not records else left
        if left:
            self.fail(f"{phase}: ListMultipartUploads still lists {sorted(left.values())}")
        if records:
            self.fail(f"{phase}: resume records left behind: {records}")

    def source_unchanged(self) -> None:
        if sha256_of(self.path) != self.sha256:
            self.fail("the source file was modified")

    def logs_keep_secrets(self, text: str, where: str) -> None:
        if self.world.sandbox.token in text:
            self.fail(f"{where} contains the API token")
        leaked = [s for s in signatures(self.world) if s in text]
        if leaked:
            self.fail(f"{where} contains {len(leaked)} X-Amz-Signature value(s)")


# ------------------------------------------------------------------------------------------------------------
# In-process runs: the engine's UploadManager, as the desktop app drives it


def _log_since(log_file: Path, start: int) -> str:
    if not log_file.exists():
        return ""
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        handle.seek(start)
        return handle.read()


def _records(state: StateStore) -> list[Rec]:
    return [Rec(r.id, r.upload_id, r.status, r.s3_key) for r in state.unfinished()]


def _settle(manager: UploadManager, job_id: str) -> Any:
    if not manager.wait([job_id], SETTLE_TIMEOUT):
        raise BrokenPromiseError(f"the upload did not settle within {SETTLE_TIMEOUT:.0f} s (a hang)")
    return manager.job(job_id)


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = deadline_after(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _engine_failed(check: Checker, state: StateStore, job_id: str, view: Any, phase: str) -> None:
    check.message_is_clear(view.message, phase)
    records = _records(state)
    check.nothing_orphaned(records, phase)
    mine = next((r for r in records if r.id == job_id), None)
    if view.resumable:
        check.resumable_record_is_live(mine, phase)
    elif mine is not None and mine.status != OWED_ABORT:
        check.fail(f"{phase}: failed for good, but its resume record was kept")


@contextlib.contextmanager
def _offline(check: Checker) -> Iterator[None]:
    """The discard's target is unreachable (the API, or storage for direct-s3) when asked: the abort is owed."""
    sc = check.scenario
    if not (sc.discard_offline and sc.after_failure == "discard"):
        yield
        return
    proxy = check.world.storage_proxy if sc.direct else check.world.proxy_for(sc)
    proxy.down()
    check.result.phases.append("target unreachable")
    try:
        yield
    finally:
        proxy.up()


def _engine_discard(check: Checker, manager: UploadManager, state: StateStore, job_id: str) -> None:
    """Give the failed upload up: Cancel when it was kept for Retry, else take its row off the list."""
    with _offline(check):
        _engine_discard_now(check, manager, state, job_id)


def _engine_discard_now(check: Checker, manager: UploadManager, state: StateStore, job_id: str) -> None:
    if not manager.job(job_id).resumable:
        manager.remove(job_id)
        check.result.phases.append("discard: removed")
    else:
        manager.cancel(job_id)
        view = manager.job(job_id)
        check.result.phases.append(f"discard: {view.status.value}")
        if view.status != Status.CANCELLED:
            check.fail(f"discard: a failed upload could not be discarded (it is {view.status.value})")
    if not _wait_for(lambda: state.get(job_id) is None):
        check.fail("discard: its resume record was never removed")


def run_engine(world: World, sc: Scenario, path: Path, workdir: Path, result: SeedResult) -> None:
    plan = world.plan(sc)
    world.install(plan)
    log_start = world.log_file.stat().st_size if world.log_file.exists() else 0
    check = Checker(world, sc, path, sha256_of(path), result, plan, lambda: _log_since(world.log_file, log_start))
    database = workdir / "uploads.sqlite3"
    state = StateStore.open(database)
    direct = targets.direct_target(world) if sc.direct else None
    manager = UploadManager(targets.settings(world, sc), state, targets.connection(world, sc), direct=direct)
    try:
        job_id = manager.add(path)
        for phase in ("upload", "after failure", "fault-free"):
            view = _settle(manager, job_id)
            result.phases.append(f"{phase}: {view.status.value}" + (" (resumable)" if view.resumable else ""))
            if view.status == Status.COMPLETED:
                check.completed(view.result.s3_key if view.result else None, phase)
                if state.get(job_id) is not None:
                    check.fail(f"{phase}: completed, but its resume record is still there")
                break
            if view.status != Status.FAILED:
                check.fail(f"{phase}: settled as {view.status.value}, neither completed nor failed")
                break
            _engine_failed(check, state, job_id, view, phase)
            if phase == "fault-free":
                check.fail(f"fault-free: still failed: {view.message}")
            elif phase == "upload" and sc.after_failure == "discard":
                _engine_discard(check, manager, state, job_id)
                break
            if phase == "after failure":
                plan.disable()  # before the retry starts, so that it really runs with every fault off
            manager.retry(job_id)
        plan.disable()
        targets.other_sessions_leave_owed(check, database)
        sweep = manager.sweep_owed_aborts()
        owed = sweep.still_owed + sweep.elsewhere
        if owed:
            check.fail(f"{owed} owed abort(s) still fail with every fault off")
        check.nothing_left(_records(state), "end")
        targets.clear_reported_leftovers(check)
        check.objects_are_the_file()
        check.source_unchanged()
    finally:
        plan.disable()
        manager.close(timeout=10)
        state.close()
        result.fired_kinds = sorted(plan.kinds)
        result.faults = plan.fired


# ------------------------------------------------------------------------------------------------------------
# CLI runs: the real command in a subprocess, killed with SIGKILL at a seeded point, then `resume`


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    killed: bool

    def uploads(self) -> list[dict[str, Any]]:
        try:
            payload = json.loads(self.stdout)
        except ValueError:
            return []
        return list(payload.get("uploads", [])) if isinstance(payload, dict) else []


def _db_records(database: Path) -> list[Rec]:
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        try:
            check = db.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BrokenPromiseError(f"the resume store is damaged after the crash: {check}")
            return [Rec(*row) for row in db.execute("SELECT id, upload_id, status, s3_key FROM uploads")]
        except sqlite3.OperationalError:  # not created yet
            return []


def _stored_bytes(database: Path) -> int:
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            parts = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM parts").fetchone()[0])
            chunked = int(db.execute("SELECT COALESCE(MAX(chunk_offset), 0) FROM uploads").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
    return parts + chunked


class Cli:
    def __init__(self, world: World, sc: Scenario, home: Path) -> None:
        self.world = world
        self.sc = sc
        self.home = home
        settings = home / "config" / "settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(targets.settings(world, sc).to_json()), encoding="utf-8")
        self.env = {
            **os.environ,
            "DESKTOP_UPLOADER_HOME": str(home),
            "DESKTOP_UPLOADER_SERVER": targets.api_url(world, sc),
            "DESKTOP_UPLOADER_TOKEN": world.sandbox.token,
            "COLUMNS": "200",
        }
        if sc.direct:
            self.env[SECRET_ENV] = world.sandbox.secret_key

    @property
    def database(self) -> Path:
        return self.home / "data" / "uploads.sqlite3"

    def run(self, *args: str, plan: SeededPlan | None = None, kill: bool = False) -> CliRun:
        process = subprocess.Popen(
            [sys.executable, "-m", "desktop_uploader", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        watcher = None
        if kill and plan is not None and self.sc.kill is not None:
            plan.kill = kill_process(process.pid)
            watcher = threading.Thread(target=self._watch, args=(process, plan), daemon=True)
            watcher.start()
        try:
            stdout, stderr = process.communicate(timeout=SETTLE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise BrokenPromiseError(
                f"`desktop-uploader {' '.join(args[:1])}` did not finish in {SETTLE_TIMEOUT:.0f} s"
            ) from None
        finally:
            if plan is not None:
                plan.kill = None
        if watcher is not None:
            watcher.join(5)
        return CliRun(process.returncode, stdout, stderr, process.returncode == -signal.SIGKILL)

    def _watch(self, process: subprocess.Popen[str], plan: SeededPlan) -> None:
        kill = self.sc.kill
        assert kill is not None
        started = time.monotonic()
        while process.poll() is None and plan.kill is not None:
            if kill.kind == "delay" and time.monotonic() - started >= kill.fraction:
                plan.killed_at = f"after {kill.fraction:.2f} s"
            elif kill.kind == "stored bytes" and _stored_bytes(self.database) >= kill.fraction * self.sc.size:
                plan.killed_at = f"with {_stored_bytes(self.database):,} bytes stored"
            if plan.killed_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.home / "logs").glob("*.log*"))


def run_cli(world: World, sc: Scenario, path: Path, workdir: Path, result: SeedResult) -> None:
    plan = world.plan(sc)
    world.install(plan)
    cli = Cli(world, sc, workdir / "home")
    check = Checker(world, sc, path, sha256_of(path), result, plan, cli.logs)
    try:
        ran = cli.run(
            "upload", str(path), "--json", "--send-anyway", "--bandwidth-limit", str(sc.bandwidth), plan=plan, kill=True
        )
        result.killed = f"{sc.kill.kind if sc.kill else ''}: {plan.killed_at}" if ran.killed else ""
        stored = _cli_phase(check, cli, ran, "upload")
        if not stored and sc.after_failure == "discard":
            with _offline(check):
                _cli_discard(check, cli)
        elif not stored:
            for phase in ("after failure", "fault-free"):
                if phase == "fault-free":
                    plan.disable()
                waiting = [r for r in _db_records(cli.database) if r.status != OWED_ABORT]
                if not waiting and ran.killed and stored_objects(world, sc.name):
                    # Killed after it had finished (its record was gone): nothing to resume, and the file is
                    # there, which the final checks verify. Uploading it again would be the user's choice.
                    result.phases.append(f"{phase}: stored before the kill")
                    break
                # Killed before anything was recorded: the user uploads it again.
                ran = (
                    cli.run("resume", "--all", "--json")
                    if waiting
                    else cli.run("upload", str(path), "--json", "--send-anyway")
                )
                if _cli_phase(check, cli, ran, f"{phase} ({'resume' if waiting else 'upload again'})"):
                    break
                if phase == "fault-free":
                    check.fail(f"fault-free: still not stored: {ran.stdout[-400:]} {ran.stderr[-400:]}")
        plan.disable()
        targets.other_sessions_leave_owed(check, cli.database)
        _sweep(cli)
        check.nothing_left(_db_records(cli.database), "end")
        targets.clear_reported_leftovers(check)
        check.objects_are_the_file()
        check.source_unchanged()
        check.logs_keep_secrets(cli.logs(), "the CLI's log")
    finally:
        plan.disable()
        result.fired_kinds = sorted(plan.kinds)
        result.faults = plan.fired


def _cli_phase(check: Checker, cli: Cli, ran: CliRun, phase: str) -> bool:
    """Check one CLI run; True when the file is stored."""
    result = check.result
    if ran.killed:
        result.phases.append(f"{phase}: killed")
        check.nothing_orphaned(_db_records(cli.database), phase)
        return False
    uploads = ran.uploads()
    if not uploads:
        check.fail(f"{phase}: exit {ran.code} without a JSON result: {ran.stderr[-500:]}")
        return False
    [upload] = uploads
    result.phases.append(f"{phase}: {upload['status']}" + (" (resumable)" if upload.get("resumable") else ""))
    if upload["status"] == "completed":
        if ran.code != 0:
            check.fail(f"{phase}: completed, but exit code {ran.code}")
        check.completed(upload.get("s3Key"), phase)
        if _db_records(cli.database):
            check.fail(f"{phase}: completed, but resume records are left: {_db_records(cli.database)}")
        return True
    if ran.code != 1:
        check.fail(f"{phase}: {upload['status']}, but exit code {ran.code}")
    check.message_is_clear(upload.get("message") or "", phase)
    records = _db_records(cli.database)
    check.nothing_orphaned(records, phase)
    mine = next((r for r in records if r.id == upload["id"]), None)
    if upload.get("resumable"):
        check.resumable_record_is_live(mine, phase)
    elif mine is not None and mine.status != OWED_ABORT:
        check.fail(f"{phase}: failed for good, but its resume record was kept")
    return False


def _cli_discard(check: Checker, cli: Cli) -> None:
    listed = cli.run("list", "--json")
    ids = [u["id"] for u in listed.uploads()]
    check.result.phases.append(f"discard: {len(ids)} interrupted")
    for upload_id in ids:
        discarded = cli.run("discard", upload_id)
        if discarded.code not in (0, 1) or "Traceback" in discarded.stderr + discarded.stdout:
            check.fail(f"discard: exit {discarded.code}: {discarded.stderr[-300:]}")
        if discarded.code == 0 and open_uploads(check.world, check.scenario.name):
            live = {r.upload_id for r in _db_records(cli.database)}
            if set(open_uploads(check.world, check.scenario.name)) - live:
                check.fail("discard: succeeded, but ListMultipartUploads still lists the upload")


def _sweep(cli: Cli) -> None:
    """What the next session does first: abort what an earlier one owed (faults are off by now)."""
    state = StateStore.open(cli.database)
    direct = targets.direct_target(cli.world) if cli.sc.direct else None
    manager = UploadManager(cli.sc.settings(), state, targets.connection(cli.world, cli.sc), direct=direct)
    try:
        manager.sweep_owed_aborts()
    finally:
        manager.close(timeout=5)
        state.close()


# ------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def timed(result: SeedResult) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        result.seconds = round(time.monotonic() - began, 2)


def outcome_of(result: SeedResult) -> str:
    """The matrix column a run falls in."""
    if result.violations:
        return "VIOLATION"
    first = result.phases[0] if result.phases else ""
    rest = " ".join(result.phases[1:])
    start = "killed" if "killed" in first else ("completed" if first.endswith("completed") else "clear error")
    if start == "completed" or "stored before the kill" in rest:
        return "stored"
    if "discard" in rest:
        return f"{start} → discarded"
    if "fault-free" in rest:
        return f"{start} → stored after a fault-free resume"
    return f"{start} → resumed, stored"


def run_seed(world: World, seed: int, path_for: Callable[[Scenario], Path], workdir: Path) -> SeedResult:
    sc = scenario(seed)
    result = SeedResult(
        seed=seed,
        mode="cli" if sc.cli else "engine",
        method=sc.method,
        server=sc.server,
        size=sc.size,
        faults=[],
        fired_kinds=[],
        killed="",
    )
    log_start = world.log_file.stat().st_size if world.log_file.exists() else 0
    route_log_start = world.next_server.log_size() if world.next_server else 0
    staged_before = staging_objects(world) if sc.server == "next" else set()
    with timed(result):
        path = path_for(sc)
        try:
            (run_cli if sc.cli else run_engine)(world, sc, path, workdir, result)
        except BrokenPromiseError as exc:
            result.violations.append(str(exc))
    if world.log_file.exists():
        with open(world.log_file, encoding="utf-8", errors="replace") as handle:
            handle.seek(log_start)
            Checker(world, sc, path, "", result).logs_keep_secrets(handle.read(), "the engine's and server's log")
    route_log = world.next_server.log if world.next_server else None
    if sc.server == "next" and route_log is not None and route_log.exists():
        with open(route_log, encoding="utf-8", errors="replace") as handle:
            handle.seek(route_log_start)
            Checker(world, sc, path, "", result).logs_keep_secrets(handle.read(), "the Next.js route's log")
    if sc.server == "next":  # every upload of the seed is finished by now: the route must have cleared its chunks
        staged = staging_objects(world) - staged_before
        if staged:
            left = f"{len(staged)} staged chunk object(s): {sorted(staged)[:3]}"
            result.violations.append(f"the Next.js route left {left}")
    result.outcome = outcome_of(result)
    return result
