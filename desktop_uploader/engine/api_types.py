"""What the upload API answers, as checked, typed values: a field missing or of the wrong kind is a ProtocolError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop_uploader.engine.errors import NotFoundError, ProtocolError, RejectedError


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: float  # time.monotonic() deadline, from when we received it


@dataclass(frozen=True)
class StartedUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    comfyui_path: str
    urls: dict[int, SignedUrl]
    attempts: int = 1  # more than one: an earlier attempt may have created an upload whose answer was lost
    checksum: str = ""  # the algorithm storage expects on every part, as the server confirmed it ("": none)


@dataclass(frozen=True)
class Completion:
    unique_file_name: str
    comfyui_path: str | None
    network_volume_path: str | None
    size: int | None
    etag: str


class AlreadyStoredError(NotFoundError):
    """The upload is gone because it was completed: its object is stored (a server that says so)."""

    def __init__(self, completion: Completion) -> None:
        super().__init__("This upload was already completed.")
        self.completion = completion


@dataclass(frozen=True)
class RemotePart:
    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class RemoteUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    initiated: str = ""  # when storage created it, ISO 8601 as the server said it ("": not said)


@dataclass(frozen=True)
class ChunkedUpload:
    upload_id: str
    s3_key: str
    unique_file_name: str
    comfyui_path: str
    max_chunk_bytes: int
    attempts: int = 1  # more than one: an earlier attempt may have created an upload whose answer was lost


class OffsetMismatchError(RejectedError):
    """The chunked endpoint expected another offset (409); ``expected`` says where to go on."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"The server expected the next chunk at byte {expected:,}.", status=409)
        self.expected = expected


def answer_field(body: dict[str, Any], name: str, kind: type, action: str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"The upload server's answer to '{action}' lacks a valid '{name}'.")
    return value


def completion_from(answer: dict[str, Any], action: str) -> Completion:
    if answer.get("success") is not True:
        raise ProtocolError(f"The upload server did not confirm '{action}'.")
    size = answer.get("size")
    return Completion(
        unique_file_name=str(answer.get("uniqueFileName") or ""),
        comfyui_path=answer.get("comfyUIPath") if isinstance(answer.get("comfyUIPath"), str) else None,
        network_volume_path=(
            answer.get("networkVolumePath") if isinstance(answer.get("networkVolumePath"), str) else None
        ),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        etag=str(answer.get("etag") or ""),
    )
