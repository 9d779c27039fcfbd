"""Contract breaks found by the kit's own checks, as Schemathesis failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from schemathesis.core.failures import Failure, FailureGroup, Severity


@dataclass(frozen=True)
class Problem:
    """One contract break: a short title, what the spec expects and what came back."""

    title: str
    expected: str
    got: str
    # A curl command of the kit's own follow-up request, when that request showed the break.
    reproduce: str | None = None

    def message(self) -> str:
        lines = [f"Expected: {self.expected}", f"Got: {self.got}"]
        if self.reproduce:
            lines.append(f"Follow-up request that shows it: {self.reproduce}")
        return "\n".join(lines)


class ContractFailure(Failure):
    """A break reported by one of the kit's checks; `check` names that check."""

    check: ClassVar[str] = ""

    @property
    def _unique_key(self) -> str:
        # One finding per distinct title, so different breaks of one operation stay apart.
        return self.title


class StreamFailure(ContractFailure):
    code = "BX101"
    check = "streaming"
    checks = ("streaming",)
    kind_title = "Event stream breaks the contract"


class RateLimitFailure(ContractFailure):
    code = "BX102"
    check = "rate_limits"
    checks = ("rate_limits",)
    kind_title = "Rate limiting breaks the contract"


class ErrorEnvelopeFailure(ContractFailure):
    code = "BX103"
    check = "error_envelope"
    checks = ("error_envelope",)
    kind_title = "Error response breaks the envelope"


class StateFailure(ContractFailure):
    code = "BX104"
    check = "state"
    checks = ("state",)
    kind_title = "Stored state disagrees with responses"


class WebhookFailure(ContractFailure):
    code = "BX105"
    check = "webhooks"
    checks = ("webhooks",)
    kind_title = "Webhook delivery breaks the contract"


SEVERITIES: dict[type[ContractFailure], Severity] = {
    StreamFailure: Severity.HIGH,
    RateLimitFailure: Severity.MEDIUM,
    ErrorEnvelopeFailure: Severity.MEDIUM,
    StateFailure: Severity.HIGH,
    WebhookFailure: Severity.HIGH,
}


def raise_problems(
    kind: type[ContractFailure], operation: str | None, problems: Sequence[Problem]
) -> None:
    """Raise the problems as failures of one check; return quietly when there are none."""
    if not problems:
        return
    failures = [
        kind(
            operation=operation,
            title=problem.title,
            message=problem.message(),
            severity=SEVERITIES[kind],
        )
        for problem in problems
    ]
    if len(failures) == 1:
        raise failures[0]
    raise FailureGroup(failures)
