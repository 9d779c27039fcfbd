"""The `broxi-mock` command line: serve, lint, webhooks listen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from broxi_mock import __version__
from broxi_mock.errors import MockError
from broxi_mock.spec import bundled_fixtures_dir, bundled_spec_path, load_spec
from broxi_mock.webhook_contract import DEFAULT_SECRET, mask_secret, validate_secret

RATE_LIMIT_HELP = "Rate limiting: 'tier' (per token tier), 'off', or 'N/min' for every token."
SECRET_ENV = "BROXI_MOCK_WEBHOOK_SECRET"
SECRET_HELP = f"Standard Webhooks signing secret ('whsec_' + base64), also read from ${SECRET_ENV}."
DEFAULT_SECRET_SHOWN = "the public development secret"


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
    "--webhook",
    "webhook_urls",
    multiple=True,
    metavar="URL",
    callback=lambda ctx, param, urls: tuple(_check_url(url) for url in urls),
    help="Send every webhook event to this http(s) URL; repeat for more endpoints.",
)
@click.option(
    "--webhook-secret",
    envvar=SECRET_ENV,
    default=DEFAULT_SECRET,
    show_default=DEFAULT_SECRET_SHOWN,
    callback=lambda ctx, param, secret: _check_secret(secret),
    help=SECRET_HELP,
)
@click.option(
    "--webhook-max-attempts",
    type=click.IntRange(1, 100),
    default=6,
    help="Attempts per webhook delivery before it is kept as failed.",
)
@click.option(
    "--webhook-retry-window",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    help="Seconds after the first attempt in which a webhook delivery may be retried.",
)
@click.option(
    "--session-idle-timeout",
    type=click.FloatRange(min=0),
    default=1800.0,
    help="Seconds without a run after which an active session ends; 0 keeps sessions open.",
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
    webhook_urls: tuple[str, ...],
    webhook_secret: str,
    webhook_max_attempts: int,
    webhook_retry_window: float,
    session_idle_timeout: float,
    log_level: str,
) -> None:
    """Start the mock server on the bundled spec and fixtures."""
    import uvicorn

    from mock_server import MockConfig, create_app
    from mock_server.webhook_settings import EndpointSettings, WebhookSettings

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
            webhooks=WebhookSettings(
                endpoints=[EndpointSettings(url=url) for url in webhook_urls],
                secret=webhook_secret,
                max_attempts=webhook_max_attempts,
                retry_window_seconds=webhook_retry_window,
            ),
            session_idle_timeout=session_idle_timeout or None,
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
    if webhook_urls:
        kind = "the public development" if webhook_secret == DEFAULT_SECRET else "a custom"
        click.echo(
            f"  webhooks: {', '.join(webhook_urls)} "
            f"(signed with {kind} secret {mask_secret(webhook_secret)})"
        )
    click.echo(f"  try:      curl -H 'Authorization: Bearer {token.token}' "
               f"http://{display_host}:{port}{spec.base_path}/flows")
    configure_logging(log_level)
    uvicorn.run(app, host=host, port=port, log_level=log_level, loop="uvloop", http="httptools")


@main.command()
@click.argument("spec_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def lint(spec_path: Path | None) -> None:
    """Check SPEC (default: the bundled one) and every example in it."""
    from broxi_mock.lint import lint_spec

    source = spec_path or bundled_spec_path()
    try:
        findings = lint_spec(load_spec(source))
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    if findings:
        click.echo(f"{source}: {len(findings)} problem(s)", err=True)
        for finding in findings:
            click.echo(f"{source}: {finding}", err=True)
        sys.exit(1)
    click.echo(f"{source}: OK")


@main.group()
def webhooks() -> None:
    """Receive and check the API's webhooks."""


@webhooks.command()
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=4011, help="Port to listen on.")
@click.option(
    "--secret",
    envvar=SECRET_ENV,
    default=DEFAULT_SECRET,
    show_default=DEFAULT_SECRET_SHOWN,
    callback=lambda ctx, param, secret: _check_secret(secret),
    help=SECRET_HELP,
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="OpenAPI document whose webhook schemas payloads must match (default: the bundled one).",
)
@click.option(
    "--expect",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many valid events, and fail if fewer arrive.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: wait for --expect events, or Ctrl-C).",
)
def listen(
    host: str,
    port: int,
    secret: str,
    spec_path: Path | None,
    expect: int | None,
    timeout: float | None,
) -> None:
    """Receive webhooks, verify signatures and payloads, print one line per delivery."""
    from broxi_mock.receiver import WebhookReceiver, bind_socket
    from broxi_mock.receiver import listen as listen_on
    from broxi_mock.webhook_contract import PayloadChecker

    try:
        checker = PayloadChecker(load_spec(spec_path or bundled_spec_path()))
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    receiver = WebhookReceiver(secret, checker, lambda verdict: click.echo(verdict.line()))
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound_port = sock.getsockname()[1]
    display_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"Listening for webhooks on http://{display_host}:{bound_port}/ "
        f"(secret {mask_secret(secret)})"
    )
    # Ctrl-C ends listening like a timeout does: the summary and the verdict still follow.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(listen_on(receiver, sock, expect, timeout))
    click.echo(receiver.summary())
    problem = receiver.problem(expect)
    if problem is not None:
        raise click.ClickException(problem)


def _check_url(url: str) -> str:
    from mock_server.webhook_settings import validate_webhook_url

    try:
        return validate_webhook_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_secret(secret: Any) -> str:
    try:
        return validate_secret(str(secret))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def configure_logging(level: str) -> None:
    """Send broxi_mock logs to stderr at `level`."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
