"""The upload API's answers read: its errors, redirects and web pages become the engine's exceptions.

Each with a sentence a person can act on, which names the address they typed and what to change.
Storage's answers and transport failures are read in :mod:`http`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from desktop_uploader.engine.errors import (
    BUSY_OR_IN_TROUBLE,
    TELL_ITS_KEEPER,
    AuthError,
    ForbiddenError,
    MovedError,
    NotFoundError,
    NotOfferedError,
    Origin,
    ProtocolError,
    RejectedError,
    ServerBusyError,
    StorageFullError,
    UploaderError,
)
from desktop_uploader.engine.http import (
    NEXTJS_NO_ACTION,
    api_error_message,
    host_of,
    retry_after_seconds,
    storage_error_code,
)

STARTS = frozenset({"capabilities", "start", "chunked start", "upload"})
DOING = {  # what the app was asking the upload server for, in a person's words
    "capabilities": "asking what it offers",
    "start": "starting the upload",
    "sign": "getting upload links",
    "complete": "finishing the upload",
    "abort": "removing an unfinished upload",
    "status": "asking what it has stored",
    "list": "listing unfinished uploads",
    "chunked start": "starting the upload through it",
    "chunk": "sending a chunk through it",
    "chunked status": "asking what it has stored",
    "chunked complete": "finishing the upload",
    "chunked abort": "removing an unfinished upload",
    "upload": "sending the file through it",
}


def error_for_redirect(response: requests.Response, path: str, action: str) -> UploaderError:
    """A 3xx from the upload API, with the address to use instead: the one it redirects to, less the route.

    A Next.js audit's example.com → www.example.com redirect was followed without the token (requests
    drops it for another host) and read "did not accept your access token"."""
    target = urljoin(response.url, response.headers.get("Location", ""))
    given = _less(response.url, path)
    suggested = _less(target, path)
    if not response.headers.get("Location") or suggested == given:
        said = (
            f"The server address {given} answers with a redirect (HTTP {response.status_code}) that leads nowhere new."
        )
    else:
        said = f"The server address {given} redirects to {suggested}: use that address instead."
    return MovedError(said).at(Origin("api", host_of(response.url), action, response.status_code))


def _less(url: str, path: str) -> str:
    """``url`` without its query and without ``path`` at its end: the server address a person types."""
    bare = url.split("?", 1)[0].split("#", 1)[0]
    return bare[: -len(path)].rstrip("/") if path and bare.endswith(path) else bare.rstrip("/")


def error_for_api_response(response: requests.Response, action: str, path: str = "") -> UploaderError:
    """The error for an API answer of 400 or more; ``path`` is the route the app added to the address typed."""
    error = _api_error(response, action, path)
    return error.at(Origin("api", host_of(response.url), action, response.status_code))


def not_offered(action: str, status: int, url: str = "", path: str = "", how: str = "") -> NotOfferedError:
    """An action the server has no route for. Without 'start' nothing can be uploaded there at all, which
    almost always means the address is not the upload API's (a web page, a mistyped path): the address
    tried is named, with the two forms that work (a Next.js audit was told only "check the address").

    An address typed with a path of its own (a route's full address, mistyped) is named as typed, with
    what the app asked and the ending a route's address needs: a Next.js audit read its typo with the
    route's path pasted after it, and was told to give "the upload route's full address", as it had.
    """
    if action != "start":
        return NotOfferedError(f"The server does not offer '{action}' here ({how or f'HTTP {status}'}).")
    asked = url.split("?", 1)[0] or "this address"
    typed = _less(asked, path)
    check = "Check the server address: the site's own (like https://example.com), or the upload route's full address"
    if path and typed != asked and urlsplit(typed).path.strip("/"):
        return NotOfferedError(
            f"Nothing at {typed} takes uploads ({how or f'HTTP {status}'}; the app asked {asked}). "
            f"{check}, which ends in {path}."
        )
    return NotOfferedError(f"Nothing at {asked} takes uploads ({how or f'HTTP {status}'}). {check}.")


def _api_error(response: requests.Response, action: str, path: str) -> UploaderError:
    status = response.status_code
    reason = api_error_message(response)
    code = storage_error_code(response)[0] if 400 <= status < 500 and not reason else ""
    if code:  # S3's XML error, from what should be the upload API: a CLI audit gave the storage's address
        return NotOfferedError(
            f"{host_of(response.url)} answers as S3 storage ({code}), not as an upload server: check the server "
            "address (your own S3 storage is the direct upload's endpoint, not the server)."
        )
    if status == 401:
        return AuthError("The server did not accept your access token. Check it, or ask for a new one.")
    if status == 501:  # Not Implemented: a web server that is not an upload API (Python's http.server, say)
        return not_offered(action, status, response.url, path)
    if status == 507:  # Insufficient Storage: the store behind the API is full (our server and route say so)
        said = reason or "The server's storage is full: free some space there, then retry."
        # Refused at start (a file past the room on the sandbox's disk), nothing of it is stored to keep.
        return StorageFullError(said if action in STARTS else f"{said} What is already stored is kept.")
    if status in (408, 429) or status >= 500:
        # The server's own sentence says what went wrong behind it (its storage refused its keys, its
        # tokens file is missing); a Next.js audit saw only "busy or having trouble" for each of them.
        said = (
            f"The upload server reported a problem (while {DOING.get(action, action)}): {reason.rstrip('.')}. "
            f"If this goes on, {TELL_ITS_KEEPER} that server."
            if reason
            else f"The upload server is {BUSY_OR_IN_TROUBLE} (HTTP {status}, while {DOING.get(action, action)})."
        )
        return ServerBusyError(
            said,
            status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status == 403:
        return ForbiddenError(reason or f"The server refused {action} (HTTP 403).")
    # A start has no upload of its own to be missing: its 404 is the route's, whatever words come with it (our
    # server's "No such endpoint." reached a Next.js audit's mistyped route address as the whole sentence).
    if (status in (404, 405) and (not reason or action in STARTS)) or (
        status == 409 and response.headers.get(NEXTJS_NO_ACTION) == "1"
    ):
        return not_offered(action, status, response.url, path)
    if status == 404:
        return NotFoundError(reason)
    return RejectedError(reason or f"The server refused {action} (HTTP {status}).", status=status)


def json_object(response: requests.Response, action: str) -> dict[str, Any]:
    """The body of a successful API answer, or a ProtocolError if it is not a JSON object.

    A web page is not a passing fault of the server: the address is some site's, not the upload API's.
    A Next.js audit read "sent something that is not JSON to 'capabilities'; it may be misconfigured or
    overloaded" for it, after 13 s of retries.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if is_web_page(response):
            how = f"it answered with a web page, HTTP {response.status_code}"
            raise not_offered(action, response.status_code, response.url, how=how).at(
                Origin("api", host_of(response.url), action, response.status_code)
            )
        kind = "an empty answer" if not response.content else "something that is not JSON"
        raise ProtocolError(f"The upload server sent {kind} to '{action}'; it may be misconfigured or overloaded.")
    return body


def is_web_page(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
