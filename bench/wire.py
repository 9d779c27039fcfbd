"""HTTP/1.1 over asyncio for the Python load generators, parsed with httptools."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """One request to send again and again: where to, and its encoded bytes."""

    host: str
    port: int
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def encode(self) -> bytes:
        """Encode the request once, as a keep-alive HTTP/1.1 request."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


def parse_header(text: str) -> tuple[str, str]:
    """Split a `Name: value` header given on the command line."""
    name, separator, value = text.partition(":")
    if not separator or not name.strip():
        raise ValueError(f"header {text!r} is not of the form 'Name: value'")
    return name.strip(), value.strip()


def percentile(sorted_values: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of an ascending list (0 when it is empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Tally:
    """The results of one load run: latencies in seconds, status counts and errors."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def count_status(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def count_error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1
