"""The `broxi-mock test` command: check a running implementation against the spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from broxi_mock.cli_webhooks import secret_option
from broxi_mock.errors import MockError
from broxi_mock.options import FiniteFloatRange
from broxi_mock.spec import Spec, bundled_spec_path, load_spec

PHASE_NAMES = ("examples", "coverage", "fuzzing", "stateful")


def _check_base_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Imported here: `broxi-mock serve` loads this module too, and never needs httpx.
    import httpx

    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(f"{value!r} is not a URL ({exc}).") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(f"{value!r} must be an http(s) URL with a host.")
    return value.rstrip("/")


def _check_token(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip() or any(ch.isspace() for ch in value.strip()):
        raise click.BadParameter("must be one non-empty word (the API token).")
    return value.strip()


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _check_checks(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from schemathesis.checks import CHECKS

    from contract_tests.runner import register_kit

    register_kit()
    names = _split(value)
    known = set(CHECKS.get_all_names())
    unknown = [name for name in names if name != "all" and name not in known]
    if not names or unknown:
        raise click.BadParameter(
            f"unknown check(s) {', '.join(map(repr, unknown))} (expected 'all' or some of "
            f"{', '.join(sorted(known))})."
        )
    return names


def _check_phases(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = _split(value)
    unknown = [name for name in names if name not in PHASE_NAMES]
    if not names or unknown:
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(PHASE_NAMES)}.")
    return names


def _load(spec_path: Path | None) -> Spec:
    try:
        return load_spec(spec_path or bundled_spec_path())
    except MockError as exc:
        raise click.BadParameter(str(exc), param_hint="--spec") from exc


def api_url(base_url: str, base_path: str) -> str:
    """Append the spec's base path (`/v1`) to the base URL unless it already ends with it."""
    if base_path and base_url.endswith(base_path):
        return base_url
    return base_url + base_path


@click.command("test")
@click.option(
    "--base-url",
    required=True,
    callback=_check_base_url,
    help="URL of the implementation without the spec's base path, e.g. http://127.0.0.1:4010.",
)
@click.option(
    "--token",
    required=True,
    envvar="BROXI_TOKEN",
    callback=_check_token,
    help="API token sent as a Bearer token (or set BROXI_TOKEN).",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="OpenAPI document to test against (default: the bundled one).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write a JUnit XML report to this file.",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=10,
    help="Generated cases per operation and phase.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=4, help="Operations tested at the same time."
)
@click.option(
    "--checks",
    default="all",
    callback=_check_checks,
    help="Comma-separated checks to run, or 'all'.",
)
@click.option(
    "--seed", type=int, default=None, help="Seed of case generation, for a repeatable run."
)
@click.option(
    "--phases",
    default=",".join(PHASE_NAMES),
    callback=_check_phases,
    help="Comma-separated Schemathesis phases to run.",
)
@click.option(
    "--operation",
    "operations",
    multiple=True,
    help="Test only this operationId; repeat for several.",
)
@click.option(
    "--request-timeout",
    type=FiniteFloatRange(min=0.1),
    default=30.0,
    help="Seconds a request, a whole event stream included, may take.",
)
@click.option(
    "--webhooks",
    is_flag=True,
    default=False,
    help="Also listen for webhooks, trigger a run and a session, and check what arrives.",
)
@click.option(
    "--webhook-listen",
    default="127.0.0.1:4011",
    help="host:port the webhook receiver listens on while --webhooks is set.",
)
@click.option(
    "--webhook-wait",
    type=FiniteFloatRange(min=0.1),
    default=10.0,
    help="Seconds to wait for the expected webhooks to arrive.",
)
@secret_option("--webhook-secret")
def test(
    base_url: str,
    token: str,
    spec_path: Path | None,
    operations: tuple[str, ...],
    webhooks: bool,
    webhook_listen: str,
    webhook_secret: str,
    **options: Any,
) -> None:
    """Check the API at --base-url against the spec; exit 1 when anything breaks the contract."""
    from contract_tests.runner import RunOptions, check_reachable, run_contract_tests
    from contract_tests.webhooks import parse_listen

    spec = _load(spec_path)
    known = {operation.operation_id: operation for operation in spec.operations()}
    unknown = [operation for operation in operations if operation not in known]
    if unknown:
        raise click.BadParameter(
            f"no operationId {unknown[0]!r} in the spec.", param_hint="--operation"
        )
    if webhooks:
        try:
            parse_listen(webhook_listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--webhook-listen") from exc
    run_options = RunOptions(
        api_url=api_url(base_url, spec.base_path),
        token=token,
        spec_path=spec.source or bundled_spec_path(),
        operations=operations,
        webhook_listen=webhook_listen if webhooks else None,
        webhook_secret=webhook_secret if webhooks else None,
        **options,
    )
    list_path = next((op.path for op in known.values() if op.operation_id == "listFlows"), None)
    if list_path is not None:
        check_reachable(run_options, list_path)
    sys.exit(run_contract_tests(run_options))
