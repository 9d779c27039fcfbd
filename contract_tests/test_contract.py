"""The contract tests that `pytest contract_tests` runs: one per operation, plus a stateful one."""

from __future__ import annotations

from typing import Any

import hypothesis
from schemathesis import Response

from contract_tests.exchange import ApiCase
from contract_tests.pytest_support import OPTIONS, call_waiting_out_rate_limits, schema_from_options

schema = schema_from_options()


@schema.parametrize()  # type: ignore[untyped-decorator]
def test_operation_keeps_contract(case: ApiCase) -> None:
    response = call_waiting_out_rate_limits(case)

    case.validate_response(response)


def test_linked_operations_keep_contract() -> None:
    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: ApiCase, **kwargs: Any) -> Response:
            return call_waiting_out_rate_limits(case, **kwargs)

    budget = OPTIONS["max_examples"]
    settings = hypothesis.settings(max_examples=budget, deadline=None, database=None)

    Machine.run(settings=settings)
