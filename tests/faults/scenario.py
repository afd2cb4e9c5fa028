"""Seeded fault scenarios: every random choice of a run comes from ``random.Random(seed)``.

A scenario says what file is uploaded (size, name), how (method, concurrency, retries, in-process
engine or the real CLI), which faults are injected where, and, for CLI runs, when the uploader is
killed with SIGKILL. The same seed always gives the same scenario; what the plan does with it is a
pure function of *which* request arrives (a part number and how many times that part was sent,
or an API action and how many times it was called), never of timing. Parallel parts still race
each other, so two runs of one seed may interleave differently, but they inject the same faults
into the same requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import AUTO_CONCURRENCY, Settings
from tests.support.proxy import (
    Action,
    Delay,
    Proxy,
    Replace,
    RequestInfo,
    ResetRequest,
    ResetResponse,
    Respond,
    SlowBody,
    Stall,
    Truncate,
)

PART = 5 * MiB
READ_TIMEOUT = 1.0  # the engine's minimum: stalls of 1.5 s are "longer than the read timeout"
PERSISTENT = 999  # a fault that repeats until the fault-free phase clears it

STORAGE_KINDS = (
    "reset mid-request",
    "reset mid-response",
    "http 500",
    "http 503",
    "http 429 + Retry-After",
    "stall > read timeout",
    "slow server",
    "403 Request has expired",
)
API_KINDS = (
    "reset mid-request",
    "reset mid-response",
    "http 500",
    "http 503",
    "http 429 + Retry-After",
    "stall > read timeout",
    "truncated response",
    "slow body",
    "API down",
    "HTML answer",
    "empty answer",
    "wrong JSON",
)
# Nonsense answers come in two flavours: from a box in front of a server that never saw the request
# (Respond), and in place of the answer of a server that did the work (Replace).
NONSENSE = ("HTML answer", "empty answer", "wrong JSON")

PRESIGNED_ACTIONS = ("capabilities", "presigned:start", "presigned:sign", "presigned:complete")
RARE_PRESIGNED_ACTIONS = ("presigned:abort", "presigned:status", "presigned:list")
CHUNKED_ACTIONS = ("chunked:start", "chunked:chunk", "chunked:chunk", "chunked:complete")
RARE_CHUNKED_ACTIONS = ("chunked:status", "chunked:abort")

KILL_POINTS = ("stored bytes", "delay", "at request, before it is sent", "at request, after it is sent")
KILL_ACTIONS = ("presigned:start", "presigned:sign", "presigned:complete", "chunked:chunk", "chunked:complete")

# direct-s3: boto3 signs every request with the user's keys (no presigned URL to expire), and besides the
# part PUTs it calls storage's own control plane, which the storage proxy breaks just like parts.
DIRECT = "direct-s3"
DIRECT_STORAGE_KINDS = tuple(k for k in STORAGE_KINDS if k != "403 Request has expired")
DIRECT_ACTIONS = ("s3:create", "s3:complete")  # every direct run makes these
RARE_DIRECT_ACTIONS = ("s3:abort", "s3:list-parts", "s3:head", "s3:list-uploads")  # resume, discard, lost answers
DIRECT_KILL_ACTIONS = ("s3:create", "s3:complete")

# The kinds of server: ours with every action ("full"), one that knows only the seed's start/complete/abort
# (no capabilities, sign, status, list, chunked or legacy: those answer 404), the Next.js drop-in route with
# the whole contract ("next": server-examples/nextjs under `next start`, chunked on, no legacy upload),
# or none at all (direct-s3).
SERVERS = ("full", "seed", "next")
# Of the runs that would meet our full server, this share meets the Next.js route instead. It is drawn from a
# generator of its own, so every other choice of a seed (and which seeds meet "seed" or no server) stays what
# it was before "next" existed. FAULTS_NEXT=0 turns it off (every such run meets "full" again).
NEXT_SHARE = 0.35
NEXT_ENV = "FAULTS_NEXT"
NEXT_LACKS = ("legacy:upload",)  # what the route answers 404 (capabilities say legacyUpload: null)
SEED_ACTIONS = ("start", "complete", "abort")
SEED_TARGETS = ("capabilities", *(f"presigned:{action}" for action in SEED_ACTIONS))  # what it is asked
# Faults on a start that reach the server and lose its answer: the server created an upload nobody knows.
ANSWER_LOST = ("reset mid-response", "truncated response", "slow body")


@dataclass(frozen=True)
class Fault:
    side: str  # "storage" or "api"
    kind: str
    target: str  # storage: "part N"; api: an action such as "presigned:start"
    first: int  # the first occurrence hit (1-based): the n-th PUT of that part, the n-th call of that action
    repeat: int  # how many occurrences in a row are hit
    fraction: float  # where in a body to cut, or how long to wait, as a share of the relevant range
    variant: str = ""  # for nonsense answers: "respond" (server never saw it) or "replace" (it did the work)

    def describe(self) -> str:
        times = "persistently" if self.repeat >= PERSISTENT else f"x{self.repeat}"
        extra = f" ({self.variant})" if self.variant else ""
        return f"{self.side}: {self.kind}{extra} on {self.target} #{self.first} {times}"


@dataclass(frozen=True)
class KillPoint:
    kind: str
    fraction: float = 0.0  # stored-bytes: share of the file; delay: seconds
    action: str = ""

    def describe(self) -> str:
        if self.kind == "stored bytes":
            return f"kill -9 once {self.fraction:.0%} is stored"
        if self.kind == "delay":
            return f"kill -9 after {self.fraction:.2f} s"
        return f"kill -9 {self.kind.removeprefix('at request, ')} {self.action}"


@dataclass(frozen=True)
class Scenario:
    seed: int
    size: int
    method: str
    concurrency: int
    retries: int
    cli: bool
    faults: tuple[Fault, ...]
    kill: KillPoint | None
    after_failure: str  # "resume" or "discard": what the user does after a clear error
    bandwidth: int  # bytes per second for CLI runs, so a kill lands mid-upload
    server: str = "full"  # "full", "seed", or "none" (direct-s3 talks to storage only)
    discard_offline: bool = False  # the discard happens while its target is unreachable: the abort is owed

    @property
    def direct(self) -> bool:
        return self.method == DIRECT

    @property
    def name(self) -> str:
        return f"fault-{self.seed}.safetensors"

    @property
    def parts(self) -> int:
        return max(1, -(-self.size // PART))

    def settings(self) -> Settings:
        return Settings(
            method=self.method,
            chunk_size=PART,
            concurrency=self.concurrency,
            retries=self.retries,
            backoff_base=0.05,
            backoff_cap=0.25,
            connect_timeout=1.0,
            read_timeout=READ_TIMEOUT,
            complete_timeout=10.0,
        )

    def describe(self) -> str:
        lines = [
            f"seed {self.seed}: {'CLI' if self.cli else 'engine'}, {self.size:,} bytes ({self.parts} parts), "
            f"method {self.method}, server {self.server}, concurrency {self.concurrency or 'auto'}, "
            f"retries {self.retries}, then {self.after_failure}"
            + (" while its target is unreachable" if self.discard_offline and self.after_failure == "discard" else "")
        ]
        lines += [f"  {fault.describe()}" for fault in self.faults]
        if self.kill:
            lines.append(f"  {self.kill.describe()}")
        return "\n".join(lines)


def _size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.04:
        return 0
    if roll < 0.10:
        return rng.randrange(1, MiB)
    if roll < 0.20:
        return rng.randrange(MiB, 6 * MiB + 1)  # fits the single request, so "auto" may end there
    if roll < 0.28:
        return rng.choice([2, 3, 4]) * PART  # parts exactly on the boundary
    return rng.randrange(6 * MiB, 24 * MiB + 1)


def _repeat(rng: random.Random, retries: int) -> int:
    return rng.choice([1, 1, 1, 2, 2, 3, retries, retries + 1, PERSISTENT])


def _storage_fault(rng: random.Random, parts: int, retries: int, direct: bool = False) -> Fault:
    target = f"part {rng.randint(1, parts)}"
    if direct and rng.random() < 0.4:
        target = rng.choice([*DIRECT_ACTIONS, *DIRECT_ACTIONS, *RARE_DIRECT_ACTIONS])
    return Fault(
        side="storage",
        kind=rng.choice(DIRECT_STORAGE_KINDS if direct else STORAGE_KINDS),
        target=target,
        first=rng.choice([1, 1, 1, 2]),
        repeat=_repeat(rng, retries),
        fraction=rng.random(),
    )


def _api_fault(rng: random.Random, method: str, retries: int) -> Fault:
    # Mostly what the method will surely call; sometimes what only a retry, a resume or a fallback calls.
    if method == "chunked" or (method == "auto" and rng.random() < 0.2):
        actions = [*CHUNKED_ACTIONS, *CHUNKED_ACTIONS, *RARE_CHUNKED_ACTIONS]
        if method == "auto":
            actions.append("legacy:upload")
    else:
        actions = [*PRESIGNED_ACTIONS, *PRESIGNED_ACTIONS, *RARE_PRESIGNED_ACTIONS]
    target = rng.choice(actions)
    kind = rng.choice(API_KINDS)
    if target in ("chunked:chunk", "presigned:sign"):
        first = rng.randint(1, 3)
    else:
        first = 1 if target == "capabilities" else rng.choice([1, 1, 1, 2])
    return Fault(
        side="api",
        kind=kind,
        target=target,
        first=first,
        repeat=1 if kind == "API down" else _repeat(rng, retries),
        fraction=rng.random(),
        variant=rng.choice(["respond", "replace"]) if kind in NONSENSE else "",
    )


def _sure_fault(rng: random.Random, method: str, parts: int, retries: int) -> Fault:
    """A fault on a request every run of this method makes: a part's first PUT, or a call it can't do without."""
    if method == DIRECT:
        fault = replace(_storage_fault(rng, parts, retries, direct=True), first=1)
        return fault if not fault.target.startswith("s3:") else replace(fault, target=rng.choice(DIRECT_ACTIONS))
    if method != "chunked" and rng.random() < 0.5:
        return replace(_storage_fault(rng, parts, retries), first=1)
    if method == "chunked":
        target = rng.choice(["chunked:start", "chunked:chunk", "chunked:complete"])
    else:
        target = rng.choice(["capabilities", "presigned:start", "presigned:sign", "presigned:complete"])
    first = rng.randint(1, max(1, min(parts, 3))) if target == "chunked:chunk" else 1
    return replace(_api_fault(rng, method, retries), target=target, first=first)


def _server(rng: random.Random, method: str) -> str:
    """The seed's server only offers presigned multipart: ``auto`` and ``presigned`` runs may meet it."""
    if method == DIRECT:
        return "none"
    if method in ("auto", "presigned") and rng.random() < 0.35:
        return "seed"
    return "full"


def _next_instead(seed: int) -> bool:
    """Whether a run that would meet our full server meets the Next.js route: a draw of its own, see NEXT_SHARE."""
    if os.environ.get(NEXT_ENV, "1") == "0":
        return False
    return random.Random(f"next-route:{seed}").random() < NEXT_SHARE


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    size = _size(rng)
    method = rng.choice(["auto", "auto", "auto", "presigned", "presigned", "chunked", DIRECT, DIRECT])
    server = _server(rng, method)
    if server == "full" and _next_instead(seed):
        server = "next"
    retries = rng.choice([2, 3, 4])
    cli = rng.random() < 0.22
    parts = max(1, -(-size // PART))
    # An in-process run always gets one fault on a request that surely happens, so no seed is wasted;
    # then up to two more anywhere (some only bite after another fault made a retry, resume or fallback).
    faults = [] if cli else [_sure_fault(rng, method, parts, retries)]
    for _ in range(rng.choice([0, 1, 1, 2]) if not cli else rng.choice([0, 0, 1, 1, 2])):
        if method == DIRECT or (method != "chunked" and rng.random() < 0.5):
            faults.append(_storage_fault(rng, parts, retries, direct=method == DIRECT))
        else:
            faults.append(_api_fault(rng, method, retries))
    if server == "seed":  # no faults on actions the seed's server doesn't have (it answers them 404)
        faults = [f for f in faults if f.side == "storage" or f.target in SEED_TARGETS]
        if not faults and not cli:
            faults = [replace(_storage_fault(rng, parts, retries), first=1)]
    if server == "next":  # the route has no legacy upload: a fault there would never fire
        faults = [f for f in faults if f.target not in NEXT_LACKS]
    kill = None
    if cli:
        kind = rng.choice(KILL_POINTS)
        if kind == "stored bytes":
            kill = KillPoint(kind, fraction=rng.uniform(0.05, 0.95))
        elif kind == "delay":
            kill = KillPoint(kind, fraction=rng.uniform(0.3, 3.0))
        else:
            wanted = [a for a in KILL_ACTIONS if method == "auto" or a.startswith(method)]
            if server == "seed":
                wanted = [a for a in wanted if a in SEED_TARGETS]
            kill = KillPoint(kind, action=rng.choice(list(DIRECT_KILL_ACTIONS) if method == DIRECT else wanted))
    return Scenario(
        seed=seed,
        size=size,
        method=method,
        concurrency=rng.choice([AUTO_CONCURRENCY, AUTO_CONCURRENCY, 1, 2, 3, 4]),  # Auto is the default
        retries=retries,
        cli=cli,
        faults=tuple(faults),
        kill=kill,
        after_failure=rng.choice(["resume", "resume", "discard"]),
        bandwidth=rng.choice([12, 16, 24]) * MiB,
        server=server,
        discard_offline=rng.random() < 0.5,
    )


# ------------------------------------------------------------------------------------------------------------
# Turning a scenario into the proxies' fault plans


S3_ERRORS = {
    "http 500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "http 503": (503, "SlowDown", "Please reduce your request rate."),
    "http 429 + Retry-After": (429, "TooManyRequests", "Too many requests."),
    "403 Request has expired": (403, "AccessDenied", "Request has expired"),
}
API_ERRORS = {
    "http 500": (500, "The server hit an internal error; please try again."),
    "http 503": (503, "Storage is busy; try again shortly."),
    "http 429 + Retry-After": (429, "Too many requests; slow down."),
}
HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
WRONG_JSON = (
    b"[]",
    b"null",
    b'{"unexpected": true}',
    b'{"uploadId": 7, "s3Key": null, "presignedUrls": "none", "success": "yes", "received": "all", "parts": {}}',
    b'{"success": false, "error": "nope"}',
)


def api_action(info: RequestInfo) -> str:
    """What an API request is, from its method, path and (peeked) JSON body."""
    if info.method == "GET":
        return "capabilities"
    family = info.path.rstrip("/").rsplit("/", 1)[-1]
    if family == "upload":
        return "legacy:upload"
    family = "presigned" if family == "presigned-upload" else "chunked"
    if family == "chunked" and "offset" in info.query:
        return "chunked:chunk"
    try:
        body = json.loads(info.body or b"null")
    except ValueError:
        body = None
    action = body.get("action") if isinstance(body, dict) else None
    return f"{family}:{action if isinstance(action, str) else '?'}"


def _xml(code: str, message: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    )


@dataclass
class SeededPlan:
    """The fault plans of both proxies for one scenario, and a log of the faults that really fired."""

    scenario: Scenario
    api_proxy: Proxy
    kill: Callable[[], None] | None = None  # SIGKILLs the uploader (CLI runs)
    fired: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    killed_at: str = ""
    lost_starts: int = 0  # starts that reached the server and lost their answer (its upload is nobody's)
    _seen: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _enabled: bool = True

    def disable(self) -> None:
        with self._lock:
            self._enabled = False
        self.api_proxy.up()

    def _occurrence(self, key: str) -> int:
        with self._lock:
            self._seen[key] += 1
            return self._seen[key]

    def _fire(self, fault: Fault, occurrence: int) -> None:
        with self._lock:
            self.fired.append(f"{fault.describe()} (hit #{occurrence})")
            self.kinds[f"{fault.side}: {fault.kind}"] += 1

    def _matching(self, side: str, target: str, occurrence: int) -> Fault | None:
        with self._lock:
            if not self._enabled:
                return None
        for fault in self.scenario.faults:
            if fault.side == side and fault.target == target and fault.first <= occurrence < fault.first + fault.repeat:
                return fault
        return None

    def _lost_start(self) -> None:
        with self._lock:
            self.lost_starts += 1

    def _kill_at(self, action: str, occurrence: int) -> Action | None:
        """SIGKILL the CLI at the first ``action`` if that is the scenario's kill point."""
        kill = self.scenario.kill
        if (
            self.kill is None
            or kill is None
            or kill.action != action
            or occurrence != 1
            or self.killed_at
            or not self._enabled
        ):
            return None
        self.killed_at = f"{kill.kind}: {action}"
        self.kill()
        if kill.kind == "at request, before it is sent":
            return ResetRequest(0)
        return Delay(0.2)  # the server does the work; the client is gone by the time it answers

    # -- storage ------------------------------------------------------------------------------------------------

    def storage(self, info: RequestInfo) -> Action | None:
        target = storage_target(info)
        if not target:
            return None
        occurrence = self._occurrence(f"storage {target}")
        killed = self._kill_at(target, occurrence)
        if killed is not None:
            return killed
        fault = self._matching("storage", target, occurrence)
        if fault is None:
            return None
        self._fire(fault, occurrence)
        length = int(info.headers.get("content-length", "0") or 0)
        return storage_action(fault, length)

    # -- API ------------------------------------------------------------------------------------------------------

    def api(self, info: RequestInfo) -> Action | None:
        action = api_action(info)
        occurrence = self._occurrence(f"api {action}")
        killed = self._kill_at(action, occurrence)
        if killed is not None:
            if action == "presigned:start" and isinstance(killed, Delay):
                self._lost_start()
            return killed
        fault = self._matching("api", action, occurrence)
        if fault is None:
            return None
        self._fire(fault, occurrence)
        if action == "presigned:start" and (fault.kind in ANSWER_LOST or fault.variant == "replace"):
            self._lost_start()
        if fault.kind == "API down":
            seconds = 0.3 + 2.7 * fault.fraction
            threading.Thread(target=self.api_proxy.down, args=(seconds,), daemon=True).start()
            return Delay(0.1)  # down() drops this connection too, before it is forwarded
        return api_action_for(fault, len(info.body) or int(info.headers.get("content-length", "0") or 0))


def storage_target(info: RequestInfo) -> str:
    """What a storage request is: a part PUT (presigned or boto3), or one of direct-s3's control-plane calls."""
    query = info.query
    if info.method == "PUT" and "partNumber" in query:
        return f"part {query['partNumber']}"
    if info.method == "POST":
        return "s3:create" if "uploads" in query else ("s3:complete" if "uploadId" in query else "")
    if info.method == "DELETE" and "uploadId" in query:
        return "s3:abort"
    if info.method == "GET":
        return "s3:list-parts" if "uploadId" in query else ("s3:list-uploads" if "uploads" in query else "")
    return "s3:head" if info.method == "HEAD" else ""


def storage_action(fault: Fault, length: int) -> Action:
    kind = fault.kind
    if kind == "reset mid-request":
        return ResetRequest(int(fault.fraction * max(1, length)))
    if kind == "reset mid-response":
        return ResetResponse(int(fault.fraction * 300))
    if kind == "stall > read timeout":
        return Stall(READ_TIMEOUT + 0.5)
    if kind == "slow server":
        return Delay(0.2 + 0.6 * fault.fraction)
    status, code, message = S3_ERRORS[kind]
    headers = {"Content-Type": "application/xml"}
    if status == 429:
        headers["Retry-After"] = "1"
    return Respond(status, _xml(code, message), headers)


def api_action_for(fault: Fault, length: int) -> Action:
    kind = fault.kind
    if kind == "reset mid-request":
        return ResetRequest(int(fault.fraction * max(1, length)))
    if kind == "reset mid-response":
        return ResetResponse(int(fault.fraction * 400))
    if kind == "stall > read timeout":
        return Stall(READ_TIMEOUT + 0.5)
    if kind == "truncated response":
        return Truncate(int(fault.fraction * 40))
    if kind == "slow body":
        return SlowBody(4000 + int(fault.fraction * 16000))
    if kind in API_ERRORS:
        status, message = API_ERRORS[kind]
        headers = {"Content-Type": "application/json"}
        if status == 429:
            headers["Retry-After"] = "1"
        return Respond(status, json.dumps({"error": message}).encode(), headers)
    if kind == "HTML answer":
        status, body, headers = (200 if fault.fraction < 0.5 else 502), HTML, {"Content-Type": "text/html"}
    elif kind == "empty answer":
        status, body, headers = 200, b"", {"Content-Type": "application/json"}
    else:
        status, body = 200, WRONG_JSON[int(fault.fraction * len(WRONG_JSON))]
        headers = {"Content-Type": "application/json"}
    if fault.variant == "replace":
        return Replace(status, body, headers)
    return Respond(status, body, headers)


def kill_process(pid: int) -> Callable[[], None]:
    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    return kill


def summary(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
