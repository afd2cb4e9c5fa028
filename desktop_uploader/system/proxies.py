"""Requests to this machine's loopback never go through a proxy.

A proxy configured in the environment (``HTTP_PROXY`` and friends, common on company laptops) is
used by requests, boto3 and urllib for every address not listed in ``NO_PROXY``. No proxy can reach
this machine's own loopback, where the sandbox and its storage live, so with such a variable set the
sandbox could not start and nothing could reach it. Adding loopback to ``NO_PROXY`` once, at start-up,
fixes every client the process makes, and leaves the proxy in use for every other address.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def never_proxy_loopback(environ: MutableMapping[str, str] = os.environ) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        listed = [host.strip() for host in environ.get(name, "").split(",") if host.strip()]
        missing = [host for host in LOOPBACK if host not in listed]
        if missing:
            environ[name] = ",".join([*listed, *missing])
