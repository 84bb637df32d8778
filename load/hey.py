"""Run ``hey`` (Debian's ``hey`` package) and parse its text summary into a :class:`HeyResult`.

    from load.hey import run_hey
    result = run_hey("http://127.0.0.1:8080/v1/models/iris:predict", body=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
                     duration="10s", concurrency=50)
    print(result.requests_per_s, result.latency_ms(99), result.status_codes)

hey prints requests/s over *all* requests, errors included (a refused connection is "fast"), so
look at :attr:`HeyResult.ok_requests` / :attr:`HeyResult.ok_ratio` before trusting the rate.
The same parser reads the log of the hey Job on a cluster (:func:`parse_hey_summary`).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_SECONDS = r"([0-9.]+|NaN)\s*secs"
_SUMMARY_FIELDS = {
    "total_s": re.compile(rf"^\s*Total:\s*{_SECONDS}", re.M),
    "slowest_s": re.compile(rf"^\s*Slowest:\s*{_SECONDS}", re.M),
    "fastest_s": re.compile(rf"^\s*Fastest:\s*{_SECONDS}", re.M),
    "average_s": re.compile(rf"^\s*Average:\s*{_SECONDS}", re.M),
}
_RPS = re.compile(r"^\s*Requests/sec:\s*([0-9.]+|NaN)", re.M)
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)% in ([0-9.]+) secs", re.M)
_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+?)\s*$", re.M)


class HeyError(RuntimeError):
    """hey is missing, failed, or printed something that is not its summary; the message says which."""


@dataclass(frozen=True)
class HeyResult:
    """hey's summary: overall rate and timings, latency percentiles, status codes and errors."""

    total_s: float
    requests_per_s: float
    fastest_s: float
    slowest_s: float
    average_s: float
    percentiles_s: dict[float, float] = field(default_factory=dict)  # 50.0 -> seconds
    status_codes: dict[int, int] = field(default_factory=dict)  # 200 -> count
    errors: dict[str, int] = field(default_factory=dict)  # message -> count (refused, timeouts, ...)

    @property
    def requests(self) -> int:
        """All requests hey finished, answered or not."""
        return sum(self.status_codes.values()) + sum(self.errors.values())

    @property
    def ok_requests(self) -> int:
        """Requests answered with a 2xx status."""
        return sum(count for code, count in self.status_codes.items() if 200 <= code < 300)

    @property
    def ok_ratio(self) -> float:
        return self.ok_requests / self.requests if self.requests else 0.0

    @property
    def ok_per_s(self) -> float:
        """2xx answers per second (what a user would call throughput)."""
        return self.ok_requests / self.total_s if self.total_s > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        """Latency at ``percentile`` (one hey prints: 10, 25, 50, 75, 90, 95, 99) in milliseconds; NaN if absent."""
        seconds = self.percentiles_s.get(float(percentile))
        return seconds * 1000 if seconds is not None else math.nan

    def summary_line(self) -> str:
        """One line for a terminal: rate, p50/p99, statuses and errors."""
        statuses = (
            ", ".join(f"{code}: {count}" for code, count in sorted(self.status_codes.items())) or "none"
        )
        errors = f", {sum(self.errors.values())} errors" if self.errors else ""
        return (
            f"{self.requests_per_s:.1f} req/s ({self.ok_per_s:.1f} ok/s), p50 {self.latency_ms(50):.1f} ms, "
            f"p99 {self.latency_ms(99):.1f} ms, statuses {statuses}{errors}, {self.requests} requests in {self.total_s:.1f} s"
        )


def _float(text: str) -> float:
    return math.nan if text == "NaN" else float(text)


def _section(text: str, title: str) -> str:
    """The lines after ``title:`` up to the next blank-line-separated heading."""
    match = re.search(rf"^{re.escape(title)}:\s*$(.*?)(?=^\S|\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def parse_hey_summary(text: str) -> HeyResult:
    """Parse hey's default text output (``Summary:``, latency distribution, status and error distributions)."""
    if "Summary:" not in text:
        raise HeyError(f"this is not hey's summary (no 'Summary:' line); output starts with {text[:200]!r}")
    values: dict[str, float] = {}
    for name, pattern in _SUMMARY_FIELDS.items():
        match = pattern.search(text)
        values[name] = _float(match.group(1)) if match else math.nan
    rps = _RPS.search(text)
    return HeyResult(
        total_s=values["total_s"],
        requests_per_s=_float(rps.group(1)) if rps else math.nan,
        fastest_s=values["fastest_s"],
        slowest_s=values["slowest_s"],
        average_s=values["average_s"],
        percentiles_s={
            float(p): float(s) for p, s in _PERCENTILE.findall(_section(text, "Latency distribution"))
        },
        status_codes={
            int(code): int(count)
            for code, count in _STATUS.findall(_section(text, "Status code distribution"))
        },
        errors={
            message: int(count) for count, message in _ERROR.findall(_section(text, "Error distribution"))
        },
    )


def hey_command(
    url: str,
    *,
    body: bytes | None = None,
    body_file: Path | None = None,
    duration: str | None = "10s",
    requests: int | None = None,
    concurrency: int = 50,
    method: str = "POST",
    content_type: str = "application/json",
    headers: Sequence[str] = (),
    timeout_s: int = 20,
    hey: str = "hey",
) -> list[str]:
    """The hey command line; ``duration`` (``-z``, e.g. "1m") wins over ``requests`` (``-n``)."""
    command = [hey, "-c", str(concurrency), "-m", method, "-T", content_type, "-t", str(timeout_s)]
    if duration:
        command += ["-z", duration]
    elif requests:
        command += ["-n", str(max(requests, concurrency))]  # hey refuses -n below -c
    for header in headers:
        command += ["-H", header]
    if body_file is not None:
        command += ["-D", str(body_file)]
    elif body is not None:
        command += ["-d", body.decode()]
    return [*command, url]


def find_hey() -> str:
    """Path of the hey binary, or :class:`HeyError` saying how to install it."""
    path = shutil.which("hey")
    if path is None:
        raise HeyError(
            "hey is not installed; install it with `apt-get install hey` (Debian/Ubuntu) or `go install github.com/rakyll/hey@latest`"
        )
    return path


def run_hey(
    url: str,
    *,
    body: bytes | None = None,
    duration: str | None = "10s",
    requests: int | None = None,
    concurrency: int = 50,
    method: str = "POST",
    content_type: str = "application/json",
    headers: Sequence[str] = (),
    timeout_s: int = 20,
) -> HeyResult:
    """Run hey against ``url`` and return its parsed summary; :class:`HeyError` if it cannot run."""
    with tempfile.TemporaryDirectory(prefix="kfchain-hey-") as tmp:
        body_file = None
        if body is not None:  # a file keeps large bodies off the command line
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
        command = hey_command(
            url,
            body_file=body_file,
            duration=duration,
            requests=requests,
            concurrency=concurrency,
            method=method,
            content_type=content_type,
            headers=headers,
            timeout_s=timeout_s,
            hey=find_hey(),
        )
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise HeyError(
            f"hey exited with {completed.returncode}: {(completed.stderr or completed.stdout).strip()[:500]}"
        )
    return parse_hey_summary(completed.stdout)
