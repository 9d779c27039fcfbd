"""Responses on demand: what a `Prefer` header or the chaos settings do to one operation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from broxi_mock.spec import Operation, Spec
from mock_server.auth import CHALLENGE
from mock_server.chaos import ChaosDraw, ChaosPlan
from mock_server.errors import ApiError
from mock_server.generation import BodyGenerator
from mock_server.prefer import Choice, DocumentedResponse, ResponseCatalog, parse_prefer
from mock_server.ratelimit import RateLimitState, rate_limited_error
from mock_server.validation import JSON_MEDIA_TYPE

Sleep = Callable[[float], Awaitable[None]]
PREFER_REASON = "requested with the Prefer header"
CHAOS_REASON = "injected by the chaos settings"


class ScenarioError(ApiError):
    """An error status a client requested with `Prefer`, or one the chaos settings injected.

    Its response carries the usual envelope, but it is logged as expected behaviour, not as a
    server failure.
    """


class OperationScenarios:
    """Applies `Prefer` and chaos to the requests of one operation."""

    def __init__(
        self,
        catalog: ResponseCatalog,
        chaos: ChaosPlan | None,
        generator: BodyGenerator,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.catalog = catalog
        self.chaos = chaos
        self.generator = generator
        self.sleep = sleep

    async def prepare(self, request: Request, state: RateLimitState | None) -> Choice | None:
        """Delay the request and raise a requested or injected error; return a success choice.

        Runs after authentication and rate limiting, so their 401 and 429 responses stay as
        they are, and before request validation, so an error status never depends on the body.
        """
        choice = self._preference(request)
        draw = self._draw(request)
        if draw is not None and draw.latency_ms:
            await self.sleep(draw.latency_ms / 1000)
        if choice is not None and choice.status >= 400:
            raise self._error(choice.response, choice, state, PREFER_REASON)
        if draw is not None and draw.failure_status is not None:
            response = self.catalog.responses[draw.failure_status]
            raise self._error(response, None, state, CHAOS_REASON)
        return choice

    def respond(self, choice: Choice, media_type: str, body: Any) -> Response | None:
        """Build the JSON response of a success choice, or return None for the handler to respond.

        Event streams have no examples, so a success preference on a streamed request leaves
        the stream to the handler. A request body with `"stream": true` requests a stream
        whatever the Accept header, as the spec describes for running a flow.
        """
        response = choice.response
        if response.schema is None or media_type != JSON_MEDIA_TYPE:
            return None
        if isinstance(body, dict) and body.get("stream") is True:
            return None
        if choice.example is not None:
            body = response.examples[choice.example]
        elif response.examples and not choice.dynamic:
            body = next(iter(response.examples.values()))
        else:
            # As in Prism, a response without examples gets a generated body.
            body = self._generate(response)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(content, response.status, media_type=JSON_MEDIA_TYPE)

    def _preference(self, request: Request) -> Choice | None:
        values = request.headers.getlist("prefer")
        if not values:
            return None
        header = ", ".join(values)
        preference = parse_prefer(header, sorted(self.catalog.responses))
        if preference is None:
            return None
        request.scope["broxi.prefer"] = header
        return self.catalog.choose(preference)

    def _draw(self, request: Request) -> ChaosDraw | None:
        if self.chaos is None:
            return None
        draw = self.chaos.draw()
        request.scope["broxi.chaos"] = draw
        return draw

    def _error(
        self,
        response: DocumentedResponse,
        choice: Choice | None,
        state: RateLimitState | None,
        reason: str,
    ) -> ScenarioError:
        status = response.status
        if choice is not None and choice.example is not None:
            message, details = _envelope_parts(response.examples[choice.example])
        elif choice is not None and choice.dynamic and response.schema is not None:
            message, details = _envelope_parts(self._generate(response))
        elif status == 429 and state is not None:
            natural = rate_limited_error(state)
            message, details = natural.message, natural.details
        else:
            message = _first_sentence(response.description)
            details = {"reason": reason}
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(_retry_after(details, state))
        if status == 401:
            headers["WWW-Authenticate"] = CHALLENGE
        return ScenarioError(status, message, details, headers)

    def _generate(self, response: DocumentedResponse) -> Any:
        key = f"{self.catalog.operation_id} {response.status}"
        return self.generator.generate(key, response.schema)


def build_scenarios(
    spec: Spec,
    operation: Operation,
    chaos: dict[str, ChaosPlan],
    generator: BodyGenerator,
) -> OperationScenarios:
    """Make the scenarios of one operation from its documented responses and chaos plan."""
    catalog = ResponseCatalog(spec, operation)
    return OperationScenarios(catalog, chaos.get(operation.operation_id), generator)


def _envelope_parts(envelope: Any) -> tuple[str, dict[str, Any] | None]:
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(error, dict):
        return "The server answered with an error.", None
    return str(error.get("message") or "The server answered with an error."), error.get("details")


def _retry_after(details: dict[str, Any] | None, state: RateLimitState | None) -> int:
    named = (details or {}).get("retry_after")
    if isinstance(named, int) and not isinstance(named, bool) and named >= 1:
        return named
    return state.retry_after if state is not None else 1


def _first_sentence(description: str) -> str:
    # The spec marks statuses it adds to the API reference with an "Extension:" label.
    text = " ".join(description.split()).removeprefix("Extension: ")
    end = text.find(". ")
    sentence = text if end < 0 else text[: end + 1]
    return sentence if sentence.endswith(".") else sentence + "."
