"""Collect a kit run's totals from Schemathesis events and print the kit's summary."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemathesis.core.failures import Failure
from schemathesis.engine import events

from contract_tests.client import WaitLedger


@dataclass
class RunTotals:
    """What one run tested and found: operations, cases, and distinct failures by check."""

    operations: set[str] = field(default_factory=set)
    case_ids: set[str] = field(default_factory=set)
    failures: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.operations.clear()
            self.case_ids.clear()
            self.failures.clear()

    def add_failure(self, check: str, operation: str, failure: Failure) -> None:
        with self._lock:
            self.failures.setdefault(check, set()).add((operation, failure.code, failure.title))

    def add_event(self, event: Any) -> None:
        """Count the cases and failures of a finished scenario, or of the after-run checks."""
        if isinstance(event, events.EngineFinished):
            for failure in event.failures:
                self.add_failure(_check_of(failure), failure.operation or "run", failure)
            return
        recorder = getattr(event, "recorder", None)
        if recorder is None:
            return
        for case_id, node in recorder.cases.items():
            with self._lock:
                self.case_ids.add(case_id)
                self.operations.add(node.value.operation.label)
        for case_id, checks in recorder.checks.items():
            label = (
                recorder.cases[case_id].value.operation.label if case_id in recorder.cases else "?"
            )
            for check in checks:
                if check.failure_info is not None:
                    self.add_failure(check.name, label, check.failure_info.failure)

    @property
    def failure_count(self) -> int:
        return sum(len(found) for found in self.failures.values())


TOTALS = RunTotals()


def _check_of(failure: Failure) -> str:
    checks = getattr(failure, "checks", ())
    return checks[0] if checks else failure.title


class TotalsHandler:
    """A Schemathesis CLI event handler that feeds `TOTALS`."""

    def __init__(self, *args: Any, **params: Any) -> None:
        pass

    def start(self, ctx: Any) -> None:
        pass

    def handle_event(self, ctx: Any, event: Any) -> None:
        if isinstance(
            event, events.ScenarioFinished | events.FuzzScenarioFinished | events.EngineFinished
        ):
            TOTALS.add_event(event)

    def shutdown(self, ctx: Any) -> None:
        pass


def summary_lines(totals: RunTotals, ledger: WaitLedger, checks: Iterable[str]) -> list[str]:
    """Write the kit's closing summary: operations, cases, failures by check, rate-limit waits."""
    lines = [
        "broxi-mock contract test summary",
        f"  operations tested: {len(totals.operations)}",
        f"  cases sent: {len(totals.case_ids)}",
        "  failures by check:",
    ]
    names = sorted(set(checks) | set(totals.failures))
    for name in names:
        found = totals.failures.get(name, set())
        mark = "FAILED" if found else "ok"
        lines.append(f"    {name:<30} {len(found):>3}  {mark}")
    lines.append(
        f"  rate limits: {ledger.rate_limited} response(s) with 429, "
        f"waited about {ledger.waited:.1f} s in total"
    )
    verdict = "contract broken" if totals.failure_count else "no contract breaks found"
    lines.append(f"  result: {verdict} ({totals.failure_count} distinct failure(s))")
    return lines
