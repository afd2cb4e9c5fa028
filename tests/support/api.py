"""Plain-``requests`` calls to the upload API, as a third-party client (or the seed's JS) would make them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import requests

PRESIGNED = "/api/user/influencers/presigned-upload"
CHUNKED = "/api/user/influencers/chunked-upload"
LEGACY = "/api/user/influencers/upload"


@dataclass
class Api:
    url: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def presigned(self, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + PRESIGNED, json=body, headers=self.headers(), timeout=60, **kwargs)

    def capabilities(self) -> requests.Response:
        return self.session.get(self.url + PRESIGNED, headers=self.headers(), timeout=30)

    def chunked(self, body: Any) -> requests.Response:
        return self.session.post(self.url + CHUNKED, json=body, headers=self.headers(), timeout=60)

    def chunk(self, upload_id: str, key: str, offset: int, data: bytes) -> requests.Response:
        return self.session.post(
            self.url + CHUNKED,
            params={"uploadId": upload_id, "s3Key": key, "offset": offset},
            data=data,
            headers={**self.headers(), "Content-Type": "application/octet-stream"},
            timeout=60,
        )

    def legacy(self, name: str, data: bytes, display_name: str | None = None) -> requests.Response:
        form = {"displayName": display_name} if display_name else {}
        return self.session.post(
            self.url + LEGACY, files={"file": (name, data)}, data=form, headers=self.headers(), timeout=60
        )

    def ok(self, response: requests.Response) -> dict[str, Any]:
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body


def sha256_file(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
