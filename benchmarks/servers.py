"""The servers a benchmark uploads to: the discard sink with the real upload API in front, or the sandbox.

Each is a child process stopped by pid when the benchmark ends (SIGINT, then SIGKILL after a
bound), and each can be started inside a network namespace by an argv prefix
(``ip netns exec NAME``) for the WAN runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import requests

from desktop_uploader.sandbox.info import SandboxInfo

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "bench-token-0123456789abcdef"  # the API's token for the sink; loopback and namespaces only
BUCKET = "bench"


def _read_line(stream: IO[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process and its descendants (the server side of a run)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Target:
    """What the contenders need to know about a server."""

    name: str
    api_url: str
    token: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    pids: list[int] = field(default_factory=list)

    def server_cpu(self) -> float:
        return sum(tree_cpu(pid) for pid in self.pids)

    def s3_client(self) -> Any:
        """boto3 straight at the store, for the benchmark's own housekeeping (never measured)."""
        import boto3  # the bench extra's; only the benchmarks that touch a store need it
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )


class SinkServers:
    """The discard sink plus ``desktop-uploader serve`` in front of it."""

    def __init__(self, work: Path, host: str = "127.0.0.1", prefix: list[str] | None = None) -> None:
        self.work = work
        self.host = host
        self.prefix = prefix or []
        self.sink: subprocess.Popen[str] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> Target:
        self.work.mkdir(parents=True, exist_ok=True)
        self.sink = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "benchmarks.sink", "--host", self.host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.work / "sink.log", "wb"),  # noqa: SIM115
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.sink.stdout is not None
        line = _read_line(self.sink.stdout, 20)
        if not line:
            raise RuntimeError(f"the sink did not start; see {self.work / 'sink.log'}")
        endpoint = json.loads(line)["endpoint"]
        tokens = self.work / "tokens.json"
        tokens.write_text(json.dumps({TOKEN: "bench"}), encoding="utf-8")
        port = free_port(self.host) if not self.prefix else 18000
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DESKTOP_UPLOADER_HOME": str(self.work / "api-home"),
        }
        argv = [
            *self.prefix,
            str(VENV_BIN / "desktop-uploader"),
            "serve",
            "--host",
            self.host,
            "--port",
            str(port),
            "--bucket",
            BUCKET,
            "--s3-endpoint",
            endpoint,
            "--tokens-file",
            str(tokens),
            "--spool-dir",
            str(self.work / "spool"),
            "--max-file-size",
            str(200 << 30),
        ]
        self.api = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=open(self.work / "api.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        api_url = f"http://{self.host}:{port}"
        if not self.prefix:
            _wait_http(api_url + "/api/user/influencers/presigned-upload", self.api, self.work / "api.log")
        return Target("sink", api_url, TOKEN, endpoint, BUCKET, "bench", "bench-secret", [self.sink.pid, self.api.pid])

    def _command(self, command: str) -> dict[str, Any]:
        assert self.sink is not None and self.sink.stdin is not None and self.sink.stdout is not None
        with self._lock:
            self.sink.stdin.write(command + "\n")
            self.sink.stdin.flush()
            line = _read_line(self.sink.stdout, 10)
        result: dict[str, Any] = json.loads(line) if line else {}
        return result

    def stats(self) -> dict[str, Any]:
        return self._command("stats")

    def reset(self) -> None:
        self._command("reset")

    def timing(self, started: float, ended: float) -> dict[str, Any]:
        """What the sink saw of one run that began at ``started`` and ended at ``ended`` (time.monotonic()).

        The sink's clock is this machine's monotonic one too: what a run spends before its first payload
        byte arrives (start-up, imports, API round trips) and after its last (completion, exit).
        """
        stats = self.stats()
        first, last = stats.get("first_byte"), stats.get("last_byte")
        timing: dict[str, Any] = {"payload_bytes": stats.get("payload_bytes", 0)}
        if first is not None and last is not None and last > first:
            timing["data_mbps"] = round(stats["payload_bytes"] / (last - first) / 1e6, 1)
            timing["to_first_byte_s"] = round(first - started, 4)
            timing["after_last_byte_s"] = round(ended - last, 4)
        return timing

    def stop(self) -> None:
        if self.api is not None:
            stop_process(self.api)
        if self.sink is not None:
            with contextlib.suppress(OSError, ValueError):
                assert self.sink.stdin is not None
                self.sink.stdin.write("quit\n")
                self.sink.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sink.wait(3)
            stop_process(self.sink)


def _wait_http(url: str, process: subprocess.Popen[Any], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}")
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer within {timeout:.0f} s; see {log}")


class SeaweedSandbox:
    """``desktop-uploader sandbox --json``: SeaweedFS and the API, as a user's machine runs them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.process: subprocess.Popen[str] | None = None
        self.info: SandboxInfo | None = None

    def start(self) -> Target:
        self.work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(self.work / "home")}
        self.process = subprocess.Popen(
            [str(VENV_BIN / "desktop-uploader"), "sandbox", "--json", "--data-dir", str(self.work / "data")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(self.work / "sandbox.err", "wb"),  # noqa: SIM115
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, 60)
        if not line.strip():
            stop_process(self.process)
            raise RuntimeError(f"the sandbox did not start; see {self.work / 'sandbox.err'}")
        info = self.info = SandboxInfo.from_json(line)
        target = Target(
            "seaweedfs",
            info.api_url,
            info.token,
            info.s3_endpoint,
            info.bucket,
            info.access_key,
            info.secret_key,
            [self.process.pid],
        )
        # A fresh SeaweedFS grows the bucket's volumes on its first write, and the upload that makes it waits:
        # 0.5-0.6 s in one part of a 64 MiB upload, whoever runs first in a round (ours, in every round until
        # this). A user's store has been written to before, so one small object is written and deleted first.
        client = target.s3_client()
        client.put_object(Bucket=target.bucket, Key="bench/warm-up", Body=b"warm")
        client.delete_object(Bucket=target.bucket, Key="bench/warm-up")
        return target

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=20)
