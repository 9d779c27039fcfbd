"""pytest entry of the kit: `pytest contract_tests --base-url URL --token TOKEN`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from contract_tests.client import LEDGER, close_clients
from contract_tests.settings import DEFAULT_REQUEST_TIMEOUT


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("broxi-mock contract kit")
    group.addoption("--base-url", help="URL of the implementation without the spec's base path.")
    group.addoption(
        "--token",
        default=os.environ.get("BROXI_TOKEN"),
        help="API token sent as a Bearer token (default: $BROXI_TOKEN).",
    )
    group.addoption(
        "--spec",
        type=Path,
        default=None,
        help="OpenAPI document to test against (default: the bundled one).",
    )
    group.addoption("--max-examples", type=int, default=10, help="Generated cases per operation.")
    group.addoption(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="Seconds a request, a whole event stream included, may take.",
    )


def pytest_configure(config: pytest.Config) -> None:
    # The test module builds its schema when it is collected, from the options kept here.
    from contract_tests.pytest_support import OPTIONS

    for name in ("base_url", "token", "spec", "max_examples", "request_timeout"):
        OPTIONS[name] = config.getoption(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    close_clients()
    terminalreporter.write_line(
        f"broxi-mock contract kit: {LEDGER.rate_limited} response(s) with 429, "
        f"waited about {LEDGER.waited:.1f} s in total"
    )
