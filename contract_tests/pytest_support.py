"""What `pytest contract_tests` needs: the configured schema and 429-aware requests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis import Response

# NOTE: AuthConfig is not exported by `schemathesis.config` (4.32); the kit pins Schemathesis 4.
from schemathesis.config._auth import AuthConfig

from broxi_mock.spec import bundled_schemathesis_config, bundled_spec_path, load_spec
from contract_tests.client import LEDGER, MAX_RETRIES, MAX_WAIT, parse_retry_after
from contract_tests.exchange import ApiCase

# The command-line options of `pytest contract_tests`, filled in by its conftest.
OPTIONS: dict[str, Any] = {}


def schema_from_options() -> Any:
    """Load the schema that the pytest options describe, or stop pytest with a usage error."""
    import pytest

    if not OPTIONS.get("base_url") or not OPTIONS.get("token"):
        raise pytest.UsageError("the contract kit needs --base-url URL and --token TOKEN")
    return load_contract_schema(
        OPTIONS["base_url"], OPTIONS["token"], OPTIONS["spec"], OPTIONS["max_examples"],
        OPTIONS["request_timeout"],
    )  # fmt: skip


def api_url(base_url: str, base_path: str) -> str:
    """Append the spec's base path (`/v1`) to the base URL unless it already ends with it."""
    base_url = base_url.rstrip("/")
    if base_path and base_url.endswith(base_path):
        return base_url
    return base_url + base_path


def load_contract_schema(
    base_url: str, token: str, spec_path: Path | None, max_examples: int, request_timeout: float
) -> Any:
    """Load the spec as a Schemathesis schema that sends the token to the implementation."""
    import contract_tests.checks  # noqa: F401  (importing registers the checks)

    source = spec_path or bundled_spec_path()
    spec = load_spec(source)
    config = schemathesis.Config.from_path(bundled_schemathesis_config())
    schema = schemathesis.openapi.from_path(source, config=config)
    schema.config.update(
        base_url=api_url(base_url, spec.base_path), request_timeout=request_timeout
    )
    # Given as the spec's bearer scheme, the token counts as real credentials: a generated
    # Authorization header would make Schemathesis expect a 401 where the token is valid.
    schemes = spec.document.get("components", {}).get("securitySchemes", {})
    bearer = [name for name, item in schemes.items() if item.get("scheme") == "bearer"]
    if bearer:
        schema.config.auth = AuthConfig(openapi={bearer[0]: {"bearer": token}})
    else:
        schema.config.update(headers={"Authorization": f"Bearer {token}"})
    schema.config.generation.update(max_examples=max_examples, database="none")
    # The webhooks check needs the end of a run, which the pytest entry does not have.
    schema.config.checks.update(excluded_check_names=["webhooks"])
    return schema


def call_waiting_out_rate_limits(case: ApiCase, **kwargs: Any) -> Response:
    """Send a case; a 429 is checked, waited out for its Retry-After and sent again."""
    response = case.call(**kwargs)
    for _ in range(MAX_RETRIES):
        if response.status_code != 429:
            break
        # The 429 itself must keep the contract, but it is no verdict on the data sent.
        case.validate_response(response)
        delay = parse_retry_after(response.headers.get("retry-after", [None])[0])
        if delay is None:
            break
        LEDGER.record(min(delay, MAX_WAIT))
        time.sleep(min(delay, MAX_WAIT))
        response = case.call(**kwargs)
    return response
