"""Fixture file models and loading: tokens, flows, sessions and usage history."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from broxi_mock.errors import FixtureError
from broxi_mock.spec import read_yaml

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Tier = Literal["free", "pro", "enterprise"]
FlowKind = Literal["support", "summarizer", "sql", "classifier", "translator", "writer"]
# Every fixture time needs an offset (`Z` or `+02:00`): a naive time cannot be ordered against
# the server's UTC clock.
Timestamp = AwareDatetime
Range = TypeVar("Range", tuple[int, int], tuple[float, float])


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TokenFixture(StrictModel):
    """An API token the mock accepts."""

    token: Annotated[str, Field(min_length=8, max_length=256, pattern=r"^[\x21-\x7e]+$")]
    name: str
    tier: Tier
    workspace: Identifier
    read_only: bool = False
    requests_per_minute: Annotated[int | None, Field(ge=1)] = None

    @model_validator(mode="after")
    def _enterprise_needs_limit(self) -> TokenFixture:
        if self.tier == "enterprise" and self.requests_per_minute is None:
            raise ValueError("requests_per_minute is required for the enterprise tier")
        return self


class LatencyFixture(StrictModel):
    """How fast a flow produces output, in milliseconds."""

    first_token_ms: Annotated[int, Field(ge=0, le=60_000)] = 300
    token_ms: Annotated[int, Field(ge=0, le=10_000)] = 40


class FailureFixture(StrictModel):
    """When a flow's runs fail: after a number of tokens, at a rate, or both."""

    after_tokens: Annotated[int | None, Field(ge=0)] = None
    rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    message: str = "The model provider returned an error."


class FlowConfigFixture(StrictModel):
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class FlowFixture(StrictModel):
    """A flow and how the mock produces its runs."""

    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    description: str
    status: Literal["published", "draft"]
    kind: FlowKind
    workspace: Identifier
    created_at: Timestamp
    updated_at: Timestamp
    config: FlowConfigFixture
    system_prompt_tokens: Annotated[int, Field(ge=0)] = 40
    price_per_1k_tokens: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.002
    latency: LatencyFixture = LatencyFixture()
    failure: FailureFixture = FailureFixture()
    replies: list[str] = []

    @model_validator(mode="after")
    def _updated_after_created(self) -> FlowFixture:
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        return self


class MessageFixture(StrictModel):
    role: Literal["user", "assistant"]
    content: str
    timestamp: Timestamp


class SessionFixture(StrictModel):
    """A session with its message history."""

    id: Identifier
    flow_id: Identifier
    user_id: str | None = None
    status: Literal["active", "ended"] = "active"
    created_at: Timestamp
    metadata: dict[str, Any] = {}
    messages: list[MessageFixture] = []


def check_range(pair: Range) -> Range:
    """Return a [min, max] pair of finite, non-negative numbers, or raise ValueError."""
    low, high = pair
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"range {[low, high]} must hold finite numbers")
    if low < 0:
        raise ValueError(f"range {[low, high]} must not be negative")
    if low > high:
        raise ValueError(f"range {[low, high]} has min above max (expected [min, max])")
    return pair


class UsageFixture(StrictModel):
    """How the generated usage history looks: how far back and how busy each flow is."""

    days: Annotated[int, Field(ge=1, le=730)] = 45
    runs_per_day: dict[Identifier, Annotated[tuple[int, int], AfterValidator(check_range)]]
    failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    tokens_per_run: Annotated[tuple[int, int], AfterValidator(check_range)] = (60, 900)
    duration_seconds: Annotated[tuple[float, float], AfterValidator(check_range)] = (0.4, 6.0)


class Fixtures(StrictModel):
    """Everything loaded from a fixtures folder."""

    tokens: list[TokenFixture]
    flows: list[FlowFixture]
    sessions: list[SessionFixture]
    usage: UsageFixture


FILES: dict[str, type[StrictModel]] = {
    "tokens": TokenFixture,
    "flows": FlowFixture,
    "sessions": SessionFixture,
}


def load_fixtures(folder: Path) -> Fixtures:
    """Load and validate every fixture file of `folder`."""
    if not folder.is_dir():
        raise FixtureError(f"{folder}: fixtures folder not found")
    lists = {
        name: _load_list(folder / f"{name}.yaml", name, model) for name, model in FILES.items()
    }
    if not lists["tokens"]:
        raise FixtureError(
            f"{folder / 'tokens.yaml'}: tokens: no token listed (expected at least one, "
            "because every API request needs a token)"
        )
    usage = _load_usage(folder / "usage.yaml")
    fixtures = Fixtures(usage=usage, **lists)
    _check_references(folder, fixtures)
    return fixtures


def _load_list(path: Path, key: str, model: type[StrictModel]) -> list[Any]:
    data = read_yaml(path, FixtureError)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise FixtureError(f"{path}: top level must be a mapping with a list under {key!r}")
    items = []
    for index, raw in enumerate(data[key]):
        entry = _entry_name(raw, index)
        try:
            items.append(model.model_validate(raw))
        except ValidationError as exc:
            raise FixtureError(f"{path}: {key}[{index}] ({entry}): {_first_problem(exc)}") from exc
    return items


def _load_usage(path: Path) -> UsageFixture:
    data = read_yaml(path, FixtureError)
    if not isinstance(data, dict) or not isinstance(data.get("usage"), dict):
        raise FixtureError(f"{path}: top level must be a mapping with a mapping under 'usage'")
    try:
        return UsageFixture.model_validate(data["usage"])
    except ValidationError as exc:
        raise FixtureError(f"{path}: usage: {_first_problem(exc)}") from exc


def _entry_name(raw: Any, index: int) -> str:
    if isinstance(raw, dict):
        for key in ("id", "name", "token"):
            if isinstance(raw.get(key), str):
                value = raw[key] if key != "token" else raw[key][:6] + "..."
                return f"{key}={value!r}"
    return f"entry {index}"


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "entry"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if error["type"] == "value_error":
        # Our own checks name the value in their message already.
        return f"{field}: {str(error['msg']).removeprefix('Value error, ')}{suffix}"
    got = f", got {error['input']!r}" if error["type"] != "missing" else ""
    return f"{field}: {error['msg']}{got}{suffix}"


def _check_references(folder: Path, fixtures: Fixtures) -> None:
    _check_unique(folder / "tokens.yaml", "tokens", [t.token for t in fixtures.tokens])
    _check_unique(folder / "flows.yaml", "flows", [f.id for f in fixtures.flows])
    _check_unique(folder / "sessions.yaml", "sessions", [s.id for s in fixtures.sessions])
    flow_ids = {flow.id for flow in fixtures.flows}
    for index, session in enumerate(fixtures.sessions):
        if session.flow_id not in flow_ids:
            raise FixtureError(
                f"{folder / 'sessions.yaml'}: sessions[{index}] (id={session.id!r}): "
                f"flow_id: unknown flow {session.flow_id!r} (expected one of {sorted(flow_ids)})"
            )
    for flow_id in fixtures.usage.runs_per_day:
        if flow_id not in flow_ids:
            raise FixtureError(
                f"{folder / 'usage.yaml'}: usage.runs_per_day: unknown flow {flow_id!r} "
                f"(expected one of {sorted(flow_ids)})"
            )


def _check_unique(path: Path, key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise FixtureError(f"{path}: {key}[{index}]: duplicate id {value!r}")
        seen.add(value)
