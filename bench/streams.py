"""Open many paced event streams at a steady rate, read each to its end, and time them."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any, cast

import httptools
import uvloop

from bench.wire import Target, parse_header, percentile

END_MARKER = b'"type":"end"'
# An event ends with a blank line; servers may end lines with CRLF or LF.
EVENT_END = re.compile(rb"\r\n\r\n|\n\n")


class StreamConnection(asyncio.Protocol):
    """One stream request: records when its first event arrives and whether it ended."""

    def __init__(self, request: bytes, opened_at: float, gauge: list[int]) -> None:
        self.request = request
        self.opened_at = opened_at
        self.gauge = gauge
        self.parser = httptools.HttpResponseParser(self)
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.first_event_at: float | None = None
        self.body = bytearray()
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.connected_at = time.perf_counter()
        self.gauge[0] += 1
        self.gauge[1] = max(self.gauge[1], self.gauge[0])
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish("invalid response")

    def on_body(self, chunk: bytes) -> None:
        self.body.extend(chunk)
        if self.first_event_at is None and EVENT_END.search(self.body):
            self.first_event_at = time.perf_counter()

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            self._finish(f"status {status}")
        elif END_MARKER not in self.body:
            self._finish("stream ended without an end event")
        else:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("connection closed early")

    def _finish(self, error: str | None) -> None:
        if self.finished.done():
            return
        self.gauge[0] -= 1
        self.error = error
        self.finished.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def open_stream(target: Target, request: bytes, gauge: list[int]) -> StreamConnection:
    """Open one stream; a failed connect is recorded on the returned connection."""
    loop = asyncio.get_running_loop()
    opened_at = time.perf_counter()
    connection = StreamConnection(request, opened_at, gauge)
    try:
        await loop.create_connection(lambda: connection, target.host, target.port)
    except OSError as exc:
        connection.error = f"connect failed: {exc.strerror}"
        connection.finished.set_result(None)
    return connection


async def run_streams(target: Target, count: int, ramp: float, timeout: float) -> dict[str, Any]:
    """Open `count` streams evenly over `ramp` seconds and wait at most `timeout` for them."""
    request = target.encode()
    gauge = [0, 0]  # streams open now, most streams open at once
    started = time.perf_counter()
    tasks = []
    for index in range(count):
        delay = started + ramp * index / count - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(open_stream(target, request, gauge)))
    connections = await asyncio.gather(*tasks)
    remaining = max(0.1, started + timeout - time.perf_counter())
    _, pending = await asyncio.wait([c.finished for c in connections], timeout=remaining)
    return summarise(connections, gauge[1], len(pending), time.perf_counter() - started)


def summarise(
    connections: list[StreamConnection], most_open: int, timed_out: int, elapsed: float
) -> dict[str, Any]:
    """Report first-event times, errors and the most streams open at once."""
    first = sorted(
        c.first_event_at - c.opened_at for c in connections if c.first_event_at is not None
    )
    errors: dict[str, int] = {}
    for connection in connections:
        if connection.finished.done() and connection.error is not None:
            errors[connection.error] = errors.get(connection.error, 0) + 1
    if timed_out:
        errors["timed out"] = timed_out
    return {
        "streams": len(connections),
        "completed": sum(1 for c in connections if c.finished.done() and c.error is None),
        "most_open": most_open,
        "events": sum(len(EVENT_END.findall(c.body)) for c in connections),
        "first_event_p50_ms": percentile(first, 50) * 1000,
        "first_event_p99_ms": percentile(first, 99) * 1000,
        "seconds": elapsed,
        "errors": errors,
    }


def main() -> None:
    """Run the streams and print the result as one JSON line."""
    parser = argparse.ArgumentParser(description="Open many event streams and read them.")
    parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1.")
    parser.add_argument("--path", required=True, help="Path of the stream operation.")
    parser.add_argument("--header", action="append", default=[], help="A 'Name: value' header.")
    parser.add_argument("--body-file", type=Path, required=True, help="File holding the body.")
    parser.add_argument("--count", type=int, default=1000, help="Streams to open.")
    parser.add_argument("--ramp", type=float, default=1.0, help="Seconds over which to open them.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds before giving up.")
    args = parser.parse_args()

    headers = tuple(parse_header(text) for text in args.header)
    target = Target("127.0.0.1", args.port, "POST", args.path, headers, args.body_file.read_bytes())
    result = uvloop.run(run_streams(target, args.count, args.ramp, args.timeout))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
