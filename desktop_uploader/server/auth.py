"""Bearer tokens to user ids, from a JSON file the operator controls."""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path

from desktop_uploader.server.errors import ApiError

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class TokenStore:
    tokens: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"The tokens file {path} can't be read: {exc.strerror or exc}.") from exc
        except ValueError as exc:  # not JSON, or not UTF-8
            raise ValueError(f"The tokens file {path} is not valid JSON: {exc}.") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a JSON object of token -> user id")
        pairs = []
        for token, user in raw.items():
            if not isinstance(user, str) or not _USER_ID.match(user):
                raise ValueError(f"{path}: user ids must be 1-64 letters, digits, '_', '.' or '-'")
            if len(token) < 16:
                raise ValueError(f"{path}: tokens must be at least 16 characters")
            pairs.append((token, user))
        return cls(tuple(pairs))

    def user_for(self, authorization: str | None) -> str:
        """The user id for an ``Authorization: Bearer`` header, compared in constant time."""
        if not authorization:
            raise ApiError(401, "Missing Authorization header; send 'Authorization: Bearer <token>'.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "The Authorization header must be 'Bearer <token>'.")
        found = None
        for known, user in self.tokens:
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        if found is None:
            raise ApiError(401, "The token was not recognised.")
        return found
