"""The local runtime reads the real manifests in knative/, and names the file and field of a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from knative.local.durations import parse_duration
from knative.local.manifests import ManifestError, load_manifests
from knative.local.routes import routes_from_manifests
from knative.local.settings import DEFAULT_MANIFESTS, LocalSettings
from knative.local.supervisor import plan_stack, selected_workloads

TRIGGER = """\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
spec:
  broker: b
  subscriber:
    uri: http://127.0.0.1:1/
{extra}
"""
BROKER = """\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: b
  annotations:
    kafka.eventing.knative.dev/external.topic: my.topic
"""


def write_tree(folder: Path, **files: str) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_repository_manifests_give_the_three_triggers_and_the_dead_letter_source() -> None:
    manifests = load_manifests(DEFAULT_MANIFESTS)
    routes = {r.name: r for r in routes_from_manifests(manifests, LocalSettings(), "unused")}
    assert set(routes) == {"on-training-done", "on-selection-done", "record-all", "kfchain-dead-letters"}
    training = routes["on-training-done"]
    assert training.subscriber_url == "http://127.0.0.1:8091/"
    assert training.topics == ("kfchain.events",) and training.reply_topic == "kfchain.events"
    assert training.dead_letter is not None and training.dead_letter.topic == "kfchain.events.dlq"
    assert training.group_id == "kfchain.trigger.on-training-done"
    source = routes["kfchain-dead-letters"]
    assert source.topics == ("kfchain.events.dlq",) and source.subscriber_url == "http://127.0.0.1:8093/"
    assert source.reply_topic is None  # a source does not route replies


def test_repository_manifests_start_every_local_service_and_the_predictor(tmp_path: Path) -> None:
    manifests = load_manifests(DEFAULT_MANIFESTS)
    names = {w.name for w in selected_workloads(manifests)}
    assert {"selector", "deployer", "recorder", "frontend", "kfchain-predictor"} <= names
    local = LocalSettings(home=tmp_path, ports={"selector": 18091})
    from events.settings import KafkaSettings

    plan = plan_stack(manifests, local, KafkaSettings())
    by_name = {p.name: p for p in plan.processes}
    assert by_name["selector"].env["PORT"] == "18091"  # env override of the port table
    assert by_name["selector"].argv[1:] == ["-m", "services.selector"]
    assert by_name["predictor"].env["KFCHAIN_PREDICTOR_PORT"] == by_name["predictor"].env["PORT"] == "8080"
    assert by_name["predictor"].argv[1:] == ["-m", "services.predictor"]
    assert "KFCHAIN_PREDICTOR_MODEL_DIR" not in by_name["predictor"].env  # store mode locally
    assert by_name["frontend"].env["KFCHAIN_PREDICTOR_URL"] == "http://127.0.0.1:8080"
    assert list(by_name)[0] == "broker" and list(by_name)[-1] == "dispatcher"


def test_cluster_bind_address_in_a_manifest_stays_on_loopback_locally(tmp_path: Path) -> None:
    service = (
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: selector}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - command: [python, -m, services.selector]\n"
        "          env:\n            - {name: KFCHAIN_BIND_HOST, value: 0.0.0.0}\n            - {name: MODE, value: x}\n"
    )
    write_tree(tmp_path, **{"svc.yaml": service})
    from events.settings import KafkaSettings

    plan = plan_stack(
        load_manifests(tmp_path), LocalSettings(home=tmp_path, manifests=tmp_path), KafkaSettings()
    )
    selector = next(p for p in plan.processes if p.name == "selector")
    assert selector.env["KFCHAIN_BIND_HOST"] == "127.0.0.1" and selector.env["MODE"] == "x"


def test_trigger_without_delivery_inherits_the_brokers(tmp_path: Path) -> None:
    broker = (
        BROKER + "spec:\n  delivery:\n    retry: 4\n    backoffPolicy: linear\n    backoffDelay: PT0.5S\n"
    )
    write_tree(tmp_path, **{"broker.yaml": broker, "trigger.yaml": TRIGGER.format(extra="")})
    (route,) = routes_from_manifests(load_manifests(tmp_path), LocalSettings(), "default.topic")
    assert (route.retry, route.backoff_policy, route.backoff_delay_s) == (4, "linear", 0.5)
    assert route.topics == ("my.topic",)
    assert [route.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


def test_exponential_backoff_doubles() -> None:
    from knative.local.routes import Route

    route = Route("r", ("t",), "g", "http://x/", backoff_policy="exponential", backoff_delay_s=0.2)
    assert [route.backoff(n) for n in (1, 2, 3)] == pytest.approx([0.4, 0.8, 1.6])


@pytest.mark.parametrize(
    ("text", "seconds"), [("PT0.2S", 0.2), ("PT1M30S", 90), ("PT2H", 7200), ("P1D", 86400), ("P1DT1S", 86401)]
)
def test_iso8601_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0.2s", "PT", "P", "T1S", "PT-1S", "1"])
def test_bad_durations_are_rejected_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="PT0.2S"):
        parse_duration(text)


BAD_MANIFESTS = [
    ("delivery:\n    retry: -1", "spec.delivery.retry", "whole number"),
    ("delivery:\n    backoffPolicy: fibonacci", "spec.delivery.backoffPolicy", "exponential or linear"),
    ("delivery:\n    backoffDelay: 200ms", "spec.delivery.backoffDelay", "ISO-8601"),
    (
        "delivery:\n    deadLetterSink:\n      ref: {kind: KafkaSink, name: nope}",
        "spec.delivery.deadLetterSink.ref.name",
        "no KafkaSink",
    ),
    ("filters:\n  - exact: {type: a, source: b}", "spec.filters[0].exact", "exactly one attribute"),
    ("filter:\n    attributes: {retries: 3}", "spec.filter.attributes.retries", "must be strings"),
]


@pytest.mark.parametrize(("extra", "field", "reason"), BAD_MANIFESTS, ids=[b[1] for b in BAD_MANIFESTS])
def test_invalid_trigger_error_names_file_and_field(
    tmp_path: Path, extra: str, field: str, reason: str
) -> None:
    write_tree(tmp_path, **{"broker.yaml": BROKER, "trigger.yaml": TRIGGER.format(extra="  " + extra)})
    with pytest.raises(ManifestError) as error:
        load_manifests(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "trigger.yaml") in message and "Trigger/t" in message
    assert error.value.field == field and reason in message


def test_unknown_broker_unknown_kind_and_missing_kind_are_errors(tmp_path: Path) -> None:
    write_tree(tmp_path, **{"trigger.yaml": TRIGGER.format(extra="")})
    with pytest.raises(ManifestError, match=r"trigger.yaml Trigger/t: spec.broker: no Broker named 'b'"):
        load_manifests(tmp_path)
    (tmp_path / "trigger.yaml").unlink()
    write_tree(
        tmp_path, **{"x.yaml": "apiVersion: eventing.knative.dev/v1\nkind: Parallel\nmetadata: {name: p}\n"}
    )
    with pytest.raises(ManifestError, match=r"x.yaml Parallel/p: kind: .* not supported"):
        load_manifests(tmp_path)
    write_tree(tmp_path, **{"x.yaml": "metadata: {name: p}\n"})
    with pytest.raises(ManifestError, match=r"x.yaml \(document 1\): apiVersion: is missing"):
        load_manifests(tmp_path)


def test_service_without_a_command_names_the_container_field(tmp_path: Path) -> None:
    service = (
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: selector}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - image: x\n"
    )
    write_tree(tmp_path, **{"svc.yaml": service})
    with pytest.raises(
        ManifestError, match=r"svc.yaml Service/selector: spec.template.spec.containers\[0\].command"
    ):
        load_manifests(tmp_path)


def test_kustomization_resources_are_followed_and_other_files_ignored(tmp_path: Path) -> None:
    write_tree(tmp_path, **{"kustomization.yaml": "resources:\n  - broker.yaml\n", "broker.yaml": BROKER,
                            "stray.yaml": "not: [valid"})  # fmt: skip
    assert set(load_manifests(tmp_path).brokers) == {"b"}
