"""The sandbox's storage server answers other local processes only through S3.

Each check is what another program on the machine could try: plain HTTP to the master, filer,
volume and admin ports, plaintext HTTP/2 and TLS without the sandbox's certificate to the gRPC
ports (TCP and weed's Unix sockets), and a web page's cross-origin request to S3.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import ssl
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from desktop_uploader.sandbox import seaweed, weed_security
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.sandbox_process import SandboxProcess
from tests.support.storage import object_sha256, s3_client
from tests.support.waiting import wait_until

ACCESS_KEY, SECRET_KEY = "sandbox-ak", "sandbox-secret-1"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")  # + empty SETTINGS
GRPC_PORTS = ("master.port.grpc", "volume.port.grpc", "filer.port.grpc", "s3.port.grpc", "admin.port.grpc")
TLS_ONLY_HTTP = ("master.port", "filer.port", "admin.port")


@dataclass(frozen=True)
class Weed:
    """The session sandbox's weed, as another program on the machine finds it: ports and store."""

    ports: dict[str, int]
    files: Path  # the CA, certificate and key weed uses (the sandbox's data dir is its user's alone)
    s3_endpoint: str


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def weed(sandbox_process: SandboxProcess) -> Weed:
    """The sandbox runs in its own process (the real CLI), weed in a child of it; this test is a third."""
    children = psutil.Process(sandbox_process.process.pid).children(recursive=True)
    argv = next(c.cmdline() for c in children if "weed" in c.name())
    flags = dict(arg.lstrip("-").split("=", 1) for arg in argv if arg.startswith("-") and "=" in arg)
    ports = {name: int(flags[name]) for name in seaweed._PORT_NAMES}
    for name, port in ports.items():  # the admin server starts after S3 is ready
        wait_until(functools.partial(listening, port), 10, f"weed's {name} to listen")
    files = Path(flags["dir"]) / weed_security.FOLDER
    return Weed(ports, files, sandbox_process.info.s3_endpoint)


def http2_settings_frame(answer: bytes) -> bool:
    """True when ``answer`` opens with an HTTP/2 SETTINGS frame: a server that speaks plaintext gRPC."""
    return len(answer) >= 9 and answer[3] == 0x04


def plaintext_http2(connect: socket.socket) -> bytes:
    with connect as sock:
        sock.settimeout(5)
        sock.sendall(HTTP2_PREFACE)
        with contextlib.suppress(ConnectionError, TimeoutError):
            return sock.recv(64)
    return b""


def tls_http2(port: int, cert: tuple[Path, Path] | None) -> bytes:
    """Open TLS (ALPN h2) to ``port``, with or without a client certificate; what the server sends first."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's identity is not what is tested here
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as sock,
    ):
        sock.sendall(HTTP2_PREFACE)  # TLS 1.3: a missing client certificate is refused here or at the read
        return sock.recv(64)


def test_master_filer_volume_and_grpc_refuse_other_local_processes(weed: Weed, sandbox: SandboxInfo) -> None:
    ports = weed.ports

    # The master would hand out file ids with write tokens, volume locations and its topology.
    for path in ("/dir/assign", "/dir/lookup?volumeId=1", "/cluster/status", "/vol/status", "/", "/ui/index.html"):
        answer = requests.get(f"http://127.0.0.1:{ports['master.port']}{path}", timeout=5)
        assert answer.status_code == 400, (path, answer.text)  # "Client sent an HTTP request to an HTTPS server"
        assert "fid" not in answer.text and "Leader" not in answer.text, path
    assert requests.post(f"http://127.0.0.1:{ports['master.port']}/dir/assign", timeout=5).status_code == 400
    try:
        written = requests.post(f"http://127.0.0.1:{ports['filer.port']}/x.txt", files={"file": b"x"}, timeout=5)
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
        # Refused as well: the HTTPS server may answer 400 and hang up while the body is still on its way,
        # which surfaces either while sending (ConnectionError) or while reading the 400 (ChunkedEncodingError).
        pass
    else:
        assert written.status_code == 400, written.text
    for name in TLS_ONLY_HTTP:
        with pytest.raises(requests.exceptions.SSLError):  # HTTPS, trusting its CA, but without a client certificate
            requests.get(f"https://127.0.0.1:{ports[name]}/", verify=str(weed.files / "ca.pem"), timeout=5)
    # The volume server holds the bytes: without weed's own token it neither reads nor writes.
    volume = f"http://127.0.0.1:{ports['volume.port']}"
    assert requests.get(f"{volume}/1,01637037d6", timeout=5).status_code == 401
    assert requests.post(f"{volume}/1,01637037d6", files={"file": b"x"}, timeout=5).status_code == 401

    own_cert = (weed.files / "weed.pem", weed.files / "weed.key")
    for name in GRPC_PORTS:
        port = ports[name]
        assert not http2_settings_frame(plaintext_http2(socket.create_connection(("127.0.0.1", port)))), name
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_http2(port, cert=None)
        assert http2_settings_frame(tls_http2(port, cert=own_cert)), f"{name} is alive, for weed's own certificate"
    for kind in ("master", "volume", "filer", "s3", "admin"):  # weed's local shortcut to the same servers
        path = Path(f"/tmp/seaweedfs-{kind}-grpc-{ports[f'{kind}.port.grpc']}.sock")
        if os.name == "posix" and path.exists():
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.connect(str(path))
            assert not http2_settings_frame(plaintext_http2(unix)), path

    # S3 still works, multipart included, and the stored bytes can't be read around it.
    s3 = s3_client(sandbox)
    key = f"private-check/{uuid.uuid4().hex}/model.bin"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1024 * 1024 + 7)]
    upload = s3.create_multipart_upload(Bucket=sandbox.bucket, Key=key)["UploadId"]
    etags = [
        s3.upload_part(Bucket=sandbox.bucket, Key=key, UploadId=upload, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket=sandbox.bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    assert object_sha256(s3, sandbox.bucket, key) == hashlib.sha256(b"".join(parts)).hexdigest()
    direct = requests.get(f"http://127.0.0.1:{ports['filer.port']}/buckets/{sandbox.bucket}/{key}", timeout=5)
    assert direct.status_code == 400, "the stored file can't be read around S3"


def test_s3_answers_no_other_web_origin(weed: Weed, sandbox: SandboxInfo) -> None:
    """A web page open in a browser must not be allowed to read from, or send to, the sandbox's S3."""
    key = f"cors-check/{uuid.uuid4().hex}"
    s3_client(sandbox).put_object(Bucket=sandbox.bucket, Key=key, Body=b"secret")
    page = {"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"}
    for path in (f"/{sandbox.bucket}", f"/{sandbox.bucket}/{key}"):
        for method in ("GET", "PUT"):
            answer = requests.request(method, f"{weed.s3_endpoint}{path}", headers=page, timeout=5)
            assert "Access-Control-Allow-Origin" not in answer.headers, (method, path)
        with contextlib.suppress(requests.ConnectionError):  # weed may also just hang up on the preflight
            preflight = requests.options(f"{weed.s3_endpoint}{path}", headers=page, timeout=5)
            assert "Access-Control-Allow-Origin" not in preflight.headers, path
    for name in TLS_ONLY_HTTP:
        answer = requests.get(f"http://127.0.0.1:{weed.ports[name]}/", headers=page, timeout=5)
        assert "Access-Control-Allow-Origin" not in answer.headers, name


def test_a_restart_makes_new_keys_and_keeps_the_data(tmp_path: Path) -> None:
    """Certificates are made at each start: the last run's no longer opens anything, the data stays."""
    data = tmp_path / "data"
    first = seaweed.SeaweedServer.start(data, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    try:
        s3 = s3_client(SandboxInfo("", "", first.s3_endpoint, "", ACCESS_KEY, SECRET_KEY, ""))
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="k", Body=b"still here")
        assert first.security is not None
        old = (tmp_path / "old.pem", tmp_path / "old.key")
        old[0].write_bytes(first.security.cert.read_bytes())
        old[1].write_bytes(first.security.key.read_bytes())
    finally:
        first.stop()
    second = seaweed.SeaweedServer.start(data, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    try:
        s3 = s3_client(SandboxInfo("", "", second.s3_endpoint, "", ACCESS_KEY, SECRET_KEY, ""))
        assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"still here"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_http2(dict(zip(seaweed._PORT_NAMES, second.ports, strict=True))["master.port.grpc"], cert=old)
    finally:
        second.stop()
    folder = data / "weed" / ".seaweedfs"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("security.toml", "ca.pem", "weed.pem", "weed.key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    # The stored files and weed's log too: a 0700 folder hides them today, but a copied or moved store
    # keeps each file's own mode.
    shared = {str(p.relative_to(data)): oct(stat.S_IMODE(p.stat().st_mode)) for p in data.rglob("*")}
    # Except weed's volume descriptions (.vif: a volume's version and replication, no data), which it
    # writes 0644 whatever the umask.
    opened = {name: mode for name, mode in shared.items() if int(mode, 8) & 0o077 and not name.endswith(".vif")}
    assert opened == {}
