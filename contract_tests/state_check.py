"""The `state` check: responses agree with the request, the flow listing and later reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from schemathesis import CheckContext, Response

from contract_tests.client import FollowUpClient, curl_command
from contract_tests.contract import excerpt
from contract_tests.exchange import ApiCase, Exchange, KitCheck, ProbeOnce, read_exchange
from contract_tests.failures import Problem, StateFailure, raise_problems
from contract_tests.state import (
    history_problems,
    page_problems,
    run_problems,
    same_run_problems,
    session_problems,
    usage_report_problems,
)
from contract_tests.streaming import stream_problems

# A finished run may take a moment to be stored; poll it this often at most.
RUN_POLLS = 10
RUN_POLL_DELAY = 0.2
CATALOGUE_PAGE = 100
CATALOGUE_MAX_PAGES = 50
HISTORY_TAIL = 20

Catalogue = dict[str, dict[str, Any]]


class FollowUpError(Exception):
    """A follow-up request of the kit failed or was refused; carries the problem to report."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.title)
        self.problem = problem


def fetch_json(client: FollowUpClient, url: str, authorization: str | None, what: str) -> Any:
    """GET a URL that must return 200 with JSON, or raise `FollowUpError`."""
    curl = curl_command("GET", url)
    try:
        reply = client.get(url, authorization)
    except httpx.HTTPError as exc:
        raise FollowUpError(
            Problem("Follow-up request failed", f"a response for {what}", str(exc), curl)
        ) from exc
    if reply.status_code != 200:
        got = f"{reply.status_code}: {excerpt(reply.content)}"
        raise FollowUpError(
            Problem(
                f"{what[0].upper()}{what[1:]} is not retrievable", f"200 with {what}", got, curl
            )
        )
    try:
        return reply.json()
    except ValueError as exc:
        raise FollowUpError(
            Problem(
                f"{what[0].upper()}{what[1:]} is not JSON",
                "a JSON body",
                excerpt(reply.content),
                curl,
            )
        ) from exc


def fetch_finished_run(
    client: FollowUpClient, url: str, authorization: str | None
) -> tuple[Any, Problem | None]:
    """Read a run, polling briefly while it still reports `running`."""
    run: Any = None
    for attempt in range(RUN_POLLS):
        try:
            run = fetch_json(client, url, authorization, "the created run")
        except FollowUpError as error:
            return None, error.problem
        if not isinstance(run, dict) or run.get("status") != "running":
            break
        if attempt + 1 < RUN_POLLS:
            time.sleep(RUN_POLL_DELAY)
    return run, None


class StateCheck(KitCheck):
    """Runs, sessions, flows and pages agree with what was sent and with what is read back."""

    def __init__(self) -> None:
        super().__init__()
        self.catalogue: Catalogue | None = None
        self.catalogue_read = False
        self.probes = ProbeOnce()

    def after_response(self, ctx: CheckContext, response: Response, case: ApiCase) -> bool | None:
        exchange = read_exchange(case, response)
        handler = HANDLERS.get(exchange.operation_id)
        if handler is None or not exchange.is_success:
            return None
        try:
            problems = self._read_catalogue_once(exchange)
            problems += handler(self, exchange)
            if self.probes.first(exchange):
                problems += self._probe_unknown(exchange)
        except FollowUpError as error:
            problems = [error.problem]
        raise_problems(StateFailure, exchange.label, problems)
        return None

    def _probe_unknown(self, exchange: Exchange) -> list[Problem]:
        """Read a resource that does not exist; it must not succeed."""
        url = exchange.unknown_resource_url()
        if url is None:
            return []
        try:
            reply = self.client.get(url, exchange.authorization)
        except httpx.HTTPError:
            return []
        if reply.status_code >= 300:
            return []
        expected = "404 for an id that was never created"
        got = f"{reply.status_code}: {excerpt(reply.content)}"
        return [
            Problem(
                "Success for a resource that does not exist",
                expected,
                got,
                curl_command("GET", url),
            )
        ]

    def _read_catalogue_once(self, exchange: Exchange) -> list[Problem]:
        """Read every listed flow on the first success; later checks look flows up in it."""
        if self.catalogue_read:
            return []
        self.catalogue_read = True
        self.catalogue, problems = read_catalogue(self.client, exchange)
        return problems

    def list_flows(self, exchange: Exchange) -> list[Problem]:
        default = exchange.contract.parameter_default("listFlows", "limit") or 20
        problems = page_problems(exchange.body, "flows", exchange.query(), default)
        requested_status = exchange.query().get("status")
        flows = exchange.body.get("flows") if isinstance(exchange.body, dict) else None
        if requested_status and isinstance(flows, list):
            other = [
                f.get("status")
                for f in flows
                if isinstance(f, dict) and f.get("status") != requested_status
            ]
            if other:
                problems.append(
                    Problem(
                        "Listing ignores the status filter",
                        f"only flows with status {requested_status!r}",
                        f"status {other[0]!r}",
                    )
                )
        return problems

    def get_flow(self, exchange: Exchange) -> list[Problem]:
        flow_id = exchange.path_parameter("flow_id")
        problems = self._flow_problems(exchange, flow_id, must_run=False)
        listed = (self.catalogue or {}).get(str(flow_id))
        if listed is None or not isinstance(exchange.body, dict):
            return problems
        for key in ("id", "name", "description", "status", "created_at", "updated_at"):
            if exchange.body.get(key) != listed.get(key):
                problems.append(
                    Problem(
                        "Flow differs from its listing",
                        f"{key} {listed.get(key)!r}",
                        f"{key} {exchange.body.get(key)!r}",
                    )
                )
                break
        return problems

    def run_flow(self, exchange: Exchange) -> list[Problem]:
        if exchange.media_type == "text/event-stream":
            return self.stream_flow(exchange)
        problems = self._flow_problems(exchange, exchange.path_parameter("flow_id"), must_run=True)
        run = exchange.body
        if not isinstance(run, dict) or not isinstance(run.get("id"), str):
            return problems
        problems += run_problems(run)
        url = exchange.contract.url(exchange.base_url, "getRun", run_id=run["id"])
        if url is not None:
            fetched = fetch_json(self.client, url, exchange.authorization, "the created run")
            problems += same_run_problems(run, fetched, curl_command("GET", url))
        reply = run.get("output") if run.get("status") == "completed" else None
        return problems + self._history_check(exchange, reply)

    def stream_flow(self, exchange: Exchange) -> list[Problem]:
        problems = self._flow_problems(exchange, exchange.path_parameter("flow_id"), must_run=True)
        reading, broken = stream_problems(
            exchange.contract, exchange.headers, exchange.response.content, False
        )
        if exchange.is_resumed:
            # A resumed stream replays an earlier run, so it adds nothing to the session.
            return problems
        if broken or reading.terminal is None:
            # The streaming check reports a broken stream; there is no finished run to compare.
            return problems
        reply = reading.output if reading.terminal.get("type") == "end" else None
        return problems + self._history_check(exchange, reply)

    def get_run(self, exchange: Exchange) -> list[Problem]:
        run = exchange.body
        problems = run_problems(run)
        requested_id = exchange.path_parameter("run_id")
        if isinstance(run, dict) and requested_id is not None and run.get("id") != requested_id:
            problems.append(
                Problem(
                    "Run read back has another id", f"id {requested_id!r}", f"id {run.get('id')!r}"
                )
            )
        return problems

    def create_session(self, exchange: Exchange) -> list[Problem]:
        session = exchange.body
        problems = session_problems(session, exchange.case.body)
        problems += self._flow_problems(exchange, exchange.sent("flow_id"), must_run=False)
        if not isinstance(session, dict) or not isinstance(session.get("id"), str):
            return problems
        url = exchange.contract.url(
            exchange.base_url, "getSessionHistory", session_id=session["id"]
        )
        if url is None:
            return problems
        history = fetch_json(self.client, url, exchange.authorization, "the new session's history")
        if isinstance(history, dict) and (history.get("total"), history.get("messages")) != (0, []):
            problems.append(
                Problem(
                    "New session has messages",
                    "total 0 and no messages",
                    f"total {history.get('total')!r}",
                    curl_command("GET", url),
                )
            )
        return problems

    def session_history(self, exchange: Exchange) -> list[Problem]:
        default = exchange.contract.parameter_default("getSessionHistory", "limit") or 100
        problems = page_problems(exchange.body, "messages", exchange.query(), default)
        requested_id = exchange.path_parameter("session_id")
        if isinstance(exchange.body, dict) and exchange.body.get("session_id") != requested_id:
            problems.append(
                Problem(
                    "History of another session",
                    f"session_id {requested_id!r}",
                    f"session_id {exchange.body.get('session_id')!r}",
                )
            )
        return problems

    def usage(self, exchange: Exchange) -> list[Problem]:
        return usage_report_problems(exchange.body)

    def _history_check(self, exchange: Exchange, reply: Any) -> list[Problem]:
        session_id, sent = exchange.sent("session_id"), exchange.sent("input")
        if not isinstance(session_id, str) or not isinstance(sent, str):
            return []
        url = exchange.contract.url(exchange.base_url, "getSessionHistory", session_id=session_id)
        if url is None:
            return []
        head = fetch_json(
            self.client, url + "?limit=1", exchange.authorization, "the session history"
        )
        total = head.get("total") if isinstance(head, dict) else None
        if not isinstance(total, int):
            return []
        tail_url = f"{url}?offset={max(0, total - HISTORY_TAIL)}&limit={HISTORY_TAIL}"
        tail = fetch_json(self.client, tail_url, exchange.authorization, "the session history")
        messages = tail.get("messages") if isinstance(tail, dict) else None
        if not isinstance(messages, list):
            return []
        text = reply if isinstance(reply, str) else None
        return history_problems(messages, sent, text, curl_command("GET", tail_url))

    def _flow_problems(self, exchange: Exchange, flow_id: Any, must_run: bool) -> list[Problem]:
        catalogue = self.catalogue
        if catalogue is None or not isinstance(flow_id, str):
            return []
        listed = catalogue.get(flow_id)
        if listed is None:
            expected = "a 4xx for a flow that GET /flows does not list"
            got = f"{exchange.status} for flow_id {flow_id!r}"
            return [Problem("Success for a flow that does not exist", expected, got)]
        if must_run and listed.get("status") != "published":
            expected = "403: only published flows can run"
            return [Problem("Unpublished flow ran", expected, f"{exchange.status} for {flow_id!r}")]
        return []


def read_catalogue(
    client: FollowUpClient, exchange: Exchange
) -> tuple[Catalogue | None, list[Problem]]:
    """Page through GET /flows and check that the pages agree with each other and with total."""
    url = exchange.contract.url(exchange.base_url, "listFlows")
    if url is None:
        return None, []
    flows: Catalogue = {}
    totals: set[int] = set()
    seen = 0
    for page in range(CATALOGUE_MAX_PAGES):
        page_url = f"{url}?limit={CATALOGUE_PAGE}&offset={page * CATALOGUE_PAGE}"
        body = fetch_json(client, page_url, exchange.authorization, "the flow listing")
        items = body.get("flows") if isinstance(body, dict) else None
        total = body.get("total") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(total, int):
            return None, []
        totals.add(total)
        seen += len(items)
        flows.update({str(f.get("id")): f for f in items if isinstance(f, dict)})
        if not items or seen >= total:
            break
    curl = curl_command("GET", f"{url}?limit={CATALOGUE_PAGE}&offset=0")
    if len(totals) > 1 or seen != max(totals) or len(flows) != seen:
        expected = f"pages that together list total ({sorted(totals)}) distinct flows"
        got = f"{seen} flows over the pages, {len(flows)} distinct"
        return flows, [Problem("Flow listing pages disagree with total", expected, got, curl)]
    return flows, []


HANDLERS: dict[str, Callable[[StateCheck, Exchange], list[Problem]]] = {
    "listFlows": StateCheck.list_flows,
    "getFlow": StateCheck.get_flow,
    "runFlow": StateCheck.run_flow,
    "streamFlow": StateCheck.stream_flow,
    "getRun": StateCheck.get_run,
    "createSession": StateCheck.create_session,
    "getSessionHistory": StateCheck.session_history,
    "getUsage": StateCheck.usage,
}
