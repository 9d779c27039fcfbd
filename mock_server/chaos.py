"""Chaos settings: added latency and injected failures per route, drawn from a seeded generator."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from broxi_mock.errors import ConfigError, OptionError
from broxi_mock.spec import Operation, Spec

DEFAULT_FAILURE_STATUS = 503
MAX_LATENCY_MS = 600_000
# Matched with fullmatch, so that a trailing newline is rejected too.
LATENCY_PATTERN = re.compile(r"([0-9]+)(?:-([0-9]+))?")
FAILURE_PATTERN = re.compile(r"([0-9]*\.?[0-9]+)(?::([0-9]{3}))?")


@dataclass(frozen=True)
class ChaosRule:
    """One chaos setting for every route (`route` is None) or for one route.

    `origin` names where the rule was written (a config file field or a command-line option),
    so that an error about the rule can point there. Fields left as None keep what an earlier
    or less specific rule set.
    """

    origin: str
    route: str | None = None
    latency_ms: tuple[int, int] | None = None
    failure_rate: float | None = None
    failure_status: int | None = None

    def __post_init__(self) -> None:
        if self.latency_ms is not None:
            low, high = self.latency_ms
            if not 0 <= low <= high <= MAX_LATENCY_MS:
                raise ConfigError(
                    f"{self.origin}: latency {low}-{high} ms is invalid "
                    f"(expected 0 <= min <= max <= {MAX_LATENCY_MS})"
                )
        if self.failure_rate is not None and not 0 <= self.failure_rate <= 1:
            raise ConfigError(
                f"{self.origin}: failure rate {self.failure_rate!r} is invalid "
                "(expected a number from 0 to 1)"
            )


@dataclass(frozen=True)
class ChaosDraw:
    """The delay chaos adds to one request, and the status it fails with, if any."""

    latency_ms: int
    failure_status: int | None

    def to_json(self) -> dict[str, int | None]:
        return {"latency_ms": self.latency_ms, "failure_status": self.failure_status}


class ChaosPlan:
    """The effective chaos of one operation, with its own seeded generator.

    Each operation draws from its own generator, seeded from the server seed and the
    operationId, so the n-th request of a route gets the same delay and outcome in every run
    with that seed, however requests to other routes interleave.
    """

    def __init__(
        self, operation_id: str, seed: int, latency_ms: tuple[int, int], rate: float, status: int
    ) -> None:
        self.operation_id = operation_id
        self.latency_ms = latency_ms
        self.failure_rate = rate
        self.failure_status = status
        self._rng = random.Random(f"{seed}:{operation_id}")

    def draw(self) -> ChaosDraw:
        """Draw the delay and the outcome of the next request; both are drawn every time."""
        low, high = self.latency_ms
        latency = self._rng.randint(low, high)
        fails = self._rng.random() < self.failure_rate
        return ChaosDraw(latency, self.failure_status if fails else None)


def parse_latency_option(value: str) -> ChaosRule:
    """Parse `--latency [ROUTE=]MIN[-MAX]` (milliseconds) into a rule."""
    origin = f"--latency {value!r}"
    route, amount = _split_route(value)
    match = LATENCY_PATTERN.fullmatch(amount)
    if match is None:
        raise ConfigError(f"{origin}: expected [ROUTE=]MIN[-MAX] in milliseconds, got {amount!r}")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    return ChaosRule(origin, route, latency_ms=(low, high))


def parse_failure_option(value: str) -> ChaosRule:
    """Parse `--failure-rate [ROUTE=]RATE[:STATUS]` into a rule."""
    origin = f"--failure-rate {value!r}"
    route, amount = _split_route(value)
    match = FAILURE_PATTERN.fullmatch(amount)
    if match is None:
        raise ConfigError(
            f"{origin}: expected [ROUTE=]RATE[:STATUS] such as 0.1:503, got {amount!r}"
        )
    status = int(match.group(2)) if match.group(2) is not None else DEFAULT_FAILURE_STATUS
    return ChaosRule(origin, route, failure_rate=float(match.group(1)), failure_status=status)


def _split_route(value: str) -> tuple[str | None, str]:
    route, separator, amount = value.rpartition("=")
    if not separator:
        return None, value.strip()
    return route.strip() or None, amount.strip()


def compile_chaos(spec: Spec, rules: tuple[ChaosRule, ...], seed: int) -> dict[str, ChaosPlan]:
    """Resolve rules into one plan per operation that has any chaos; raise on a bad rule.

    Rules for every route apply first, then rules naming a route; among equals, later rules
    win. A failure status must be documented for each operation the rule reaches.
    """
    operations = spec.operations()
    names = _route_names(spec, operations)
    general = [rule for rule in rules if rule.route is None]
    specific = [rule for rule in rules if rule.route is not None]
    for rule in specific:
        if rule.route not in names:
            raise _rule_error(
                rule.origin,
                f"{rule.origin}: unknown route {rule.route!r} (expected an operationId or "
                f"'METHOD /path', one of {sorted(o.operation_id for o in operations)})",
            )
    plans = {}
    for operation in operations:
        mine = general + [rule for rule in specific if names[str(rule.route)] is operation]
        plan = _plan_for(operation, mine, seed)
        if plan is not None:
            plans[operation.operation_id] = plan
    return plans


def _route_names(spec: Spec, operations: list[Operation]) -> dict[str, Operation]:
    names: dict[str, Operation] = {}
    for operation in operations:
        names[operation.operation_id] = operation
        names[f"{operation.method} {operation.path}"] = operation
        names[f"{operation.method} {spec.base_path}{operation.path}"] = operation
    return names


def _plan_for(operation: Operation, rules: list[ChaosRule], seed: int) -> ChaosPlan | None:
    latency: tuple[int, int] = (0, 0)
    rate, status, status_origin = 0.0, DEFAULT_FAILURE_STATUS, ""
    for rule in rules:
        latency = rule.latency_ms if rule.latency_ms is not None else latency
        rate = rule.failure_rate if rule.failure_rate is not None else rate
        if rule.failure_status is not None:
            status, status_origin = rule.failure_status, rule.origin
    if latency == (0, 0) and rate == 0:
        return None
    responses = operation.definition.get("responses") or {}
    documented = sorted(int(code) for code in responses if str(code).isdigit())
    if rate > 0 and status not in documented:
        errors = [code for code in documented if code >= 400]
        raise _rule_error(
            status_origin,
            f"{status_origin or 'chaos'}: status {status} is not documented for "
            f"{operation.operation_id} (expected one of {errors})",
        )
    return ChaosPlan(operation.operation_id, seed, latency, rate, status)


def _rule_error(origin: str, message: str) -> ConfigError:
    # A rule from a command-line option is a usage error; one from the config file is not.
    return OptionError(message) if origin.startswith("--") else ConfigError(message)
