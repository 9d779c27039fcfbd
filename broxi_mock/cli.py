"""The `broxi-mock` command line: serve, lint, test."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from broxi_mock import __version__
from broxi_mock.errors import MockError
from broxi_mock.spec import bundled_fixtures_dir, bundled_spec_path, load_spec

RATE_LIMIT_HELP = "Rate limiting: 'tier' (per token tier), 'off', or 'N/min' for every token."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="broxi-mock")
def main() -> None:
    """Mock server and contract test kit for the BroxiAI workflow API."""


def _check_rate_limit(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mock_server.config import RATE_LIMIT_PATTERN

    match = RATE_LIMIT_PATTERN.match(value)
    if match is None or (match.group(2) is not None and int(match.group(2)) < 1):
        raise click.BadParameter(f"{value!r} is not 'tier', 'off' or 'N/min' with N >= 1.")
    return value


@main.command()
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=4010, help="Port to listen on.")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="OpenAPI document to serve (default: the bundled one).",
)
@click.option(
    "--fixtures",
    "fixtures_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of fixture YAML files (default: the bundled one).",
)
@click.option("--seed", type=int, default=0, help="Seed of generated data and random choices.")
@click.option(
    "--stream-delay-ms",
    type=click.IntRange(min=0),
    default=None,
    help="Delay before and between stream tokens in ms, overriding each flow's pacing.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.01),
    default=15.0,
    help="Seconds between heartbeat comments on an idle stream.",
)
@click.option("--rate-limit", default="tier", callback=_check_rate_limit, help=RATE_LIMIT_HELP)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=1024 * 1024,
    help="Largest request body accepted, in bytes.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    help="Log level of the server.",
)
def serve(
    host: str,
    port: int,
    spec_path: Path | None,
    fixtures_dir: Path | None,
    seed: int,
    stream_delay_ms: int | None,
    heartbeat: float,
    rate_limit: str,
    max_body_bytes: int,
    log_level: str,
) -> None:
    """Start the mock server on the bundled spec and fixtures."""
    import uvicorn

    from mock_server import MockConfig, create_app

    display_host = f"[{host}]" if ":" in host else host
    try:
        config = MockConfig(
            spec_path=spec_path or bundled_spec_path(),
            fixtures_dir=fixtures_dir or bundled_fixtures_dir(),
            seed=seed,
            stream_delay_ms=stream_delay_ms,
            heartbeat_seconds=heartbeat,
            rate_limit=rate_limit,
            max_body_bytes=max_body_bytes,
            public_url=f"http://{display_host}:{port}",
        )
        app = create_app(config)
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    spec = app.state.spec
    token = next(t for t in app.state.store.fixtures.tokens if t.tier == "pro")
    click.echo(f"broxi-mock {__version__} serving {len(spec.operations())} operations")
    click.echo(f"  URL:      http://{display_host}:{port}{spec.base_path}")
    click.echo(f"  spec:     {config.spec_path}")
    click.echo(f"  fixtures: {config.fixtures_dir}")
    click.echo(f"  token:    {token.token} ({token.tier} tier)")
    click.echo(f"  try:      curl -H 'Authorization: Bearer {token.token}' "
               f"http://{display_host}:{port}{spec.base_path}/flows")
    uvicorn.run(app, host=host, port=port, log_level=log_level, loop="uvloop", http="httptools")


@main.command()
@click.argument("spec_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--fixtures",
    "fixtures_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of fixture YAML files to check against the spec (default: the bundled one).",
)
def lint(spec_path: Path | None, fixtures_dir: Path | None) -> None:
    """Check SPEC (default: the bundled one), its examples, project rules and the fixtures."""
    from broxi_mock.lint import lint_spec

    source = spec_path or bundled_spec_path()
    try:
        findings = lint_spec(load_spec(source), fixtures_dir or bundled_fixtures_dir())
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    if findings:
        click.echo(f"{source}: {len(findings)} problem(s)", err=True)
        for finding in findings:
            click.echo(f"{finding.file or source}: {finding}", err=True)
        sys.exit(1)
    click.echo(f"{source}: OK")


def configure_logging(level: str) -> None:
    """Send broxi_mock logs to stderr at `level`."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")


def _add_contract_command() -> None:
    from broxi_mock.contract_cli import test

    main.add_command(test)


_add_contract_command()
