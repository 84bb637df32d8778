"""ISO-8601 durations as Knative's delivery spec uses them (``backoffDelay: PT0.2S``, ``timeout: PT30S``)."""

from __future__ import annotations

import re

# ISO 8601 "Durations" (4.4.3.2), the subset Knative accepts through its period parser:
# PnW, or PnYnMnDTnHnMnS with any part optional and a decimal fraction allowed.
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_SECONDS = {
    "weeks": 7 * 86400,
    "years": 365 * 86400,  # approximate, as Go's period.DurationApprox
    "months": 30 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as ``PT0.2S`` or ``PT1M30S``; ``ValueError`` otherwise."""
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not an ISO-8601 duration; write e.g. PT0.2S (0.2 s) or PT1M (1 minute)"
        )
    return sum(float(value) * _SECONDS[name] for name, value in match.groupdict().items() if value)
