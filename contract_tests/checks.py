"""The kit's Schemathesis checks; importing this module registers them.

Each check is a class so that it keeps state for one run (the rate-limit probe, the flow
catalogue) and so that Schemathesis serialises its calls with one lock per check.
"""

from __future__ import annotations

import secrets

import httpx
import schemathesis
from schemathesis import CheckContext, Response

from contract_tests.client import LEDGER, MAX_WAIT, curl_command, parse_retry_after
from contract_tests.contract import excerpt, is_json_media_type
from contract_tests.envelope import envelope_problems
from contract_tests.exchange import ApiCase, Exchange, KitCheck, ProbeOnce, read_exchange
from contract_tests.failures import (
    ErrorEnvelopeFailure,
    Problem,
    RateLimitFailure,
    StreamFailure,
    raise_problems,
)
from contract_tests.ratelimits import QUOTA_HEADERS, Quota, header_problems, sequence_problems
from contract_tests.settings import current
from contract_tests.state_check import StateCheck, fetch_finished_run
from contract_tests.streaming import (
    StreamReading,
    error_stream_problems,
    run_agreement_problems,
    stream_problems,
)
from contract_tests.webhooks import WebhookCheck

STREAMING_OPERATIONS = ("streamFlow", "runFlow")
PROBE_REQUESTS = 3


class ErrorEnvelopeCheck(KitCheck):
    """Every 4xx and 5xx body is the envelope, its code belongs to its status, ids agree."""

    def __init__(self) -> None:
        super().__init__()
        self.probes = ProbeOnce()

    def after_response(self, ctx: CheckContext, response: Response, case: ApiCase) -> bool | None:
        exchange = read_exchange(case, response)
        problems = envelope_problems(
            exchange.contract, exchange.status, exchange.headers, response.content
        )
        if self.probes.first(exchange):
            problems += self._probe_not_found(exchange)
        raise_problems(ErrorEnvelopeFailure, exchange.label, problems)
        return None

    def _probe_not_found(self, exchange: Exchange) -> list[Problem]:
        """Read a resource that does not exist; its error must be the envelope too."""
        url = exchange.unknown_resource_url()
        if url is None:
            return []
        try:
            reply = self.client.get(url, exchange.authorization)
        except httpx.HTTPError:
            return []
        found = envelope_problems(
            exchange.contract, reply.status_code, _lower(reply.headers), reply.content
        )
        curl = curl_command("GET", url)
        return [Problem(p.title, p.expected, p.got, curl) for p in found]


class RateLimitCheck(KitCheck):
    """Rate-limit headers on every response to a known token, and Remaining drops per request."""

    def __init__(self) -> None:
        super().__init__()
        self.probed = False

    def after_response(self, ctx: CheckContext, response: Response, case: ApiCase) -> bool | None:
        exchange = read_exchange(case, response)
        if exchange.authorization is None:
            return None
        documented = exchange.contract.required_headers(exchange.operation_id, exchange.status)
        required = set(QUOTA_HEADERS) <= documented
        quota, problems = header_problems(exchange.status, exchange.headers, required)
        if exchange.status == 429:
            # The engine waits out this 429 and sends the request again; count the wait.
            delay = parse_retry_after(exchange.headers.get("retry-after"))
            if delay is not None:
                LEDGER.record(min(delay, MAX_WAIT))
        if quota is not None and exchange.is_success and not self.probed:
            self.probed = True
            problems += self._probe(exchange)
        raise_problems(RateLimitFailure, exchange.label, problems)
        return None

    def _probe(self, exchange: Exchange) -> list[Problem]:
        """Send a few quick reads and check that each one uses up one request."""
        url = exchange.contract.url(exchange.base_url, "listFlows")
        if url is None:
            return []
        url += "?limit=1"
        quotas: list[Quota] = []
        for _ in range(PROBE_REQUESTS):
            try:
                reply = self.client.get(url, exchange.authorization)
            except httpx.HTTPError:
                return []
            quota, problems = header_problems(reply.status_code, _lower(reply.headers), True)
            if quota is None or problems or reply.status_code != 200:
                return problems
            quotas.append(quota)
        return sequence_problems(
            quotas, exact=current().workers == 1, curl=curl_command("GET", url)
        )


class StreamingCheck(KitCheck):
    """Streams are well framed, ordered, about one run, and add up to the stored run."""

    def __init__(self) -> None:
        super().__init__()
        self.probed = False

    def after_response(self, ctx: CheckContext, response: Response, case: ApiCase) -> bool | None:
        exchange = read_exchange(case, response)
        if not _is_stream_exchange(exchange):
            return None
        problems = error_stream_problems(exchange.status, exchange.headers)
        if exchange.status == 200:
            reading, found = stream_problems(
                exchange.contract,
                exchange.headers,
                response.content,
                response.stream_cut_short,
                exchange.is_resumed,
            )
            problems += found
            if not found and not exchange.is_resumed:
                problems += self._agreement(exchange, reading)
        if exchange.operation_id == "streamFlow" and not self.probed and exchange.is_success:
            self.probed = True
            problems += self._probe_up_front_errors(exchange)
        raise_problems(StreamFailure, exchange.label, problems)
        return None

    def _agreement(self, exchange: Exchange, reading: StreamReading) -> list[Problem]:
        flow_id = exchange.path_parameter("flow_id")
        if reading.run_id is None or reading.terminal is None or flow_id is None:
            return []
        url = exchange.contract.url(exchange.base_url, "getRun", run_id=str(reading.run_id))
        if url is None:
            return []
        run, problem = fetch_finished_run(self.client, url, exchange.authorization)
        if problem is not None:
            return [problem]
        return run_agreement_problems(reading, run, flow_id, curl_command("GET", url))

    def _probe_up_front_errors(self, exchange: Exchange) -> list[Problem]:
        """Stream from an unknown flow and without a token: both must be JSON errors."""
        unknown = f"flow_unknown_{secrets.token_hex(6)}"
        url = exchange.contract.url(exchange.base_url, "streamFlow", flow_id=unknown)
        if url is None:
            return []
        problems = []
        for authorization, status in ((exchange.authorization, 404), (None, 401)):
            try:
                reply = self.client.send("POST", url, authorization, {"input": "Hello"})
            except httpx.HTTPError as exc:
                return [Problem("Follow-up request failed", "a response", str(exc))]
            body = '{"input": "Hello"}'
            curl = curl_command("POST", url, body) if authorization else f"curl -X POST {url}"
            problems += _up_front_problems(reply, status, curl)
        return problems


def _up_front_problems(reply: httpx.Response, status: int, curl: str) -> list[Problem]:
    content_type = reply.headers.get("content-type", "")
    if reply.status_code == status and is_json_media_type(content_type.split(";")[0].strip()):
        return []
    reason = "unknown flow" if status == 404 else "missing token"
    expected = f"{status} with a JSON error (the {reason} is known before any event is sent)"
    got = f"{reply.status_code} {content_type!r}: {excerpt(reply.content)}"
    return [Problem(f"Stream request with a {reason} is not a JSON {status}", expected, got, curl)]


def _is_stream_exchange(exchange: Exchange) -> bool:
    if exchange.operation_id == "streamFlow":
        return True
    if exchange.operation_id != "runFlow":
        return False
    return exchange.sent("stream") is True or exchange.media_type == "text/event-stream"


def _lower(headers: httpx.Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _register(cls: type, name: str) -> None:
    # Schemathesis names a check after its class, so register a subclass named like the check.
    schemathesis.check(type(name, (cls,), {"__module__": cls.__module__}))


CHECK_CLASSES: dict[str, type] = {
    "error_envelope": ErrorEnvelopeCheck,
    "rate_limits": RateLimitCheck,
    "streaming": StreamingCheck,
    "state": StateCheck,
    "webhooks": WebhookCheck,
}
KIT_CHECKS = tuple(CHECK_CLASSES)
for _name, _cls in CHECK_CLASSES.items():
    _register(_cls, _name)
