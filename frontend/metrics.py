"""Prometheus metrics of one app instance, on a registry of its own (tests build many apps)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "FrontendMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class FrontendMetrics:
    """``kfchain_frontend_requests_total``, ``..._request_seconds`` and ``..._upstream_errors_total``."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    upstream_errors: Counter

    @classmethod
    def create(cls) -> FrontendMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "kfchain_frontend_requests",
                "HTTP requests answered by the frontend.",
                ("route", "method", "status"),
                registry=registry,
            ),
            latency=Histogram(
                "kfchain_frontend_request_seconds",
                "Time to answer a request (until the response starts, for streams).",
                ("route",),
                buckets=_BUCKETS,
                registry=registry,
            ),
            upstream_errors=Counter(
                "kfchain_frontend_upstream_errors",
                "Calls to the predictor that failed, by reason.",
                ("reason",),
                registry=registry,
            ),
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
