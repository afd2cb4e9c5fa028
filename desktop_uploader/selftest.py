"""``desktop-uploader --self-test``: does this installation work? Upload a file the way the window does.

The smoke test of an installed package: it runs the desktop app's own code path offscreen (the
window, the session, the queue, the engine), uploads a freshly generated file, and checks what
arrived. With no server configured it starts a private sandbox and reads the object back to
compare sha256. With a configured server, whose storage it cannot read, it compares storage's
multipart ETag with one computed from the file's parts: MD5-based, and said so in the output. A
server that reports no ETag (the seed's backend) leaves nothing to compare: the verdict says so
rather than calling a stored upload a failure.

Everything runs in a private temporary home: the person's settings, queue and sandbox are untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_uploader import __version__
from desktop_uploader.engine.credentials import token_key
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.limits import MiB, human_bytes
from desktop_uploader.engine.settings import Settings, load_settings, save_settings
from desktop_uploader.paths import AppPaths

SIZE = 12 * MiB + 12345  # three parts: the parallel path, not just a single request
PART = 5 * MiB


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def multipart_etag_of(path: Path, part_size: int) -> str:
    digests = []
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(part_size), b""):
            digests.append(hashlib.md5(block).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _sample(folder: Path) -> tuple[Path, str]:
    path = folder / "self-test.safetensors"
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        remaining = SIZE
        while remaining:
            chunk = os.urandom(min(remaining, MiB))
            handle.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    return path, digest.hexdigest()


def run_self_test(real: AppPaths, timeout: float = 180.0) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="desktop-uploader-self-test-"))
    print(f"Desktop Uploader {__version__} self-test")
    try:
        outcome = _run(real, home, timeout)
    except Exception as exc:  # the point of a smoke test is a verdict, not a traceback
        outcome = Outcome(False, f"the self-test itself failed: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(("PASSED: " if outcome.ok else "FAILED: ") + shown(outcome.message), flush=True)
    print(f"  details: {real.log_dir / 'self-test.log'}")
    return 0 if outcome.ok else 1


def _run(real: AppPaths, home: Path, timeout: float) -> Outcome:
    import qasync

    from desktop_uploader.engine.events import Status
    from desktop_uploader.gui.app import application, build, start
    from desktop_uploader.gui.session import Link
    from desktop_uploader.logsetup import configure_logging

    paths = AppPaths(home / "config", home / "data", home / "logs", home / "cache").ensure()
    configure_logging(real.log_dir / "self-test.log")  # kept after the private home is gone
    problem = _borrow_server(real, paths)
    if problem is not None:
        return problem
    sample, sha256 = _sample(home)
    app = application([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def scenario() -> Outcome:
        desktop = build(paths)
        desktop.window.show()
        session = desktop.session
        try:
            await start(desktop)
            if session.link != Link.CONNECTED:
                return Outcome(False, f"could not connect: {session.link_detail or session.link_label}")
            began = time.monotonic()
            await session.add_paths([str(sample)])
            deadline = began + timeout
            while True:
                rows = session.model.rows()
                if rows and rows[0].status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
                    break
                if time.monotonic() > deadline:
                    return Outcome(False, f"the upload did not finish within {timeout:.0f} s")
                await asyncio.sleep(0.1)
            row = rows[0]
            if row.status != Status.COMPLETED or row.result is None:
                return Outcome(False, f"the upload {row.status.value}: {row.message}")
            result = row.result
            print(f"  uploaded {human_bytes(SIZE)} via {result.method} in {time.monotonic() - began:.1f} s")
            print(f"  stored as {shown(result.network_volume_path or result.s3_key)}")
            if session.sandbox is None:  # a real server: no call of the contract deletes a stored file
                print("  (the test file stays there: delete it when you like)")
            return _verify(session, result, sample, sha256)
        finally:
            await session.shutdown()

    try:
        outcome: Outcome = loop.run_until_complete(scenario())
        return outcome
    finally:
        loop.close()


def _borrow_server(real: AppPaths, paths: AppPaths) -> Outcome | None:
    """The person's configured server and token, copied into the private home; or the sandbox.

    The server is the one the window would use, the environment's included: one set only there was used
    while this said "none configured, so a private local sandbox" (a first-time user's audit).
    """
    from desktop_uploader.connection import configured_server, credential_store

    configured, _ = load_settings(real.settings_file)
    server = configured_server(configured)  # $DESKTOP_UPLOADER_SERVER too, as the window would use it
    settings = Settings(
        server_url=server, use_sandbox=not server, chunk_size=PART, concurrency=3, notifications=False, keep_awake=False
    )
    save_settings(paths.settings_file, settings)
    if not server:
        print("  server: none configured, so a private local sandbox (SeaweedFS + the upload API)")
        return None
    token = credential_store(real).get(token_key(server)) or os.environ.get("DESKTOP_UPLOADER_TOKEN")
    if not token:
        return Outcome(False, f"a server is configured ({server}) but no access token is saved for it")
    credential_store(paths).set(token_key(server), token)
    print(f"  server: {shown(server)}")
    return None


def _verify(session: object, result: object, sample: Path, sha256: str) -> Outcome:
    sandbox = getattr(session, "sandbox", None)
    key = getattr(result, "s3_key", "")
    if sandbox is not None:
        import boto3
        from botocore.config import Config

        info = sandbox.info
        s3 = boto3.client(
            "s3",
            endpoint_url=info.s3_endpoint,
            aws_access_key_id=info.access_key,
            aws_secret_access_key=info.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        body = s3.get_object(Bucket=info.bucket, Key=key)["Body"].read()
        got = hashlib.sha256(body).hexdigest()
        if got != sha256:
            return Outcome(False, f"the stored object's sha256 ({got[:16]}…) differs from the file's ({sha256[:16]}…)")
        return Outcome(True, f"the stored object is byte-identical to the file (sha256 {sha256[:16]}…)")
    etag = getattr(result, "etag", "").strip('"')
    if not etag:
        # The seed's backend answers `complete` without the stored object's ETag: nothing to compare
        # with, which is no sign of damage, and no proof of its absence either. Say exactly that.
        return Outcome(
            True,
            "stored; this server doesn't report the stored object's checksum, so the bytes couldn't be "
            "compared end to end (a server that answers `etag` on complete, or the sandbox, allows that)",
        )
    expected = multipart_etag_of(sample, PART)
    if etag != expected:
        return Outcome(False, f"storage's ETag {etag} differs from the file's multipart MD5 {expected}")
    return Outcome(
        True,
        f"storage's multipart ETag matches the file's parts (MD5 {expected}); "
        "sha256 can only be checked with the sandbox",
    )
