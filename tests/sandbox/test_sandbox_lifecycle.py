"""The sandbox starts fast, answers, keeps its identity, and leaves no process behind however it ends."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import requests

from desktop_uploader.connection import Link, start_sandbox
from desktop_uploader.engine.limits import MiB
from desktop_uploader.paths import HOME_ENV, resolve_paths
from desktop_uploader.sandbox import seaweed
from desktop_uploader.sandbox.info import SandboxInfo
from desktop_uploader.sandbox.runtime import Sandbox
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.storage import Storage
from tests.support.api import Api
from tests.support.permissions import without_the_power_to_ignore_permissions
from tests.support.proxy import Proxy, Respond
from tests.support.safetensors_files import write_safetensors
from tests.support.sandbox_process import SandboxProcess, stop_process
from tests.support.storage import s3_client
from tests.support.waiting import deadline_after


def processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in process.info["cmdline"] or []):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_until_gone(text: str, timeout: float = 15.0) -> list[psutil.Process]:
    deadline = deadline_after(timeout)
    while time.monotonic() < deadline:
        left = [p for p in processes_mentioning(text) if p.status() != psutil.STATUS_ZOMBIE]
        if not left:
            return []
        time.sleep(0.1)
    return left


def test_sandbox_is_ready_and_stops_without_leftovers(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    sandbox = SandboxProcess.start(tmp_path / "home", data_dir)
    try:
        children = psutil.Process(sandbox.process.pid).children(recursive=True)
        assert any("weed" in " ".join(c.cmdline()) for c in children)
        assert Api(sandbox.info.api_url, sandbox.info.token).capabilities().status_code == 200
        assert s3_client(sandbox.info).head_bucket(Bucket=sandbox.info.bucket)
        assert (data_dir / "sandbox.json").exists()
    finally:
        code = sandbox.stop()
    assert code == 0
    assert not wait_until_gone(str(data_dir), timeout=5)
    assert not any(psutil.pid_exists(c.pid) and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert not (data_dir / "sandbox.json").exists()


def test_it_stops_when_its_storage_server_dies_so_the_app_can_start_a_new_one(tmp_path: Path) -> None:
    """A network audit killed weed mid-upload: the API answered 503 to every Retry, weed stayed a zombie,
    and only quitting the app helped. The sandbox now stops with it; the app starts a new one on Retry."""
    data_dir = tmp_path / "store"
    sandbox = SandboxProcess.start(tmp_path / "home", data_dir)
    try:
        [weed] = [c for c in psutil.Process(sandbox.process.pid).children() if "weed" in " ".join(c.cmdline())]
        weed.kill()
        code = sandbox.process.wait(30)  # a bound on a hang only: it notices within a second
    finally:
        sandbox.stop()
    assert code == 1
    said = sandbox.stderr_path.read_text(encoding="utf-8")
    assert "The sandbox's storage server stopped; the sandbox stops with it." in said and "Traceback" not in said
    assert not wait_until_gone(str(data_dir), timeout=5)
    assert not (data_dir / "sandbox.json").exists(), "no app takes the stopped sandbox for a running one"


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    sandbox = SandboxProcess.start(tmp_path / "home", data_dir)
    assert processes_mentioning(str(data_dir))
    sandbox.process.send_signal(signal.SIGTERM)
    assert sandbox.process.wait(15) == 0
    assert not wait_until_gone(str(data_dir), timeout=5)


def test_it_stops_when_its_parent_dies(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    parent_script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        env = dict(os.environ, DESKTOP_UPLOADER_HOME={str(tmp_path / "home")!r})
        child = subprocess.Popen([sys.executable, "-m", "desktop_uploader", "sandbox", "--json",
                                  "--data-dir", {str(data_dir)!r}], stdout=subprocess.PIPE, text=True, env=env)
        print(child.stdout.readline(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout and '"api_url"' in parent.stdout.readline()
        assert len(processes_mentioning(str(data_dir))) >= 2  # the sandbox and its weed
        parent.kill()
        parent.wait(5)
        assert not wait_until_gone(str(data_dir), timeout=15)
    finally:
        stop_process(parent)


def test_a_start_that_fails_half_way_leaves_nothing_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    (data_dir / "spool").write_text("a file where the API wants its spool folder")
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "sandbox", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "could not start" in result.stderr and "Traceback" not in result.stderr
    weed_log = tmp_path / "home" / "logs" / "weed.log"  # the app's log dir, not the store's folder or /tmp
    assert "weed" in weed_log.read_text(errors="replace").lower()  # weed did get started
    assert not wait_until_gone(str(data_dir), timeout=5)


def test_a_broken_weed_binary_gives_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home"), "DESKTOP_UPLOADER_WEED": str(fake)}
    result = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "sandbox", "--data-dir", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "SeaweedFS could not be started" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.timeout(120)
def test_identity_and_data_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    first = SandboxProcess.start(tmp_path / "home", data_dir)
    try:
        s3_client(first.info).put_object(Bucket=first.info.bucket, Key="kept/object.bin", Body=b"still here")
    finally:
        first.stop()
    second = SandboxProcess.start(tmp_path / "home", data_dir)
    try:
        assert (second.info.token, second.info.access_key) == (first.info.token, first.info.access_key)
        body = s3_client(second.info).get_object(Bucket=second.info.bucket, Key="kept/object.bin")["Body"].read()
        assert body == b"still here"
    finally:
        second.stop()


def test_a_compressed_storage_server_is_unpacked_once(tmp_path: Path) -> None:
    """Installers ship weed xz-compressed; the first sandbox start unpacks it, later ones reuse it."""
    import lzma

    from desktop_uploader.sandbox.seaweed import unpack

    packed = tmp_path / "weed.xz"
    packed.write_bytes(lzma.compress(b"#!/bin/sh\necho weed\n"))
    target = tmp_path / "cache" / "weed-1"
    assert unpack(packed, target) == target
    assert os.access(target, os.X_OK)
    assert subprocess.run([str(target)], capture_output=True, text=True).stdout == "weed\n"
    stamp = target.stat().st_mtime_ns
    assert unpack(packed, target) == target and target.stat().st_mtime_ns == stamp
    assert not list(target.parent.glob("*.partial"))


def test_an_upgrade_unpacks_its_own_storage_server_and_removes_the_old_one(tmp_path: Path) -> None:
    """The unpacked weed is keyed by the app's version; another version's copy (150 MB) is deleted."""
    import lzma

    from desktop_uploader import __version__
    from desktop_uploader.sandbox.seaweed import unpack_current

    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / "weed-0.0.9-1234"
    old.write_bytes(b"old weed")
    stale = cache / "weed-0.0.9-1234.77.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    busy = cache / f"weed-{__version__}-99.88.partial"  # another start unpacking right now
    busy.write_bytes(b"in progress")
    packed = tmp_path / "weed.xz"
    packed.write_bytes(lzma.compress(b"#!/bin/sh\necho new\n"))
    target = unpack_current(packed, cache, "weed")
    assert target.name == f"weed-{__version__}-{packed.stat().st_size}"
    assert sorted(p.name for p in cache.iterdir()) == sorted([target.name, busy.name])
    assert subprocess.run([str(target)], capture_output=True, text=True).stdout == "new\n"


@pytest.mark.timeout(600)
def test_it_starts_on_a_fresh_data_dir_every_time(tmp_path: Path) -> None:
    """The app's first run: weed used to create the bucket itself while the sandbox did, and lost 3 in 10."""
    for attempt in range(10):
        with Sandbox(tmp_path / f"fresh-{attempt}") as info:
            assert s3_client(info).head_bucket(Bucket=info.bucket)


def test_a_port_taken_between_choosing_and_binding_is_retried_on_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ports are free when chosen, but another process can take one before weed binds it (a busy machine's
    outgoing connections, another sandbox): weed exits, and the sandbox starts again on other ports. That is
    routine, so it is said at INFO: as a warning it failed a test that only started sandboxes in a row."""
    real = seaweed.free_ports
    chosen: list[list[int]] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        def first_choice_taken(count: int, host: str = "127.0.0.1") -> list[int]:
            ports = real(count, host)
            if not chosen:
                ports[0] = taken.getsockname()[1]
            chosen.append(ports)
            return ports

        monkeypatch.setattr(seaweed, "free_ports", first_choice_taken)
        with caplog.at_level(logging.INFO, logger=seaweed.__name__), Sandbox(tmp_path / "sandbox") as info:
            assert s3_client(info).head_bucket(Bucket=info.bucket)
    assert len(chosen) == 2, chosen
    assert "retrying on other ports" in caplog.text


def test_a_bucket_made_by_someone_else_meanwhile_is_fine(sandbox: SandboxInfo, tmp_path: Path) -> None:
    """HeadBucket says 404, then another creator wins: CreateBucket's "you already own it" is success."""
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(lambda request: Respond(404) if request.method == "HEAD" else None)
        config = ServerConfig(
            bucket=sandbox.bucket,
            s3_endpoint=proxy.url,
            s3_access_key=sandbox.access_key,
            s3_secret_key=sandbox.secret_key,
            tokens_file=tmp_path / "tokens.json",
            spool_dir=tmp_path / "spool",
        )
        Storage(config).ensure_bucket()
        creates = [r for r in proxy.stats.records("PUT") if r.status is not None]
    assert [r.status for r in creates] == [409]  # storage did answer BucketAlreadyOwnedByYou


def test_the_users_environment_does_not_change_how_the_sandbox_starts(tmp_path: Path) -> None:
    """Variables weed, boto3 or requests would read (a proxy, other storage, debug ports) change nothing."""
    hostile = {
        "S3": "https://storage.invalid",  # weed mini: another S3 to serve
        "S3_BUCKET": "someone-elses",  # weed mini: a bucket to create
        "DEBUG": "1",  # weed: pprof on port 6060
        "AWS_ACCESS_KEY_ID": "AKIAWRONG",
        "AWS_SECRET_ACCESS_KEY": "wrong",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",  # a closed port: anything sent through it fails
        "http_proxy": "http://127.0.0.1:9",
        # weed reads security.toml's settings from WEED_* too; these would open it to anyone with the key.
        "WEED_JWT_SIGNING_KEY": "known-to-everyone",
        "WEED_GRPC_CA": "/nonexistent/ca.pem",
        "WEED_HTTPS_MASTER_KEY": "",
    }
    sandbox = SandboxProcess.start(tmp_path / "home", tmp_path / "store", env=hostile)
    try:
        info = sandbox.info
        assert Api(info.api_url, info.token).capabilities().status_code == 200
        buckets = [b["Name"] for b in s3_client(info).list_buckets()["Buckets"]]
        assert buckets == [info.bucket]
        weed = next(c for c in psutil.Process(sandbox.process.pid).children(recursive=True) if "weed" in c.name())
        ports = {conn.laddr.port for conn in weed.net_connections(kind="tcp") if conn.status == psutil.CONN_LISTEN}
        assert 6060 not in ports, "weed serves its debug port"
        s3_port = int(info.s3_endpoint.rsplit(":", 1)[1])
        for port in ports - {s3_port}:  # the master would hand out a file id with a write token
            with contextlib.suppress(requests.ConnectionError):  # gRPC ports hang up on HTTP/1.1
                answer = requests.get(f"http://127.0.0.1:{port}/dir/assign", timeout=5)
                assert answer.status_code in {400, 401}, (port, answer.text)
    finally:
        assert sandbox.stop() == 0


def test_a_data_dir_that_is_a_file_is_said_in_words(tmp_path: Path) -> None:
    """The audit's ``--data-dir model.safetensors`` read "[Errno 17] File exists"."""
    not_a_folder = tmp_path / "model.safetensors"
    not_a_folder.write_bytes(b"weights")
    result = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "sandbox", "--data-dir", str(not_a_folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert result.returncode == 1
    said = f"{not_a_folder} is a file; the sandbox keeps its data in a folder."
    assert said in result.stderr
    assert "Errno" not in result.stderr and not_a_folder.read_bytes() == b"weights"
    for_a_script = subprocess.run(  # a script waiting for the JSON line is told, on stdout too
        [sys.executable, "-m", "desktop_uploader", "sandbox", "--json", "--data-dir", str(not_a_folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert for_a_script.returncode == 1 and said in json.loads(for_a_script.stdout)["error"]


def test_a_second_sandbox_on_a_running_ones_folder_names_it_and_leaves_it_running(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    """The audit's second window started a second store on the first one's data: "weed exited with code 255"."""
    result = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "sandbox", "--data-dir", sandbox.data_dir],
        capture_output=True,
        text=True,
        env={**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert said == (
        f"The sandbox could not start: one is already running on {sandbox.data_dir} "
        f"(its upload API is {sandbox.api_url}); stop it first."
    )
    assert requests.get(f"{sandbox.api_url}/healthz", timeout=5).ok


@pytest.mark.timeout(120)
def test_in_a_terminal_the_sandbox_says_where_it_is_but_keeps_its_credentials_to_json(tmp_path: Path) -> None:
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "desktop_uploader", "sandbox", "--data-dir", str(tmp_path / "store")]
    shown = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert shown.stdout is not None
        lines = [shown.stdout.readline() for _ in range(6)]
    finally:
        shown.send_signal(signal.SIGINT)
        shown.wait(60)
    said = "".join(lines)
    assert "Upload API  http://127.0.0.1:" in said and "--json prints these details with the credentials" in said
    assert "secret_key" not in said and "{" not in said
    again = SandboxProcess.start(tmp_path / "home", tmp_path / "store")  # --json: the same identity
    try:
        assert again.info.token not in said and again.info.secret_key not in said
    finally:
        again.stop()


@pytest.mark.allow_log(r"desktop_uploader\.connection: Sandbox start failed")
def test_a_sandbox_the_window_starts_that_fails_says_why_once(tmp_path: Path) -> None:
    """The window's status read "The local sandbox could not start: The local sandbox could not start. The
    sandbox could not start: …": three layers each said it."""
    home = tmp_path / "home"
    paths = resolve_paths({HOME_ENV: str(home)}).ensure()
    paths.sandbox_dir.write_text("a file where the sandbox keeps its data")
    outcome = start_sandbox(paths, None)
    assert outcome.link is Link.FAILED and outcome.sandbox is None
    reason = f"{paths.sandbox_dir} is a file; the sandbox keeps its data in a folder."
    said = f"The test storage on this computer could not start: {reason}"
    assert outcome.detail == said


def test_a_sandbox_that_cant_write_its_folder_says_why_in_words_on_one_line(tmp_path: Path) -> None:
    """A CLI audit, as another user: "… [Errno 13] Permission denied: '…/identity.json'\\nDetails are in …",
    with "could not start" twice and the line break printed as two characters."""
    home = tmp_path / "home"
    paths = resolve_paths({HOME_ENV: str(home)}).ensure()
    paths.sandbox_dir.mkdir(mode=0o700)
    os.chown(paths.sandbox_dir, 65534, 65534)  # someone else's: its owner alone may write there
    model = tmp_path / "m.safetensors"
    write_safetensors(model, 6 * MiB)
    result = subprocess.run(
        [*without_the_power_to_ignore_permissions(), sys.executable, "-m", "desktop_uploader", "upload", str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, HOME_ENV: str(home), "COLUMNS": "300"},
        timeout=120,
    )
    said = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stderr
    start = re.escape(str(paths.sandbox_dir))
    log = re.escape(str(paths.log_dir / "sandbox.log"))
    assert re.search(
        "The test storage on this computer could not start: "
        f"permission denied for {start}/\\S+\\. Details are in {log}$",
        said,
    )
    assert said.count("could not start") == 1 and "Errno" not in said and "\\n" not in said
