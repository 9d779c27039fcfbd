"""A Python load generator for machines without wrk: keep-alive connections on uvloop.

Each connection sends its request again as soon as the previous response is complete, like
wrk does. One Python process is slower than wrk, so on a fast server this generator can be the
bottleneck, and then the ratios it reports are closer to 1 than the truth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any, cast

import httptools
import uvloop

from bench.wire import Tally, Target, parse_header, percentile


class LoadConnection(asyncio.Protocol):
    """One keep-alive connection that repeats a request until the deadline passes."""

    def __init__(self, request: bytes, deadline: float, tally: Tally) -> None:
        self.request = request
        self.deadline = deadline
        self.tally = tally
        self.parser = httptools.HttpResponseParser(self)
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.tally.count_error("invalid response")
            self._finish()

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        self.tally.latencies.append(now - self.sent_at)
        self.tally.count_status(self.parser.get_status_code())
        if now < self.deadline and self.parser.should_keep_alive():
            self._send()
        else:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.tally.count_error("connection closed")
            self.finished.set_result(None)

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def generate_load(target: Target, connections: int, duration: float) -> dict[str, Any]:
    """Load `target` from `connections` connections for `duration` seconds."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    request = target.encode()
    started = time.perf_counter()
    deadline = started + duration
    protocols = []
    for _ in range(connections):
        try:
            _, protocol = await loop.create_connection(
                lambda: LoadConnection(request, deadline, tally), target.host, target.port
            )
            protocols.append(protocol)
        except OSError as exc:
            tally.count_error(f"connect failed: {exc.strerror}")
    finishing = [protocol.finished for protocol in protocols]
    # A response that never comes must not hold the run forever: wait at most 10 s past the end.
    _, pending = await asyncio.wait(finishing, timeout=duration + 10) if finishing else ((), ())
    for _ in pending:
        tally.count_error("timed out")
    elapsed = time.perf_counter() - started
    return summarise(tally, elapsed)


def summarise(tally: Tally, elapsed: float) -> dict[str, Any]:
    """Turn a tally into the result every load generator reports."""
    latencies = sorted(tally.latencies)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "errors": tally.errors,
    }


def main() -> None:
    """Run one load and print its result as one JSON line."""
    parser = argparse.ArgumentParser(description="Load one URL from keep-alive connections.")
    parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1.")
    parser.add_argument("--method", default="GET", help="HTTP method.")
    parser.add_argument("--path", required=True, help="Request path with query string.")
    parser.add_argument("--header", action="append", default=[], help="A 'Name: value' header.")
    parser.add_argument("--body-file", type=Path, default=None, help="File holding the body.")
    parser.add_argument("--connections", type=int, default=50, help="Open connections.")
    parser.add_argument("--duration", type=float, default=5.0, help="Seconds of load.")
    args = parser.parse_args()

    body = args.body_file.read_bytes() if args.body_file else b""
    headers = tuple(parse_header(text) for text in args.header)
    target = Target("127.0.0.1", args.port, args.method, args.path, headers, body)
    result = uvloop.run(generate_load(target, args.connections, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
