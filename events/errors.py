"""Domain errors of the event library; each inherits the built-in it resembles."""

from __future__ import annotations


class InvalidEventError(ValueError):
    """An event or payload breaks the contract. ``field`` names the offending attribute or key."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f" (got {value!r:.80})"
        super().__init__(f"{field}: {reason}{shown}")


class UnknownEventTypeError(InvalidEventError):
    """The event's ``type`` is not in the catalogue (the event itself may still be a valid CloudEvent)."""

    def __init__(self, type_: str) -> None:
        super().__init__("type", "not in the kfchain event catalogue", type_)


class BrokerUnavailableError(ConnectionError):
    """Kafka did not answer in time; the message names the bootstrap address."""
