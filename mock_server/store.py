"""The store behind every endpoint: fixtures plus the runs and sessions made at run time."""

from __future__ import annotations

import abc
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from mock_server.fixtures import Fixtures, FlowFixture, TokenFixture
from mock_server.history import (
    UsageKey,
    generate_usage_history,
    hour_key,
    merge_usage,
    usage_of_run,
)
from mock_server.records import MessageRecord, RunRecord, SessionRecord, UsageEntry

DEFAULT_MAX_RUNS = 10_000
RUN_STATUSES = ("running", "completed", "failed")
SESSION_STATUSES = ("active", "ended")


class IdGenerator:
    """Makes identifiers that grow with time and end in random hex digits.

    The time part (microseconds since the epoch, never repeated within a process) keeps ids
    unique across resets. The random part keeps them unique across restarts and processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def new(self, prefix: str) -> str:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            stamp = self._last
        return f"{prefix}_{stamp:x}{secrets.token_hex(4)}"


_IDS = IdGenerator()


def new_id(prefix: str) -> str:
    """Make an identifier that is never handed out twice, also across resets and restarts."""
    return _IDS.new(prefix)


class Store(abc.ABC):
    """Everything the handlers read and write; backends implement the abstract methods.

    Each write method is one atomic step: a backend that persists data has it on disk when
    the method returns.
    """

    backend = "abstract"

    def __init__(self, fixtures: Fixtures, seed: int = 0, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self.fixtures = fixtures
        self.seed = seed
        self.max_runs = max_runs
        self._tokens = {token.token: token for token in fixtures.tokens}
        self._flows = {flow.id: flow for flow in fixtures.flows}
        self._history: list[UsageEntry] = []

    def get_token(self, token: str) -> TokenFixture | None:
        return self._tokens.get(token)

    def get_flow(self, flow_id: str) -> FlowFixture | None:
        return self._flows.get(flow_id)

    def list_flows(self) -> list[FlowFixture]:
        return list(self._flows.values())

    def list_usage(self, workspace: str) -> list[UsageEntry]:
        """List the usage of a workspace: the generated history, then its finished runs."""
        history = [entry for entry in self._history if entry.workspace == workspace]
        return history + self._live_usage(workspace)

    @abc.abstractmethod
    def add_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        """Store a new run and append `messages` (its input) to the run's session."""

    @abc.abstractmethod
    def save_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        """Store a run's new state and append `messages` (its reply) to the run's session."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a copy of a run, or None when it is unknown or was evicted."""

    @abc.abstractmethod
    def add_session(self, session: SessionRecord) -> None: ...

    @abc.abstractmethod
    def save_session(self, session: SessionRecord) -> None:
        """Store a session's new state (its status or metadata); an unknown id is ignored."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    def list_messages(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        """Return a page of a session's messages in order, and the session's message count."""

    @abc.abstractmethod
    def count_runs(self) -> dict[str, int]:
        """Count the kept runs by status."""

    @abc.abstractmethod
    def count_sessions(self) -> dict[str, int]:
        """Count the sessions by status."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every run and session made at run time and load the fixtures again."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's resources; the store is not used afterwards."""

    @abc.abstractmethod
    def _live_usage(self, workspace: str) -> list[UsageEntry]: ...

    def _generate_history(self) -> None:
        self._history = generate_usage_history(self.fixtures, random.Random(self.seed))

    def _workspace_of(self, flow_id: str) -> str:
        # A session belongs to the workspace of its flow unless a token's workspace made it.
        flow = self._flows.get(flow_id)
        return flow.workspace if flow is not None else ""

    def _price_of(self, flow_id: str) -> float:
        flow = self._flows.get(flow_id)
        return flow.price_per_1k_tokens if flow is not None else 0.0

    def _fixture_sessions(self) -> list[tuple[SessionRecord, list[MessageRecord]]]:
        sessions = []
        for fixture in self.fixtures.sessions:
            session = SessionRecord(
                id=fixture.id,
                flow_id=fixture.flow_id,
                user_id=fixture.user_id,
                created_at=fixture.created_at,
                metadata=dict(fixture.metadata),
                status=fixture.status,
                workspace=self._workspace_of(fixture.flow_id),
            )
            messages = [
                MessageRecord(f"msg_{index + 1:03d}", m.role, m.content, m.timestamp)
                for index, m in enumerate(fixture.messages)
            ]
            sessions.append((session, messages))
        return sessions


class MemoryStore(Store):
    """A store in process memory, seeded from fixtures, that keeps at most `max_runs` runs.

    Past `max_runs`, the oldest finished runs are evicted; analytics still count them, rolled
    up per flow and hour. NOTE: sessions and their messages are never evicted.
    """

    backend = "memory"

    def __init__(self, fixtures: Fixtures, seed: int = 0, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        super().__init__(fixtures, seed, max_runs)
        self.reset()

    def reset(self) -> None:
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._sessions: dict[str, SessionRecord] = {}
        self._messages: dict[str, list[MessageRecord]] = {}
        self._evicted_usage: dict[UsageKey, UsageEntry] = {}
        for session, messages in self._fixture_sessions():
            self._sessions[session.id] = session
            self._messages[session.id] = messages
        self._generate_history()

    def close(self) -> None:
        """Keep everything: memory needs no release, and a closed store is not used again."""

    def add_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        self._runs[run.id] = run.copy()
        self._append(run.session_id, messages)
        self._evict_finished_runs()

    def save_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        if run.id not in self._runs:
            return
        self._runs[run.id] = run.copy()
        self._append(run.session_id, messages)

    def get_run(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return run.copy() if run is not None else None

    def add_session(self, session: SessionRecord) -> None:
        self._sessions[session.id] = _copy_session(session)
        self._messages[session.id] = []

    def save_session(self, session: SessionRecord) -> None:
        if session.id in self._sessions:
            self._sessions[session.id] = _copy_session(session)

    def get_session(self, session_id: str) -> SessionRecord | None:
        session = self._sessions.get(session_id)
        return _copy_session(session) if session is not None else None

    def list_messages(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        messages = self._messages.get(session_id, [])
        end = None if limit is None else offset + limit
        return messages[offset:end], len(messages)

    def count_runs(self) -> dict[str, int]:
        counts = dict.fromkeys(RUN_STATUSES, 0)
        for run in self._runs.values():
            counts[run.status] += 1
        return counts

    def count_sessions(self) -> dict[str, int]:
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for session in self._sessions.values():
            counts[session.status] += 1
        return counts

    def _live_usage(self, workspace: str) -> list[UsageEntry]:
        evicted = [e for e in self._evicted_usage.values() if e.workspace == workspace]
        kept = [
            usage_of_run(run, self._price_of(run.flow_id))
            for run in self._runs.values()
            if run.is_finished and run.workspace == workspace
        ]
        return evicted + kept

    def _append(self, session_id: str | None, messages: Sequence[MessageRecord]) -> None:
        if session_id is not None and messages:
            self._messages.setdefault(session_id, []).extend(messages)

    def _evict_finished_runs(self) -> None:
        excess = len(self._runs) - self.max_runs
        if excess <= 0:
            return
        # Runs are kept in creation order, so the first finished ones are the oldest.
        evicted: list[RunRecord] = []
        for run in self._runs.values():
            if len(evicted) == excess:
                break
            if run.is_finished:
                evicted.append(run)
        for run in evicted:
            del self._runs[run.id]
            entry = usage_of_run(run, self._price_of(run.flow_id))
            key = hour_key(entry)
            self._evicted_usage[key] = merge_usage(self._evicted_usage.get(key), entry, key)


def _copy_session(session: SessionRecord) -> SessionRecord:
    return replace(session, metadata=dict(session.metadata))
