"""Prometheus metrics of the dispatcher, in a registry of its own (several dispatchers may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class DispatcherMetrics:
    """Counters per Trigger (label ``trigger``, also used for KafkaSources) and consumer lag per partition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.delivered = Counter(
            "kfchain_dispatch_delivered_total",
            "Events the subscriber accepted (2xx).",
            ["trigger"],
            registry=r,
        )
        self.retried = Counter(
            "kfchain_dispatch_retried_total",
            "Delivery retries (attempts after the first).",
            ["trigger"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "kfchain_dispatch_dead_lettered_total",
            "Events and invalid records sent to the dead-letter sink.",
            ["trigger"],
            registry=r,
        )
        self.dropped = Counter(
            "kfchain_dispatch_dropped_total",
            "Failed events with nowhere to go (no dead-letter sink, or it is the topic being read); logged.",
            ["trigger"],
            registry=r,
        )
        self.filtered = Counter(
            "kfchain_dispatch_filtered_total",
            "Events the Trigger's filter did not pass.",
            ["trigger"],
            registry=r,
        )
        self.invalid = Counter(
            "kfchain_dispatch_invalid_records_total",
            "Records that are not valid CloudEvents.",
            ["trigger"],
            registry=r,
        )
        self.replies = Counter(
            "kfchain_dispatch_replies_total",
            "Reply events published back to the broker.",
            ["trigger"],
            registry=r,
        )
        self.invalid_replies = Counter(
            "kfchain_dispatch_invalid_replies_total",
            "Replies that were not valid CloudEvents (not published).",
            ["trigger"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "kfchain_dispatch_delivery_seconds",
            "Time from consuming an event to its outcome (delivered or dead-lettered), retries included.",
            ["trigger"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.lag = Gauge(
            "kfchain_consumer_lag",
            "Records not yet committed, per Trigger and partition.",
            ["trigger", "partition"],
            registry=r,
        )
        self.ready = Gauge(
            "kfchain_dispatch_ready",
            "1 once the Trigger's consumer has its partitions.",
            ["trigger"],
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), e.g. ``value("kfchain_dispatch_delivered_total", trigger="x")``."""
        found = self.registry.get_sample_value(name, labels)
        return float(found or 0.0)
