"""Where a seeded run uploads to (our API, the seed's, the Next.js route, or S3), and what other sessions may do.

A scenario picks a method and a kind of server; this module turns that into what the engine or the
CLI is given: a :class:`ServerConnection`, a :class:`DirectTarget`, or both. It also holds the checks
that involve a *different* session than the one that uploaded:

* the owed-abort ledger: a session connected to no server at all, or to another server (or S3
  bucket) than the one that holds an owed upload, must leave every owed abort in place, unless that
  other server lists the upload as its own: then it holds the same storage (engine/same_storage.py),
  and settling there must really remove the upload; otherwise only a session connected back to the
  owner settles it (the harness's final sweep);
* leftovers of starts whose answer was lost on a server without ``list`` (the seed's): the product
  promises to *report* them (a warning in the log), not to find them; the harness then aborts them
  as a bucket lifecycle rule would, so the next seed starts clean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from desktop_uploader.engine.manager import ServerConnection, UploadManager
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import OWED_ABORT, StateStore
from tests.support.storage import open_multipart_uploads

if TYPE_CHECKING:
    from tests.faults.harness import Checker, World
    from tests.faults.scenario import Scenario

USER_PREFIX = "loras/sandbox-user/"
UNLISTABLE = "can't list uploads"  # the engine's warning when a lost start's upload can't be looked for


def direct_target(world: World, bucket: str | None = None) -> DirectTarget:
    """The user's own keys on SeaweedFS's S3 port, through the storage proxy; objects land where the API puts them."""
    sandbox = world.sandbox
    return DirectTarget(
        world.storage_proxy.url,
        "us-east-1",
        bucket or sandbox.bucket,
        sandbox.access_key,
        sandbox.secret_key,
        USER_PREFIX.rstrip("/"),
    )


def api_url(world: World, sc: Scenario) -> str:
    return world.proxy_for(sc).url


def connection(world: World, sc: Scenario) -> ServerConnection | None:
    """The server this scenario's session is connected to (none for direct-s3, which needs no API)."""
    if sc.direct:
        return None
    url = api_url(world, sc)
    return ServerConnection(url, world.sandbox.token, url, f"faults ({sc.server})")


def settings(world: World, sc: Scenario) -> Settings:
    """The scenario's settings, with the direct target's endpoint, bucket and key (the secret goes apart)."""
    base = sc.settings()
    if not sc.direct:
        return base
    target = direct_target(world)
    return replace(
        base,
        direct_endpoint=target.endpoint,
        direct_bucket=target.bucket,
        direct_access_key=target.access_key,
        direct_prefix=target.prefix,
    )


def elsewhere(world: World, sc: Scenario) -> tuple[ServerConnection, DirectTarget]:
    """A session connected to other targets than the scenario's: the other API, and another bucket."""
    other = world.api_proxy.url if sc.server == "seed" else world.seed_api_proxy.url
    return ServerConnection(other, world.sandbox.token, other, "elsewhere"), direct_target(world, "elsewhere-bucket")


def other_sessions_leave_owed(check: Checker, database: Path) -> None:
    """Sessions with no server, and connected elsewhere, sweep the ledger: every owed abort must stay owed."""
    world, sc = check.world, check.scenario

    def owed() -> dict[str, str]:
        with contextlib.closing(StateStore.open(database)) as state:
            return {r.id: r.upload_id or "" for r in state.unfinished() if r.status == OWED_ABORT}

    before = owed()
    if not before:
        return
    other_connection, other_direct = elsewhere(world, sc)
    for label, conn, direct in (("no server", None, None), ("another server", other_connection, other_direct)):
        kept = owed()
        state = StateStore.open(database)
        manager = UploadManager(sc.settings(), state, conn, direct=direct)
        try:
            sweep = manager.sweep_owed_aborts()
        finally:
            manager.close(timeout=5)
            state.close()
        gone = {kept[i] for i in set(kept) - set(owed())}
        still_open = {u["UploadId"] for u in open_multipart_uploads(world.s3, world.sandbox.bucket)}
        if conn is None and (sweep.settled or sweep.still_owed or gone):
            check.fail(f"a session with {label} settled or dropped owed aborts it can't reach ({sweep})")
        elif gone & still_open:
            check.fail(f"a session with {label} dropped owed aborts whose uploads are still open ({sweep})")
        elif sweep.settled:
            check.result.notes.append(f"{sweep.settled} owed abort(s) paid through {label}, which lists them")
    check.result.notes.append(f"{len(before)} owed abort(s) checked with sessions with no server and another server")


def tolerate_lost_starts(check: Checker, unreferenced: dict[str, str], logs: Callable[[], str]) -> dict[str, str]:
    """Of the uploads no record references, those a seed-server session could only report; the rest are orphans.

    Only for the seed's server, which has no ``list``: an upload nobody references is what a start whose
    answer was lost created if no part was ever sent to it, there are at most as many as such starts,
    and the engine warned that it can't look for them. Against our full server there is no excuse.
    """
    if check.scenario.server != "seed" or not unreferenced or check.plan is None:
        return unreferenced
    touched = {r.query.get("uploadId") for r in check.world.storage_proxy.stats.records()}
    lost = {u: k for u, k in unreferenced.items() if u not in touched}
    if len(lost) > check.plan.lost_starts or UNLISTABLE not in logs():
        return unreferenced
    check.leftovers.update(lost)
    return {u: k for u, k in unreferenced.items() if u not in lost}


def clear_reported_leftovers(check: Checker) -> None:
    """Abort what a lost start left on the seed's server, as a lifecycle rule would, so the next seed starts clean."""
    for upload_id, key in check.leftovers.items():
        with contextlib.suppress(Exception):
            check.world.s3.abort_multipart_upload(Bucket=check.world.sandbox.bucket, Key=key, UploadId=upload_id)
    if check.leftovers:
        check.result.notes.append(
            f"{len(check.leftovers)} upload(s) left by lost starts on a server without list: reported, not found"
        )
