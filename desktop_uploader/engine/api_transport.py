"""One request to the upload API, with retries for transient failures, and the server's capabilities.

Errors are mapped by type at this boundary (engine/http.py): a ``requests`` exception or an error
status becomes an :class:`UploaderError` that knows whether a retry can help.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from desktop_uploader.engine.api_answers import error_for_api_response, error_for_redirect, json_object
from desktop_uploader.engine.api_capabilities import Capabilities, parse_capabilities, seed_capabilities
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import NotFoundError, Origin, RejectedError, TransientError, UploaderError
from desktop_uploader.engine.http import PacedBody, Sessions, error_for_exception, host_of
from desktop_uploader.engine.retry import RetryPolicy, RetryRun
from desktop_uploader.engine.settings import Settings

log = logging.getLogger(__name__)


def bare_token(token: str) -> str:
    """The token without a "Bearer " that was pasted with it (copied from a request's header, as a Next.js
    audit did), which the header would otherwise carry twice and the server refuse as a wrong token."""
    token = token.strip()
    return token[7:].strip() if token[:7].lower() == "bearer " else token


class ApiTransport:
    def __init__(
        self,
        base_url: str,
        token: str,
        settings: Settings,
        *,
        sessions: Sessions | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = bare_token(token)
        self.settings = settings
        self.sessions = sessions or Sessions()
        self.policy = policy or RetryPolicy(settings.retries, settings.backoff_base, settings.backoff_cap)
        self.clock = clock
        self._capabilities: Capabilities | None = None

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _call(
        self,
        action: str,
        method: str,
        path: str,
        *,
        control: Control | None = None,
        timeout: float | None = None,
        parse: Callable[[requests.Response], Any] | None = None,
        on_retry: Callable[[int, UploaderError, float], None] | None = None,
        announce: bool = True,
        accept: frozenset[int] = frozenset(),
        headers_extra: dict[str, str] | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """One API request with retries for transient failures; returns ``parse(response)`` (JSON by default).

        Statuses in ``accept`` go to ``parse`` instead of becoming errors, for answers whose body matters.
        ``attempts``, when given, replaces the settings' number of tries (with their backoff) for this call.
        With ``control`` (the upload's), each retry draws on the upload's quota and, if ``announce``, is
        told to its listener (which makes it a Retrying event with its delay).
        """
        read_timeout = timeout or self.settings.read_timeout
        run = self._retry_run(action, control, on_retry, announce=announce, attempts=attempts)
        while True:
            run.next_attempt()
            if control is not None:
                control.check()
            try:
                body = kwargs.get("data")
                paced = {"data": PacedBody(body)} if isinstance(body, bytes) else {}
                try:
                    response = self.sessions.get().request(
                        method,
                        self._url(path),
                        headers={**self._headers(), **(headers_extra or {})},
                        timeout=(self.settings.connect_timeout, read_timeout),
                        allow_redirects=False,  # said, not followed: see error_for_redirect
                        **{**kwargs, **paced},
                    )
                except requests.RequestException as exc:
                    url = self._url(path)
                    raise error_for_exception(exc, url, read_timeout).at(Origin("api", host_of(url), action)) from exc
                if 300 <= response.status_code < 400:
                    raise error_for_redirect(response, path, action)
                if response.status_code >= 400 and response.status_code not in accept:
                    raise error_for_api_response(response, action, path)
                answer = parse(response) if parse else json_object(response, action)
                run.succeeded()
                return answer
            except TransientError as exc:
                run.backoff(exc)

    def _retry_run(
        self,
        action: str,
        control: Control | None,
        on_retry: Callable[[int, UploaderError, float], None] | None,
        *,
        announce: bool,
        attempts: int | None = None,
    ) -> RetryRun:
        """The retries of one call: on the upload's quota (shared with its parts) when there is a control.

        Each retry is logged, told to ``on_retry``, and, if ``announce``, to the control's listener;
        the waits are the control's, so a pause cuts them short.
        """

        policy = self.policy if attempts is None else dataclasses.replace(self.policy, attempts=attempts)

        def say(attempt: int, exc: UploaderError, delay: float) -> None:
            # Out of this call's own tries: a completion's ten were logged as "attempt 9/5" (an audit).
            log.warning(
                "API %s failed (attempt %d/%d), retrying in %.1f s: %s",
                action,
                attempt,
                policy.attempts,
                delay,
                exc.message,
            )
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if announce and control is not None and control.on_retry is not None:
                control.on_retry(action, attempt, policy.attempts, exc, delay)

        if control is None:
            return RetryRun(policy, announce=say)
        return RetryRun(policy, control.quota, announce=say, sleep=control.sleep)

    def close(self) -> None:
        self.sessions.close()

    def _expiry_wish(self) -> dict[str, int]:
        """The settings' URL lifetime, for servers that say what they do (the seed's may not expect it)."""
        caps = self._capabilities
        return {"expiresIn": self.settings.url_expiry_seconds} if caps is not None and caps.advertised else {}

    def capabilities(self, *, refresh: bool = False, control: Control | None = None) -> Capabilities:
        if self._capabilities is not None and not refresh:
            return self._capabilities
        try:
            body = self._call("capabilities", "GET", self.settings.presigned_path, control=control)
        except NotFoundError:  # the seed's backend has no GET handler (404 or 405)
            self._capabilities = seed_capabilities(self.settings)
            return self._capabilities
        except RejectedError as exc:
            if exc.status not in (404, 405):
                raise
            self._capabilities = seed_capabilities(self.settings)
            return self._capabilities
        self._capabilities = parse_capabilities(body)
        return self._capabilities
