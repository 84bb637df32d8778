"""Small Knative manifests written from code, for tests and benchmarks that run the local runtime.

A Broker on a Kafka topic with its dead-letter KafkaSink (``broker_manifests``) and Triggers on it
(``trigger_manifest``), each rendered as YAML documents that start with ``---``, so they can be
concatenated into one file and read back by :func:`knative.local.manifests.load_manifests`. The
topics, names and subscriber URLs are the caller's, so a run never touches the repository's
``knative/`` manifests or another run's topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from knative.local.manifests import DELIVERY_ORDER, EXTERNAL_TOPIC

EVENTING = "eventing.knative.dev/v1"
KAFKA_SINK_API = "eventing.knative.dev/v1alpha1"


def broker_manifests(broker: str, topic: str, *, dead_letter_sink: str, dead_letter_topic: str) -> str:
    """A Broker ``broker`` on the Kafka ``topic``, and a KafkaSink ``dead_letter_sink`` writing to
    ``dead_letter_topic`` (name it in ``trigger_manifest(dead_letter_sink=...)``)."""
    return _render(
        {
            "apiVersion": EVENTING,
            "kind": "Broker",
            "metadata": {"name": broker, "annotations": {EXTERNAL_TOPIC: topic}},
        },
        {
            "apiVersion": KAFKA_SINK_API,
            "kind": "KafkaSink",
            "metadata": {"name": dead_letter_sink},
            "spec": {"topic": dead_letter_topic},
        },
    )


def trigger_manifest(
    name: str,
    broker: str,
    subscriber: str | Mapping[str, str],
    *,
    event_type: str | None = None,
    dead_letter_sink: str | None = None,
    ordered: bool = False,
    retry: int = 3,
    backoff_policy: str = "exponential",
    backoff_delay: str = "PT0.2S",
    timeout: str = "PT5S",
) -> str:
    """A Trigger ``name`` on ``broker`` delivering to ``subscriber``: a URL, or the ``ref`` of a
    Knative Service (``{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": ...}``).

    ``event_type`` filters on the CloudEvent type (no filter: every event); ``dead_letter_sink``
    names a KafkaSink of ``broker_manifests``; ``ordered`` picks the Kafka Broker's delivery order.
    """
    delivery: dict[str, Any] = {
        "retry": retry,
        "backoffPolicy": backoff_policy,
        "backoffDelay": backoff_delay,
        "timeout": timeout,
    }
    if dead_letter_sink is not None:
        delivery["deadLetterSink"] = {
            "ref": {"apiVersion": KAFKA_SINK_API, "kind": "KafkaSink", "name": dead_letter_sink}
        }
    spec: dict[str, Any] = {"broker": broker}
    if event_type is not None:
        spec["filter"] = {"attributes": {"type": event_type}}
    spec["subscriber"] = {"uri": subscriber} if isinstance(subscriber, str) else {"ref": dict(subscriber)}
    spec["delivery"] = delivery
    return _render(
        {
            "apiVersion": EVENTING,
            "kind": "Trigger",
            "metadata": {
                "name": name,
                "annotations": {DELIVERY_ORDER: "ordered" if ordered else "unordered"},
            },
            "spec": spec,
        }
    )


def _render(*documents: Mapping[str, Any]) -> str:
    return yaml.safe_dump_all(documents, explicit_start=True, sort_keys=False)
