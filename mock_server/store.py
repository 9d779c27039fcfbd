"""The store behind every endpoint: fixtures plus the runs and sessions made at run time."""

from __future__ import annotations

import abc
import random
import secrets
from collections import OrderedDict
from dataclasses import replace

from mock_server.fixtures import Fixtures, FlowFixture, TokenFixture
from mock_server.history import generate_usage_history
from mock_server.records import MessageRecord, RunRecord, SessionRecord, UsageEntry

DEFAULT_MAX_RUNS = 10_000


def new_id(prefix: str) -> str:
    """Make an identifier that is never handed out twice, also across resets and restarts."""
    return f"{prefix}_{secrets.token_hex(8)}"


class Store(abc.ABC):
    """Everything the handlers read and write; backends implement this interface."""

    @abc.abstractmethod
    def get_token(self, token: str) -> TokenFixture | None: ...

    @abc.abstractmethod
    def get_flow(self, flow_id: str) -> FlowFixture | None: ...

    @abc.abstractmethod
    def list_flows(self) -> list[FlowFixture]: ...

    @abc.abstractmethod
    def add_run(self, run: RunRecord) -> None: ...

    @abc.abstractmethod
    def save_run(self, run: RunRecord) -> None: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    def add_session(self, session: SessionRecord) -> None: ...

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    def add_messages(self, session_id: str, messages: list[MessageRecord]) -> None: ...

    @abc.abstractmethod
    def list_messages(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MessageRecord], int]: ...

    @abc.abstractmethod
    def add_usage(self, entry: UsageEntry) -> None: ...

    @abc.abstractmethod
    def list_usage(self) -> list[UsageEntry]: ...

    @abc.abstractmethod
    def reset(self) -> None: ...


class MemoryStore(Store):
    """A store in process memory, seeded from fixtures, with a bound on kept runs."""

    def __init__(self, fixtures: Fixtures, seed: int = 0, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self.fixtures = fixtures
        self.seed = seed
        self.max_runs = max_runs
        self._tokens = {token.token: token for token in fixtures.tokens}
        self._flows = {flow.id: flow for flow in fixtures.flows}
        self.reset()

    def reset(self) -> None:
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._sessions: dict[str, SessionRecord] = {}
        self._messages: dict[str, list[MessageRecord]] = {}
        for fixture in self.fixtures.sessions:
            session = SessionRecord(
                id=fixture.id,
                flow_id=fixture.flow_id,
                user_id=fixture.user_id,
                created_at=fixture.created_at,
                metadata=dict(fixture.metadata),
                status=fixture.status,
            )
            self._sessions[session.id] = session
            self._messages[session.id] = [
                MessageRecord(f"msg_{index + 1:03d}", m.role, m.content, m.timestamp)
                for index, m in enumerate(fixture.messages)
            ]
        rng = random.Random(self.seed)
        self._usage = generate_usage_history(self.fixtures, rng)

    def get_token(self, token: str) -> TokenFixture | None:
        return self._tokens.get(token)

    def get_flow(self, flow_id: str) -> FlowFixture | None:
        return self._flows.get(flow_id)

    def list_flows(self) -> list[FlowFixture]:
        return list(self._flows.values())

    def add_run(self, run: RunRecord) -> None:
        self._runs[run.id] = run
        self._evict_finished_runs()

    def save_run(self, run: RunRecord) -> None:
        if run.id in self._runs:
            self._runs[run.id] = run

    def get_run(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return replace(run) if run is not None else None

    def add_session(self, session: SessionRecord) -> None:
        self._sessions[session.id] = session
        self._messages[session.id] = []

    def get_session(self, session_id: str) -> SessionRecord | None:
        return self._sessions.get(session_id)

    def add_messages(self, session_id: str, messages: list[MessageRecord]) -> None:
        self._messages.setdefault(session_id, []).extend(messages)

    def list_messages(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        messages = self._messages.get(session_id, [])
        end = None if limit is None else offset + limit
        return messages[offset:end], len(messages)

    def add_usage(self, entry: UsageEntry) -> None:
        self._usage.append(entry)

    def list_usage(self) -> list[UsageEntry]:
        return list(self._usage)

    def _evict_finished_runs(self) -> None:
        excess = len(self._runs) - self.max_runs
        if excess <= 0:
            return
        for run_id in [rid for rid, run in self._runs.items() if run.status != "running"][:excess]:
            del self._runs[run_id]
