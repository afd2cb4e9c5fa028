"""The error a person reads names what went wrong, not the last fallback that wasn't there.

The server here is the one our users run: the seed's contract (start, complete, abort, no
capabilities document), behind a proxy that answers the chunked and single-request routes as Next.js
does when they don't exist (an HTML 404 page, and a 409 with ``x-nextjs-action-not-found: 1``).
Before, every failure of the presigned upload ended with "This server does not offer the chunked
upload." or "The server refused upload (HTTP 409).", and the real cause was lost.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import FallingBack, Notice, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.logfail import FAULTS, UNLISTABLE
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import open_multipart_uploads

SEED = {"actions": ("start", "complete", "abort"), "capabilities_enabled": False}
FAST = Settings(retries=2, backoff_base=0.05, backoff_cap=0.1)
NEXT_404 = b"<!DOCTYPE html><html><head><title>404: This page could not be found.</title></head></html>"
SIGNATURE = b"<Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match.</Message></Error>"


def nextjs_routes(request: RequestInfo) -> Any:
    """Next.js's answers on routes the app doesn't have; everything else goes on to our seed server."""
    if request.path.endswith("/chunked-upload"):
        return Respond(404, NEXT_404, {"Content-Type": "text/html; charset=utf-8"})
    if request.path.endswith("/influencers/upload"):
        return Respond(409, b"", {"x-nextjs-action-not-found": "1"})
    return None


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@dataclass
class SeedWorld:
    storage: Proxy
    api: Proxy


@pytest.fixture
def seed_world(sandbox: Any, tmp_path: Path) -> Iterator[Callable[..., SeedWorld]]:
    with contextlib.ExitStack() as stack:

        def make(storage_url: str | None = None) -> SeedWorld:
            storage = stack.enter_context(Proxy.start(sandbox.s3_endpoint))
            server = stack.enter_context(
                api_server(sandbox, tmp_path / "seed", s3_public_endpoint=storage_url or storage.url, **SEED)
            )
            api = stack.enter_context(Proxy.start(server, peek_bytes=4096))
            api.set_fault_plan(nextjs_routes)
            return SeedWorld(storage, api)

        yield make


def refuse_parts(world: SeedWorld) -> None:
    world.storage.set_fault_plan(
        lambda r: Respond(403, SIGNATURE, {"Content-Type": "application/xml"}) if "partNumber" in r.query else None
    )


def break_start(status: int, body: bytes, content_type: str) -> Callable[[SeedWorld], None]:
    def apply(world: SeedWorld) -> None:
        def plan(request: RequestInfo) -> Any:
            if request.method == "POST" and b'"start"' in request.body:
                return Respond(status, body, {"Content-Type": content_type})
            return nextjs_routes(request)

        world.api.set_fault_plan(plan)

    return apply


CASES = {
    "storage refuses every part": (refuse_parts, None, "Storage refused the upload (SignatureDoesNotMatch)"),
    "an HTML 502 page from start": (
        break_start(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        None,
        "busy or having trouble (HTTP 502, while starting the upload)",
    ),
    "start answers without its fields": (break_start(200, b"{}", "application/json"), None, "start"),
    "upload links point at a closed port": (None, "closed", "refused the connection"),
}


# A start whose answer was unusable may have created an upload; the seed's server can't list them.
@pytest.mark.allow_log(*FAULTS, *UNLISTABLE)
@pytest.mark.parametrize("case", list(CASES))
def test_the_failure_shown_is_the_first_cause(
    case: str, seed_world: Callable[..., SeedWorld], make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    fault, storage, expected = CASES[case]
    world = seed_world(closed_port() if storage == "closed" else None)
    if fault is not None:
        fault(world)
    sample = make_file(5 * MiB, name="root-cause.safetensors")  # small enough for the single request too
    engine = make_engine(FAST, api_url=world.api.url)

    job = engine.upload(sample.path)

    assert job.status == Status.FAILED
    assert expected in job.message, job.message
    assert "does not offer" not in job.message and "HTTP 409" not in job.message, job.message
    assert [f.to_method for f in engine.of(job.id, FallingBack)], "the fallbacks were tried"
    assert not open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/root-cause")
    assert job.resumable is False, "Retry starts the chain again, not the fallback that isn't there"


@pytest.mark.allow_log(*FAULTS)
def test_a_server_gone_since_it_answered_is_said_once_and_no_fallback_is_tried(
    make_engine: Any, make_file: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A CLI audit's server, stopped mid-session, got "presigned-s3 failed (… refused the connection); trying
    chunked-s3": every other method goes through the same server, so a fallback can only fail the same way."""
    with api_server(sandbox, tmp_path / "api") as url:
        engine = make_engine(FAST, api_url=url)
        assert engine.upload(make_file(1 * MiB, name="first.safetensors").path).status == Status.COMPLETED
    job = engine.upload(make_file(5 * MiB, name="second.safetensors").path)  # the server is gone now
    assert job.status == Status.FAILED
    assert "refused the connection" in job.message, job.message
    assert engine.of(job.id, FallingBack) == []


@pytest.mark.allow_log(*FAULTS)
def test_a_start_refused_outright_warns_of_no_leftovers_on_a_server_without_list(
    seed_world: Callable[..., SeedWorld], make_engine: Any, make_file: Any
) -> None:
    """A wrong route path on our users' backend (start, complete and abort only) was answered "no 'start' here",
    and then warned that "a partial upload left by a start whose answer was lost can't be found": the answer
    was not lost, and a refused start leaves nothing."""
    world = seed_world()
    break_start(404, NEXT_404, "text/html; charset=utf-8")(world)
    engine = make_engine(FAST, api_url=world.api.url)

    job = engine.upload(make_file(5 * MiB, name="wrong-path.safetensors").path)

    assert job.status == Status.FAILED
    assert "api/user/influencers/presigned-upload takes uploads (HTTP 404)" in job.message, job.message
    said = [event.message for event in engine.events if isinstance(event, Notice)]
    assert not [message for message in said if "can't list uploads" in message], said
    assert engine.state.unfinished() == [], "nothing left to resume or to look for"


@pytest.mark.allow_log(*FAULTS, *UNLISTABLE)
def test_a_start_refused_after_a_retry_is_still_looked_after(
    seed_world: Callable[..., SeedWorld], make_engine: Any, make_file: Any
) -> None:
    """Its first try may have created an upload before its answer failed: that one is still warned about."""
    world = seed_world()
    starts: list[int] = []

    def plan(request: RequestInfo) -> Any:
        if request.method == "POST" and b'"start"' in request.body:
            starts.append(1)
            return Respond(502 if len(starts) == 1 else 404, b"<html>no</html>", {"Content-Type": "text/html"})
        return nextjs_routes(request)

    world.api.set_fault_plan(plan)
    engine = make_engine(FAST, api_url=world.api.url)
    job = engine.upload(make_file(5 * MiB, name="retried-start.safetensors").path)
    assert job.status == Status.FAILED and len(starts) >= 2
    said = [event.message for event in engine.events if isinstance(event, Notice)]
    assert [message for message in said if "can't list uploads" in message], said
