"""The reference app: bare Starlette on the mock's uvicorn stack, serving fixed bytes.

It serves the same routes as the mock with bodies captured from the mock beforehand, so both
servers put the same bytes on the wire. Its only per-request work is a bearer-prefix check,
which makes it the fastest this server stack can serve these routes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

JSON = "application/json"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def build_reference(bodies: dict[str, Any], first_delay: float, every_delay: float) -> Starlette:
    """Build the reference app from captured bodies (see `bench.capture`)."""
    flows = bytes(base64.b64decode(bodies["list_flows"]))
    flow = bytes(base64.b64decode(bodies["get_flow"]))
    run = bytes(base64.b64decode(bodies["run_flow"]))
    unauthorized = bytes(base64.b64decode(bodies["unauthorized"]))
    events = [bytes(base64.b64decode(event)) for event in bodies["stream_events"]]

    def is_bearer(request: Request) -> bool:
        return request.headers.get("authorization", "").startswith("Bearer ")

    def denied() -> Response:
        return Response(unauthorized, 401, media_type=JSON)

    async def list_flows(request: Request) -> Response:
        return Response(flows, media_type=JSON) if is_bearer(request) else denied()

    async def get_flow(request: Request) -> Response:
        return Response(flow, media_type=JSON) if is_bearer(request) else denied()

    async def run_flow(request: Request) -> Response:
        await request.body()
        return Response(run, media_type=JSON) if is_bearer(request) else denied()

    async def paced() -> AsyncIterator[bytes]:
        # The same pacing as the mock: the first event at once, then a delay before each token.
        yield events[0]
        await asyncio.sleep(first_delay)
        for index, event in enumerate(events[1:-1]):
            if index:
                await asyncio.sleep(every_delay)
            yield event
        yield events[-1]

    async def stream_flow(request: Request) -> Response:
        await request.body()
        if not is_bearer(request):
            return denied()
        return StreamingResponse(paced(), media_type="text/event-stream", headers=STREAM_HEADERS)

    routes = [
        Route("/v1/flows", list_flows, methods=["GET"]),
        Route("/v1/flows/{flow_id}", get_flow, methods=["GET"]),
        Route("/v1/flows/{flow_id}/run", run_flow, methods=["POST"]),
        Route("/v1/flows/{flow_id}/stream", stream_flow, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def main() -> None:
    """Serve the reference app until stopped."""
    parser = argparse.ArgumentParser(description="Serve the benchmark's reference app.")
    parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1.")
    parser.add_argument("--bodies", type=Path, required=True, help="JSON file of bodies.")
    parser.add_argument("--first-delay", type=float, default=0.0, help="Seconds before tokens.")
    parser.add_argument("--every-delay", type=float, default=0.0, help="Seconds between tokens.")
    args = parser.parse_args()

    bodies = json.loads(args.bodies.read_text())
    app = build_reference(bodies, args.first_delay, args.every_delay)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
