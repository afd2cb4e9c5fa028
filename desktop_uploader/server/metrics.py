"""What the API exposes at ``/metrics`` for Prometheus.

One registry per application (not prometheus-client's global one), so several API instances in one
process, as the tests run them, each count their own. Label values are bounded sets (actions,
status codes, reasons), never user ids, keys or paths a client chose.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "upload_api_requests",
            "Requests answered, by action and HTTP status.",
            ["action", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "upload_api_request_seconds",
            "Time from a request's head to the end of its answer, by action.",
            ["action"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.in_flight = Gauge(
            "upload_api_requests_in_flight", "Requests being received or answered now.", registry=self.registry
        )
        self.chunked_bytes = Counter(
            "upload_api_chunked_bytes",
            "Bytes of accepted chunks through the chunked upload path.",
            registry=self.registry,
        )
        self.uploads = Counter(
            "upload_api_uploads",
            "Uploads started, completed and aborted, by path (presigned, chunked, legacy).",
            ["event", "path"],
            registry=self.registry,
        )
        self.cut = Counter(
            "upload_api_connections_cut",
            "Connections cut for stalling: headers not complete in time, or a request body that stopped.",
            ["reason"],
            registry=self.registry,
        )
        self.refused = Counter(
            "upload_api_requests_refused_busy",
            "Requests refused with 429 by the concurrency caps, by which cap (total, user).",
            ["cap"],
            registry=self.registry,
        )
        for reason in ("headers", "body"):
            self.cut.labels(reason)
        for cap in ("total", "user"):
            self.refused.labels(cap)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
