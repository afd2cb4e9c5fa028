"""Scrub secrets from text before it reaches a log file.

A presigned URL is a bearer credential until it expires, and people attach log files to support
requests. So every log line, on the client and on the server, goes through :func:`redact`:
query strings of URLs lose their values for signing parameters, and bearer tokens and AWS secret
material are masked. The filter is applied at the handler, so a forgotten call site can't leak.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

_SIGNING_PARAMS = re.compile(
    r"(?i)\b(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|"
    r"x-amz-signature|token|access_token|api_key|key)=([^&\s\"'<>]+)"
)
_BEARER = re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9._~+/=-]+")
_AUTH_HEADER = re.compile(r"(?i)(['\"]?authorization['\"]?\s*[:=]\s*['\"]?)(?!Bearer\b)[^\s'\",}]+")
_SECRET_FIELDS = re.compile(
    r"(?i)(['\"]?(?:secret_key|secretKey|aws_secret_access_key|token|password)['\"]?\s*[:=]\s*['\"]?)"
    r"([^\s'\",}]+)"
)


def redact(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    text = _SIGNING_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SECRET_FIELDS.sub(lambda m: f"{m.group(1)}{MASK}", text)
    for secret in extra_secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Formats the record's message once, redacts it, and freezes it so handlers can't re-expand it."""

    def __init__(self, extra_secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.extra_secrets = extra_secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not take logging down with it
            message = str(record.msg)
        record.msg = redact(message, self.extra_secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.extra_secrets)
        return True
