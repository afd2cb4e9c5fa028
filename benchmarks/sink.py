"""A discard sink: an S3 endpoint that answers multipart uploads and throws the bytes away.

It answers exactly what the contenders and the upload API need (CreateMultipartUpload, UploadPart,
ListParts, CompleteMultipartUpload, AbortMultipartUpload, PutObject, HeadObject, HeadBucket, an
empty ListObjectsV2) and does as little work per byte as Python allows: one thread per connection,
``recv_into`` a 1 MiB buffer, nothing hashed, nothing verified, signatures ignored. So the client's
efficiency is what a benchmark against it measures.

ETags: a part sent with ``Content-MD5`` gets that MD5 (in hex) as its ETag, as S3 would answer for
intact bytes; a part without one gets an ETag that is visibly not an MD5 (as S3 answers for
encrypted buckets), so no client mistakes it for a checksum. Completion answers the multipart
ETag S3 would compute from the part ETags.

Run: ``python -m benchmarks.sink [--host H] [--port P]``. It prints one JSON line (``{"endpoint":
...}``) and then answers commands on stdin, one per line: ``stats`` prints a JSON line with the
payload bytes received so far and per-upload first/last byte times; ``quit`` stops it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

BUFFER = 1 << 20
MAX_HEADER = 64 * 1024


@dataclass
class Upload:
    key: str
    parts: dict[int, tuple[str, int]] = field(default_factory=dict)  # number -> (etag, size)
    first_byte: float | None = None
    last_byte: float | None = None
    completed: float | None = None
    part_seconds: list[float] = field(default_factory=list)  # per part stored: its request's head to its last byte


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uploads: dict[str, Upload] = {}
        self.objects: dict[str, tuple[int, str]] = {}  # key -> (size, etag)
        self.payload = 0
        self.requests = 0
        self.first_byte: float | None = None
        self.last_byte: float | None = None

    def stats(self) -> dict[str, object]:
        with self.lock:
            return {
                "payload_bytes": self.payload,
                "requests": self.requests,
                "first_byte": self.first_byte,
                "last_byte": self.last_byte,
                "now": time.monotonic(),
                "uploads": {
                    uid: {
                        "key": u.key,
                        "parts": len(u.parts),
                        "bytes": sum(s for _, s in u.parts.values()),
                        "first_byte": u.first_byte,
                        "last_byte": u.last_byte,
                        "completed": u.completed,
                        "part_seconds": [round(t, 2) for t in u.part_seconds],
                    }
                    for uid, u in self.uploads.items()
                },
            }

    def reset(self) -> None:
        with self.lock:
            self.uploads.clear()
            self.objects.clear()
            self.payload = 0
            self.requests = 0
            self.first_byte = self.last_byte = None


class Connection:
    def __init__(self, sink: Sink, sock: socket.socket) -> None:
        self.sink = sink
        self.sock = sock
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)
        self.pending = b""  # bytes received past the current request's headers
        self.began = 0.0  # when the current request's head arrived

    # -- reading -------------------------------------------------------------------------------------------

    def _recv_some(self) -> bytes:
        got = self.sock.recv_into(self.buffer, BUFFER)
        if got == 0:
            raise ConnectionError("closed")
        return bytes(self.view[:got])

    def read_head(self) -> bytes | None:
        data = self.pending
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEADER:
                raise ConnectionError("header too large")
            try:
                more = self._recv_some()
            except ConnectionError:
                if data:
                    raise
                return None
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        self.pending = rest
        return head

    def discard(self, count: int, upload: Upload | None) -> int:
        """Read and drop ``count`` body bytes; returns how many."""
        remaining = count
        if self.pending:
            take = min(len(self.pending), remaining)
            self.pending = self.pending[take:]
            remaining -= take
            self._note(take, upload)
        while remaining:
            got = self.sock.recv_into(self.buffer, min(BUFFER, remaining))
            if got == 0:
                raise ConnectionError("closed mid-body")
            remaining -= got
            self._note(got, upload)
        return count

    def read_exact(self, count: int) -> bytes:
        data = self.pending
        while len(data) < count:
            data += self._recv_some()
        self.pending = data[count:]
        return data[:count]

    def read_line(self) -> bytes:
        data = self.pending
        while b"\r\n" not in data:
            data += self._recv_some()
        line, _, self.pending = data.partition(b"\r\n")
        return line

    def discard_chunked(self, upload: Upload | None) -> int:
        total = 0
        while True:
            size = int(self.read_line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.read_line():  # trailers, then the empty line
                    pass
                return total
            total += self.discard(size, upload)
            self.read_line()

    def _note(self, amount: int, upload: Upload | None) -> None:
        now = time.monotonic()
        sink = self.sink
        with sink.lock:
            sink.payload += amount
            if sink.first_byte is None:
                sink.first_byte = now
            sink.last_byte = now
            if upload is not None:
                if upload.first_byte is None:
                    upload.first_byte = now
                upload.last_byte = now

    # -- answering -----------------------------------------------------------------------------------------

    def send(self, status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Server: discard-sink"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def serve(self) -> None:
        try:
            while self.handle_one():
                pass
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            self.sock.close()

    def handle_one(self) -> bool:
        head = self.read_head()
        if head is None:
            return False
        self.began = time.monotonic()
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        with self.sink.lock:
            self.sink.requests += 1
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if headers.get("expect", "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        key = path.lstrip("/")
        upload = None
        if "uploadId" in query:
            with self.sink.lock:
                upload = self.sink.uploads.get(query["uploadId"])
        is_upload_body = method == "PUT"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body_bytes = self.discard_chunked(upload if is_upload_body else None)
            body = b""
        else:
            length = int(headers.get("content-length", "0") or 0)
            if is_upload_body:
                body_bytes = self.discard(length, upload)
                body = b""
            else:
                body = self.read_exact(length) if length else b""
                body_bytes = len(body)
        size = int(headers.get("x-amz-decoded-content-length", body_bytes))
        return self.route(method, key, query, headers, body, size, upload)

    def route(  # noqa: PLR0912 - one branch per S3 operation reads best
        self,
        method: str,
        key: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        size: int,
        upload: Upload | None,
    ) -> bool:
        sink = self.sink
        if method == "GET" and key == "__stats":
            self.send("200 OK", {"Content-Type": "application/json"}, json.dumps(sink.stats()).encode())
            return True
        if method == "PUT" and "partNumber" in query:
            if upload is None:
                return self.error(404, "NoSuchUpload")
            etag = _etag_for(headers, f"{query['uploadId']}:{query['partNumber']}")
            with sink.lock:
                upload.parts[int(query["partNumber"])] = (etag, size)
                upload.part_seconds.append(time.monotonic() - self.began)
            extra = {k: v for k, v in headers.items() if k.startswith("x-amz-checksum-")}
            self.send("200 OK", {"ETag": f'"{etag}"', **extra})
            return True
        if method == "PUT":
            if "/" not in key:  # CreateBucket
                self.send("200 OK")
                return True
            etag = _etag_for(headers, key + uuid.uuid4().hex)
            with sink.lock:
                sink.objects[key] = (size, etag)
            self.send("200 OK", {"ETag": f'"{etag}"'})
            return True
        if method == "POST" and "uploads" in query:
            upload_id = uuid.uuid4().hex
            with sink.lock:
                sink.uploads[upload_id] = Upload(key)
            bucket, _, obj = key.partition("/")
            self.send(
                "200 OK",
                {"Content-Type": "application/xml"},
                _xml("InitiateMultipartUploadResult", Bucket=bucket, Key=obj, UploadId=upload_id),
            )
            return True
        if method == "POST" and "uploadId" in query:
            if upload is None:
                return self.error(404, "NoSuchUpload")
            with sink.lock:
                ordered = [upload.parts[n] for n in sorted(upload.parts)]
                tags = [t for t, _ in ordered]
                if all(_is_md5(t) for t in tags):
                    digest = hashlib.md5(b"".join(bytes.fromhex(t) for t in tags)).hexdigest()
                    etag = f"{digest}-{len(tags)}"
                else:
                    etag = f"sink{uuid.uuid4().hex[:24]}-{len(tags)}"
                sink.objects[upload.key] = (sum(s for _, s in ordered), etag)
                upload.completed = time.monotonic()
            bucket, _, obj = key.partition("/")
            self.send(
                "200 OK",
                {"Content-Type": "application/xml"},
                _xml("CompleteMultipartUploadResult", Bucket=bucket, Key=obj, ETag=f'"{etag}"', Location=f"/{key}"),
            )
            return True
        if method == "DELETE" and "uploadId" in query:
            with sink.lock:
                sink.uploads.pop(query["uploadId"], None)
            self.send("204 No Content")
            return True
        if method == "DELETE":
            with sink.lock:
                sink.objects.pop(key, None)
            self.send("204 No Content")
            return True
        if method == "GET" and "uploadId" in query:
            if upload is None:
                return self.error(404, "NoSuchUpload")
            with sink.lock:
                listed = "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{t}&quot;</ETag><Size>{s}</Size></Part>"
                    for n, (t, s) in sorted(upload.parts.items())
                )
            bucket, _, obj = key.partition("/")
            body_xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Bucket>{bucket}</Bucket><Key>{obj}</Key>'
                f"<UploadId>{query['uploadId']}</UploadId><IsTruncated>false</IsTruncated>{listed}</ListPartsResult>"
            )
            self.send("200 OK", {"Content-Type": "application/xml"}, body_xml.encode())
            return True
        if method in ("HEAD", "GET") and "/" in key.strip("/"):
            with sink.lock:
                found = sink.objects.get(key)
            if found is None:
                return self.error(404, "NoSuchKey", head=method == "HEAD")
            if method == "HEAD":
                self.sock.sendall(
                    (
                        f'HTTP/1.1 200 OK\r\nContent-Length: {found[0]}\r\nETag: "{found[1]}"\r\n'
                        "Last-Modified: Mon, 24 Nov 2025 12:00:00 GMT\r\nContent-Type: application/octet-stream\r\n\r\n"
                    ).encode()
                )
                return True
            return self.error(501, "NotImplemented")
        if method == "HEAD":  # HeadBucket
            self.send("200 OK")
            return True
        if method == "GET":  # ListObjects(V2) and GetBucketLocation: empty
            bucket = key.strip("/")
            if "location" in query:
                self.send("200 OK", {"Content-Type": "application/xml"}, _xml("LocationConstraint"))
                return True
            listing = (
                f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{bucket}</Name><Prefix>'
                f"{query.get('prefix', '')}</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
                "<IsTruncated>false</IsTruncated></ListBucketResult>"
            )
            self.send("200 OK", {"Content-Type": "application/xml"}, listing.encode())
            return True
        return self.error(501, "NotImplemented")

    def error(self, status: int, code: str, *, head: bool = False) -> bool:
        reason = {404: "Not Found", 501: "Not Implemented"}.get(status, "Error")
        body = b"" if head else _xml("Error", Code=code, Message=code)
        self.send(f"{status} {reason}", {"Content-Type": "application/xml"}, body)
        return True


def _etag_for(headers: dict[str, str], seed: str) -> str:
    md5 = headers.get("content-md5")
    if md5:
        try:
            return base64.b64decode(md5).hex()
        except ValueError:
            pass
    return "sink" + hashlib.sha1(seed.encode()).hexdigest()[:28]


def _is_md5(tag: str) -> bool:
    return len(tag) == 32 and all(c in "0123456789abcdef" for c in tag)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _xml(root: str, **fields: str) -> bytes:
    inner = "".join(f"<{k}>{_escape(v)}</{k}>" for k, v in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><{root}>{inner}</{root}>'.encode()


class SinkServer:
    """The sink on a listening socket, served by daemon threads (one per connection)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sink = Sink()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(256)
        self.host, self.port = self.listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept, name="sink-accept", daemon=True)
        self._stopped = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SinkServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=Connection(self.sink, sock).serve, name="sink-conn", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = SinkServer(args.host, args.port).start()
    print(json.dumps({"endpoint": server.endpoint}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            print(json.dumps(server.sink.stats()), flush=True)
        elif command == "reset":
            server.sink.reset()
            print("{}", flush=True)
        elif command == "quit":
            break
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
