"""Run the contract kit: Schemathesis over the spec with the kit's checks, then a summary."""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import schemathesis.cli

from broxi_mock.spec import bundled_schemathesis_config
from contract_tests.client import LEDGER, close_clients
from contract_tests.report import TOTALS, TotalsHandler, summary_lines
from contract_tests.settings import KitSettings, configure

PHASES = ("examples", "coverage", "fuzzing", "stateful")
DEFAULT_MAX_EXAMPLES = 10
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class RunOptions:
    """Everything one run of the kit needs; `api_url` already ends with the spec's base path."""

    api_url: str
    token: str
    spec_path: Path
    report: Path | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    workers: int = 4
    checks: tuple[str, ...] = ("all",)
    seed: int | None = None
    phases: tuple[str, ...] = PHASES
    operations: tuple[str, ...] = ()
    request_timeout: float = 30.0
    webhook_listen: str | None = None
    webhook_secret: str | None = None
    webhook_wait: float = 10.0
    config_path: Path = field(default_factory=bundled_schemathesis_config)


def schemathesis_arguments(options: RunOptions) -> list[str]:
    """Translate the kit's options into a `schemathesis run` command line."""
    arguments = [
        "--config-file", str(options.config_path),
        "run", str(options.spec_path),
        "--url", options.api_url,
        "--header", f"Authorization: Bearer {options.token}",
        "--checks", ",".join(_selected_checks(options)),
        "--max-examples", str(options.max_examples),
        "--workers", str(options.workers),
        "--phases", ",".join(options.phases),
        "--request-timeout", str(options.request_timeout),
        # Every run starts afresh, so that a run's verdict depends on its seed alone.
        "--generation-database", "none",
    ]  # fmt: skip
    if options.webhook_listen is None and "webhooks" not in options.checks:
        arguments += ["--exclude-checks", "webhooks"]
    if options.seed is not None:
        arguments += ["--seed", str(options.seed)]
    if options.report is not None:
        arguments += ["--report", "junit", "--report-junit-path", str(options.report)]
    for operation_id in options.operations:
        arguments += ["--include-operation-id", operation_id]
    return arguments


def _selected_checks(options: RunOptions) -> tuple[str, ...]:
    # --webhooks adds the webhooks check even when --checks names others only.
    if options.webhook_listen and "all" not in options.checks and "webhooks" not in options.checks:
        return (*options.checks, "webhooks")
    return options.checks


def check_reachable(options: RunOptions, list_path: str) -> None:
    """Make one authenticated read, raising a usage error when the server or token cannot work."""
    url = options.api_url.rstrip("/") + list_path
    headers = {"Authorization": f"Bearer {options.token}"}
    try:
        reply = httpx.get(url, headers=headers, timeout=options.request_timeout)
    except httpx.HTTPError as exc:
        raise click.UsageError(f"--base-url: cannot reach {url} ({exc})") from exc
    if reply.status_code == 401:
        raise click.UsageError(f"--token: the server rejected the token with 401 on GET {url}")


_REGISTERED = threading.Event()


def register_kit() -> None:
    """Register the kit's checks and its summary handler with Schemathesis, once per process."""
    if _REGISTERED.is_set():
        return
    import contract_tests.checks  # noqa: F401  (importing registers the checks)

    schemathesis.cli.handler()(TotalsHandler)
    _REGISTERED.set()


def run_contract_tests(options: RunOptions, echo: Callable[[str], Any] = click.echo) -> int:
    """Run Schemathesis with the kit's checks; return 0 (no breaks), 1 (breaks) or 2 (error)."""
    register_kit()
    configure(
        KitSettings(
            workers=options.workers,
            request_timeout=options.request_timeout,
            webhook_listen=options.webhook_listen,
            webhook_secret=options.webhook_secret,
            webhook_wait=options.webhook_wait,
        )
    )
    TOTALS.reset()
    LEDGER.reset()
    try:
        with _thread_safe_ast(options.workers > 1):
            code = _run_schemathesis(schemathesis_arguments(options))
    finally:
        close_clients()
    checks = _check_names(options)
    for line in summary_lines(TOTALS, LEDGER, checks):
        echo(line)
    if code == EXIT_OK and TOTALS.failure_count:
        return EXIT_FAILED
    return code if code in (EXIT_OK, EXIT_FAILED) else EXIT_USAGE


def _run_schemathesis(arguments: list[str]) -> int:
    try:
        schemathesis.cli.schemathesis.main(
            arguments, prog_name="broxi-mock test", standalone_mode=False
        )
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return EXIT_OK


def _check_names(options: RunOptions) -> list[str]:
    from schemathesis.checks import CHECKS

    if "all" not in options.checks:
        return list(_selected_checks(options))
    # object_level_authorization runs only with several identities configured, which the kit
    # does not do, so listing it as passed would mislead.
    skipped = {"webhooks", "object_level_authorization"}
    names = [name for name in CHECKS.get_all_names() if name not in skipped]
    return names + (["webhooks"] if options.webhook_listen else [])


@contextmanager
def _thread_safe_ast(enabled: bool) -> Iterator[None]:
    # NOTE: on Python 3.11, `ast.parse` in several threads at once can fail with "AST constructor
    # recursion depth mismatch"; Hypothesis parses sources while Schemathesis workers generate
    # cases, so with --workers above 1 the parses are serialised for the run.
    if not enabled:
        yield
        return
    original = ast.parse
    lock = threading.Lock()

    def parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    ast.parse = parse
    try:
        yield
    finally:
        ast.parse = original
