"""Routes: what the dispatcher needs per Trigger or KafkaSource, resolved to URLs and topics.

A ``Route`` can be built by hand (tests, benchmarks) or from the manifests with
``routes_from_manifests``; the dispatcher knows nothing of manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

from knative.local.filters import Filter, NoFilter
from knative.local.manifests import DeliverySpec, Destination, ManifestError, Manifests, Workload
from knative.local.settings import DEFAULT_PORTS, LocalSettings, port_variable, short_name


@dataclass(frozen=True)
class DeadLetter:
    """Where failed events go: a Kafka topic (KafkaSink) or an HTTP URL."""

    topic: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        return f"topic {self.topic}" if self.topic else f"{self.url}"


@dataclass(frozen=True)
class Route:
    """One Trigger (or KafkaSource): consume ``topics`` as ``group_id``, filter, deliver to ``subscriber_url``."""

    name: str
    topics: tuple[str, ...]
    group_id: str
    subscriber_url: str
    filter: Filter = NoFilter()
    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay_s: float = 0.2
    timeout_s: float = 30.0
    dead_letter: DeadLetter | None = None
    ordered: bool = False
    reply_topic: str | None = None  # the broker topic for a Trigger; None for a source (replies are dropped)
    kind: str = "Trigger"

    def backoff(self, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1-based): delay*n (linear) or delay*2^n (exponential),
        as Knative's delivery spec defines them."""
        if self.backoff_policy == "linear":
            return self.backoff_delay_s * retry_number
        return self.backoff_delay_s * (2**retry_number)


def local_port(workload: Workload, settings: LocalSettings) -> int:
    """The local port of a service: annotation ``kfchain.io/local-port``, ``KFCHAIN_<NAME>_PORT``, the
    default table, then the manifest's containerPort."""
    key = short_name(workload.name)
    port = workload.local_port or settings.ports.get(key) or DEFAULT_PORTS.get(key) or workload.container_port
    if not port:
        raise ManifestError(
            workload.origin,
            "spec.template.spec.containers[0].ports[0].containerPort",
            f"no local port for {workload.name!r}: add the annotation kfchain.io/local-port or set {port_variable(workload.name)}",
        )
    return port


class Resolver:
    """Turns Destinations into local URLs (Knative Services -> http://127.0.0.1:<port>) and KafkaSinks into topics."""

    def __init__(self, manifests: Manifests, settings: LocalSettings) -> None:
        self.manifests = manifests
        self.settings = settings

    def url(self, destination: Destination, origin: str, field: str) -> str:
        ref = destination.ref
        if ref is None:
            return str(destination.uri)
        if ref.kind != "Service":
            raise ManifestError(
                origin,
                f"{field}.ref.kind",
                f"{ref.kind} cannot be a subscriber locally; use a Knative Service or a uri",
            )
        workload = self.manifests.services.get(ref.name)
        key = short_name(ref.name)
        if workload is not None:
            port = local_port(workload, self.settings)
        elif key in self.settings.ports or key in DEFAULT_PORTS:
            port = self.settings.ports.get(key) or DEFAULT_PORTS[key]
        else:
            raise ManifestError(
                origin, f"{field}.ref.name", f"no Service named {ref.name!r} in {self.manifests.root}"
            )
        base = f"http://{self.settings.host}:{port}"
        if destination.uri:  # a relative uri on a ref is a path (Knative Destination)
            return base + "/" + destination.uri.lstrip("/")
        return base + "/"

    def dead_letter(self, destination: Destination | None, origin: str) -> DeadLetter | None:
        if destination is None:
            return None
        ref = destination.ref
        if ref is not None and ref.kind == "KafkaSink":
            return DeadLetter(topic=self.manifests.sinks[ref.name].topic)
        return DeadLetter(url=self.url(destination, origin, "spec.delivery.deadLetterSink"))


def _route(
    name: str, kind: str, topics: tuple[str, ...], group: str, url: str, delivery: DeliverySpec, **kw: object
) -> Route:
    return Route(
        name=name,
        kind=kind,
        topics=topics,
        group_id=group,
        subscriber_url=url,
        retry=delivery.retry,
        backoff_policy=delivery.backoff_policy,
        backoff_delay_s=delivery.backoff_delay_s,
        **kw,  # type: ignore[arg-type]
    )


def routes_from_manifests(manifests: Manifests, settings: LocalSettings, default_topic: str) -> list[Route]:
    """One Route per Trigger and per KafkaSource; a Trigger without ``delivery`` inherits its Broker's."""
    resolver = Resolver(manifests, settings)
    routes = []
    for trigger in manifests.triggers:
        broker = manifests.brokers[trigger.broker]
        topic = broker.topic or default_topic
        delivery = trigger.delivery or broker.delivery or DeliverySpec()
        routes.append(
            _route(
                trigger.name,
                "Trigger",
                (topic,),
                settings.group_prefix + trigger.name,
                resolver.url(trigger.subscriber, trigger.origin, "spec.subscriber"),
                delivery,
                filter=trigger.filter,
                timeout_s=delivery.timeout_s or settings.default_timeout_s,
                dead_letter=resolver.dead_letter(delivery.dead_letter_sink, trigger.origin),
                ordered=trigger.ordered,
                reply_topic=topic,
            )
        )
    for source in manifests.sources:
        delivery = source.delivery or DeliverySpec()
        routes.append(
            _route(
                source.name,
                "KafkaSource",
                source.topics,
                source.consumer_group,
                resolver.url(source.sink, source.origin, "spec.sink"),
                delivery,
                timeout_s=delivery.timeout_s or settings.default_timeout_s,
                dead_letter=resolver.dead_letter(delivery.dead_letter_sink, source.origin),
                ordered=source.ordered,
            )
        )
    return routes


def topics_of(routes: list[Route], manifests: Manifests | None = None) -> list[str]:
    """Every topic the routes read or write (to create before starting)."""
    topics: dict[str, None] = {}
    for route in routes:
        for topic in (
            *route.topics,
            route.reply_topic,
            route.dead_letter.topic if route.dead_letter else None,
        ):
            if topic:
                topics[topic] = None
    for sink in manifests.sinks.values() if manifests else ():
        topics[sink.topic] = None
    return list(topics)


def broker_topic(manifests: Manifests, default: str) -> str:
    """The topic of the (first) Broker, which services publish to."""
    topics = [b.topic for b in manifests.brokers.values() if b.topic]
    return topics[0] if topics else default


def dead_letter_topic(manifests: Manifests, default: str) -> str:
    """The topic of the (first) KafkaSink used as a dead-letter sink."""
    return next(iter(s.topic for s in manifests.sinks.values()), default)
