"""The FastAPI application: routes, body caps, and the rule that every refusal is ``{"error": ...}``."""

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from desktop_uploader import __version__
from desktop_uploader.server.auth import TokenStore
from desktop_uploader.server.chunked import ChunkedService
from desktop_uploader.server.cleanup import Janitor
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.guard import ACTION_KEY, Guard
from desktop_uploader.server.legacy import LegacyService
from desktop_uploader.server.metrics import CONTENT_TYPE_LATEST as METRICS_CONTENT_TYPE
from desktop_uploader.server.metrics import Metrics
from desktop_uploader.server.models import (
    AbortRequest,
    ChunkedAbortRequest,
    ChunkedCompleteRequest,
    ChunkedRequest,
    ChunkedStartRequest,
    ChunkedStatusRequest,
    PresignedRequest,
)
from desktop_uploader.server.presigned import PresignedService
from desktop_uploader.server.storage import Storage

log = logging.getLogger(__name__)

PRESIGNED_PATH = "/api/user/influencers/presigned-upload"
CHUNKED_PATH = "/api/user/influencers/chunked-upload"
LEGACY_PATH = "/api/user/influencers/upload"
_FORM_OVERHEAD = 256 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the {limit:,} bytes this endpoint accepts.")


class BodyCap:
    """Refuses oversized bodies before they are buffered: by Content-Length, or while streaming."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse(
                {"error": f"The request body is larger than the {limit:,} bytes this endpoint accepts."},
                status_code=413,
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


# Strict models: a wrong JSON type is named as such ("must be an integer, not a string").
_JSON_TYPES = {
    "int_type": "an integer (a JSON number)",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
}
_JSON_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a fractional number"}
_JSON_NAMES.update({list: "a list", dict: "an object", type(None): "null"})


def _human_validation(errors: list[Any]) -> str:
    first = errors[0] if errors else {}
    kind = first.get("type", "")
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if kind == "union_tag_not_found":
        return "The body needs an 'action' field."
    if kind == "union_tag_invalid":
        ctx = first.get("ctx", {})
        return f"Unknown action {ctx.get('tag', '')!r}. Supported: {ctx.get('expected_tags', '')}."
    if kind == "model_attributes_type" or (kind.endswith("_type") and not loc):
        return "The request body must be a JSON object."
    field = ".".join(loc[1:] if len(loc) > 1 else loc) or "body"
    if kind == "missing":
        return f"Missing field '{field}'."
    if kind in _JSON_TYPES:
        given = _JSON_NAMES.get(type(first.get("input")), "something else")
        return f"Invalid '{field}': must be {_JSON_TYPES[kind]}, not {given}."
    return f"Invalid '{field}': {first.get('msg', 'not acceptable')}."


@dataclass(frozen=True)
class _BodySchema:
    body: dict[str, Any]
    defs: dict[str, Any]


def _schema_of(adapter: TypeAdapter[Any]) -> _BodySchema:
    schema = adapter.json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return _BodySchema(schema, defs)


def _parse(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, _human_validation(list(exc.errors()))) from exc


def create_app(config: ServerConfig) -> FastAPI:  # noqa: PLR0915 - the route table, read top to bottom
    storage = Storage(config)
    tokens = TokenStore.load(config.tokens_file)
    config.spool_dir.mkdir(parents=True, exist_ok=True)
    presigned = PresignedService(config, storage)
    chunked = ChunkedService(config, storage, presigned)
    legacy = LegacyService(config, storage, presigned)
    janitor = Janitor(storage, chunked, config.key_prefix, config.stale_upload_seconds)

    metrics = Metrics()
    app = FastAPI(title="Desktop Uploader API", version=__version__)
    app.state.server_config = config  # run.py takes the header deadline and h11 limits from here
    app.state.metrics = metrics
    app.state.janitor = janitor  # `serve` runs it on a schedule, `cleanup` once
    app.add_middleware(
        BodyCap,
        limits={
            PRESIGNED_PATH: config.max_json_body,
            CHUNKED_PATH: max(config.chunk_max_bytes, config.max_json_body),
            LEGACY_PATH: config.legacy_max_bytes + _FORM_OVERHEAD,
        },
    )

    def user_of(authorization: str | None) -> str | None:
        try:
            return tokens.user_for(authorization)
        except ApiError:
            return None  # counted in the total only; the route answers 401

    app.add_middleware(
        Guard,
        metrics=metrics,
        user_of=user_of,
        paths={PRESIGNED_PATH: "presigned", CHUNKED_PATH: "chunked", LEGACY_PATH: "legacy"},
        body_stall_seconds=config.body_stall_seconds,
        max_in_flight=config.max_in_flight,
        max_in_flight_per_user=config.max_in_flight_per_user,
        retry_after_seconds=config.retry_after_seconds,
    )
    bearer = HTTPBearer(auto_error=False, description="The upload token from the operator's tokens file.")

    def current_user(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> str:
        return tokens.user_for(request.headers.get("authorization"))

    User = Annotated[str, Depends(current_user)]  # noqa: N806 - a type alias, named like one

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _human_validation(list(exc.errors()))}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request refused."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such endpoint."
        if exc.status_code == 405:
            message = "That method is not allowed on this endpoint."
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _client_left(request: Request, _: ClientDisconnect) -> Response:
        # A client that hangs up mid-body (a cancelled or killed upload) is normal, not a server error.
        log.info("The client left during %s %s", request.method, request.url.path)
        return Response(status_code=400)  # nobody is there to read it

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("Unhandled error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": "The server hit an internal error; please try again."}, status_code=500)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    if config.capabilities_enabled:

        @app.get(PRESIGNED_PATH)
        def capabilities(request: Request, user: User) -> dict[str, Any]:
            request.scope[ACTION_KEY] = "capabilities"
            return presigned.capabilities()

    presigned_adapter: TypeAdapter[Any] = TypeAdapter(PresignedRequest)
    chunked_adapter: TypeAdapter[Any] = TypeAdapter(ChunkedRequest)
    presigned_schema = _schema_of(presigned_adapter)
    chunked_schema = _schema_of(chunked_adapter)

    # Bodies are parsed as JSON whatever the Content-Type says: scripts and the seed's fetch() calls
    # are not always careful about it, and a wrong header is no reason to refuse a good request.
    @app.post(
        PRESIGNED_PATH,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": presigned_schema.body}}}
        },
    )
    async def presigned_upload(request: Request, user: User) -> Any:
        body = _parse(presigned_adapter, await request.body())
        request.scope[ACTION_KEY] = body.action
        answer = await run_in_threadpool(presigned.handle, user, body)
        if isinstance(body, AbortRequest):  # a chunked upload aborted this way leaves nothing staged either
            await run_in_threadpool(chunked.forget, body.upload_id)
        return answer

    @app.post(
        CHUNKED_PATH,
        openapi_extra={
            "parameters": [
                {"name": "uploadId", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "s3Key", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": chunked_schema.body},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
        },
    )
    async def chunked_upload(request: Request, user: User) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/octet-stream":
            request.scope[ACTION_KEY] = "chunked-chunk"
            params = request.query_params
            offset_text = params.get("offset", "")
            # ASCII digits, and not too many: "²" is a digit to str.isdigit() but not to int().
            numeric = offset_text.isascii() and offset_text.isdigit() and len(offset_text) <= 19
            if not params.get("uploadId") or not params.get("s3Key") or not numeric:
                raise ApiError(400, "A chunk needs the query parameters uploadId, s3Key and a numeric offset.")
            # Streamed to disk as it arrives, never held whole (page-cache writes of at most a socket read).
            with chunked.incoming() as sink:
                length = 0
                async for piece in request.stream():
                    sink.write(piece)
                    length += len(piece)
                sink.seek(0)
                return await run_in_threadpool(
                    chunked.chunk, user, params["uploadId"], params["s3Key"], int(offset_text), sink, length
                )
        body = _parse(chunked_adapter, await request.body())
        request.scope[ACTION_KEY] = f"chunked-{body.action}"
        handlers: dict[type[Any], Callable[[str, Any], dict[str, Any]]] = {
            ChunkedStartRequest: chunked.start,
            ChunkedStatusRequest: chunked.status,
            ChunkedCompleteRequest: chunked.complete,
            ChunkedAbortRequest: chunked.abort,
        }
        return await run_in_threadpool(handlers[type(body)], user, body)

    @app.post(LEGACY_PATH)
    def legacy_upload(
        request: Request,
        user: User,
        file: Annotated[UploadFile, File(description="The model file, at most legacyUpload.maxBytes.")],
        displayName: Annotated[str | None, Form(max_length=1024)] = None,  # noqa: N803 - the seed's field name
    ) -> dict[str, Any]:
        request.scope[ACTION_KEY] = "legacy-upload"
        size = file.size if file.size is not None else len(file.file.read())
        return legacy.upload(user, file.filename or "", file.file, size, displayName, None)

    original_openapi = app.openapi

    def _openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            # The chunked body is declared by hand (two content types), so its models are merged in here.
            defs = schema.setdefault("components", {}).setdefault("schemas", {})
            defs.update(presigned_schema.defs)
            defs.update(chunked_schema.defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = _openapi  # type: ignore[method-assign]
    return app
