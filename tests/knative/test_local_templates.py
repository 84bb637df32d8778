"""Manifests written with knative.local.templates are read back by the runtime as the caller meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from knative.local.filters import AttributesFilter, NoFilter
from knative.local.manifests import ManifestError, load_manifests
from knative.local.routes import DeadLetter, Route, routes_from_manifests
from knative.local.settings import LocalSettings
from knative.local.templates import broker_manifests, trigger_manifest

RECORDER = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "recorder"}


def routes_of(folder: Path, text: str) -> dict[str, Route]:
    (folder / "all.yaml").write_text(text)
    settings = LocalSettings(ports={"recorder": 18093})
    return {r.name: r for r in routes_from_manifests(load_manifests(folder), settings, "unused")}


def delivery(route: Route) -> tuple:
    return route.retry, route.backoff_policy, route.backoff_delay_s, route.timeout_s


def test_broker_and_triggers_become_routes_on_the_callers_topics(tmp_path: Path) -> None:
    routes = routes_of(
        tmp_path,
        broker_manifests("b", "my.topic", dead_letter_sink="b-dlq", dead_letter_topic="my.topic.dlq")
        + trigger_manifest("hop", "b", "http://127.0.0.1:1234/in", dead_letter_sink="b-dlq")
        + trigger_manifest(
            "typed",
            "b",
            RECORDER,
            event_type="io.kfchain.x",
            ordered=True,
            retry=1,
            backoff_policy="linear",
            backoff_delay="PT0.05S",
            timeout="PT2S",
        ),
    )
    hop, typed = routes["hop"], routes["typed"]
    assert hop.topics == ("my.topic",) and hop.reply_topic == "my.topic"
    assert hop.subscriber_url == "http://127.0.0.1:1234/in" and hop.filter == NoFilter()
    assert hop.dead_letter == DeadLetter(topic="my.topic.dlq") and not hop.ordered
    assert delivery(hop) == (3, "exponential", 0.2, 5.0)
    assert typed.subscriber_url.startswith("http://127.0.0.1:18093")
    assert typed.filter == AttributesFilter((("type", "io.kfchain.x"),)) and typed.ordered
    assert delivery(typed) == (1, "linear", 0.05, 2.0)
    assert typed.dead_letter is None


def test_a_bad_value_is_rendered_as_given_for_the_runtime_to_reject(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="spec.delivery.backoffPolicy"):
        routes_of(
            tmp_path,
            broker_manifests("b", "t", dead_letter_sink="d", dead_letter_topic="t.dlq")
            + trigger_manifest("x", "b", "http://127.0.0.1:1/", backoff_policy="fibonacci"),
        )
