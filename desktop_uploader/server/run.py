"""Running the API: in the foreground for ``desktop-uploader serve``, or on a thread for the sandbox.

Both bind the listening socket first and hand it to uvicorn, so a free port chosen by the OS is the
port that serves: no window in which another process can take it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.guard import deadline_protocol

log = logging.getLogger(__name__)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on connections accepted from a
    # socket that says it is TCP. Without it, each answer's body on a kept-alive connection waited for the
    # client's delayed ACK of the headers: 40 ms per API call.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: FastAPI, *, access_log: bool) -> uvicorn.Config:
    # log_config=None: uvicorn's loggers propagate to ours, which redact and rotate.
    config: ServerConfig | None = getattr(app.state, "server_config", None)
    if config is None:  # an application of another kind (a test's): uvicorn's own protocol and limits
        return uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="off", timeout_keep_alive=30)
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=access_log,
        lifespan="off",
        http=deadline_protocol(config.header_timeout_seconds, getattr(app.state, "metrics", None)),
        timeout_keep_alive=config.keep_alive_seconds,
        h11_max_incomplete_event_size=config.max_header_bytes,
    )


def exposure_warning(host: str) -> str | None:
    """What to say when this plain-HTTP server listens beyond this computer (it never speaks TLS itself)."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    if loopback:
        return None
    return (
        f"Serving plain HTTP on {host}: access tokens and uploaded bytes travel in clear to this address. "
        "Put a TLS-terminating proxy or load balancer in front, and bind this server where only it can reach."
    )


def serve_forever(app: FastAPI, host: str, port: int, *, access_log: bool = True) -> None:
    warning = exposure_warning(host)
    if warning:
        log.warning("%s", warning)
    sock = bind(host, port)
    # uvicorn says nothing of where it listens when handed a socket: say it, with the port the OS
    # chose for --port 0, so an operator (or a test) can reach it.
    log.info("Serving the upload API on http://%s:%d", host, sock.getsockname()[1])
    uvicorn.Server(_uvicorn_config(app, access_log=access_log)).run(sockets=[sock])


@dataclass
class ServerThread:
    """A uvicorn server on a daemon thread; ``stop()`` is bounded and idempotent."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    @classmethod
    def start(cls, app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False) -> ServerThread:
        warning = exposure_warning(host)
        if warning:
            log.warning("%s", warning)
        sock = bind(host, port)
        server = uvicorn.Server(_uvicorn_config(app, access_log=access_log))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="upload-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the upload API did not start")
            time.sleep(0.01)
        bound_port = sock.getsockname()[1]
        return cls(server, thread, f"http://{host}:{bound_port}")

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)
