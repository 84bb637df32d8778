"""One delivery attempt over HTTP and what Knative's data plane makes of its outcome.

Response codes (DESIGN.md "Delivery semantics", Knative's data-plane contract): 2xx is done (a
reply CloudEvent in the response goes back to the broker); 404, 408, 409, 429, 5xx, timeouts and
connection errors are retried; every other status is dead-lettered at once. A dead letter carries
``knativeerrordest`` (the subscriber URL), ``knativeerrorcode`` (the status, -1 without a response)
and ``knativeerrordata`` (the response body or the error, truncated to 1024 bytes and base64-encoded,
as eventing's ``KnativeErrorDataExtensionMaxLength`` and dispatcher do).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx

from events.codec import STRUCTURED_CONTENT_TYPE, from_http, to_http
from events.errors import InvalidEventError
from events.event import Event

RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})
ERROR_DATA_MAX_BYTES = 1024
NO_RESPONSE = -1


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: the status (-1 when there was no response), body, headers, error text."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == NO_RESPONSE or self.status >= 500 or self.status in RETRYABLE_STATUSES

    def describe(self) -> str:
        if self.status == NO_RESPONSE:
            return f"no response ({self.error})"
        return f"HTTP {self.status}"


def post_event(client: httpx.Client, url: str, event: Event, timeout_s: float) -> Attempt:
    """POST ``event`` in binary content mode; never raises for transport problems."""
    headers, body = to_http(event)
    headers["Prefer"] = "reply"  # as Knative's dispatchers do: a reply event is welcome
    try:
        response = client.post(url, headers=headers, content=body, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        return Attempt(NO_RESPONSE, error=f"timed out after {timeout_s:g}s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Attempt(NO_RESPONSE, error=f"{type(exc).__name__}: {exc}")
    return Attempt(response.status_code, response.content, tuple(response.headers.items()))


def reply_of(attempt: Attempt) -> Event | None:
    """The reply CloudEvent in a 2xx response (binary or structured), or None when there is none.

    Raises ``InvalidEventError`` when the response claims to carry an event that is not valid,
    or a catalogue type whose payload breaks the contract.
    """
    lowered = {k.lower(): v for k, v in attempt.headers}
    structured = lowered.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE)
    if "ce-specversion" not in lowered and not structured:
        return None
    event = from_http(lowered, attempt.body)
    return event.validate() if event.known else event


def error_data(attempt: Attempt) -> str:
    """``knativeerrordata``: the response body (or error text), at most 1024 bytes, base64."""
    raw = attempt.body if attempt.status != NO_RESPONSE else (attempt.error or "").encode()
    return base64.b64encode(raw[:ERROR_DATA_MAX_BYTES]).decode()


def dead_lettered(event: Event, url: str, attempt: Attempt) -> Event:
    """``event`` stamped with the dead-letter extensions for the last failed attempt."""
    return event.with_extensions(
        knativeerrordest=url, knativeerrorcode=str(attempt.status), knativeerrordata=error_data(attempt)
    )


def invalid_reply_error(exc: InvalidEventError) -> str:
    return f"the reply is not a valid CloudEvent ({exc}); it was not published"
