"""The `broxi-mock` command line: serve, lint, test, webhooks listen."""

from __future__ import annotations

import logging
import logging.config
import socket
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from broxi_mock import __version__
from broxi_mock.cli_webhooks import secret_option, webhooks
from broxi_mock.contract_cli import test
from broxi_mock.errors import MockError, OptionError
from broxi_mock.logs import LOG_FORMATS, logging_config
from broxi_mock.options import FiniteFloatRange
from broxi_mock.spec import bundled_fixtures_dir, bundled_spec_path, load_spec
from broxi_mock.webhook_contract import DEFAULT_SECRET, mask_secret

logger = logging.getLogger("broxi_mock.cli")
RATE_LIMIT_HELP = "Rate limiting: 'tier' (per token tier), 'off', or 'N/min' for every token."
# Options the config file can set too; a value given on the command line wins over the file.
FILE_OPTIONS = (
    "seed",
    "rate_limit",
    "journal_size",
    "log_format",
    "log_level",
    "access_log",
    "cors_origins",
    "webhook_secret",
    "webhook_max_attempts",
    "webhook_retry_window",
    "session_idle_timeout",
)


def _parse_chaos(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    from mock_server.chaos import parse_failure_option, parse_latency_option

    parse = parse_latency_option if param.name == "latency" else parse_failure_option
    try:
        return tuple(parse(value) for value in values)
    except MockError as exc:
        raise click.BadParameter(str(exc)) from exc


def _check_webhook_urls(
    ctx: click.Context, param: click.Parameter, urls: tuple[str, ...]
) -> tuple[str, ...]:
    from mock_server.webhook_settings import validate_webhook_url

    try:
        return tuple(validate_webhook_url(url) for url in urls)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_origins(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    from mock_server.cors import origin_regex

    try:
        origin_regex(values)
    except MockError as exc:
        raise click.BadParameter(str(exc)) from exc
    return values


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="broxi-mock")
def main() -> None:
    """Mock server and contract test kit for the BroxiAI workflow API."""


def _check_rate_limit(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mock_server.config import RATE_LIMIT_PATTERN

    match = RATE_LIMIT_PATTERN.fullmatch(value)
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
    type=click.IntRange(0, 60_000),
    default=None,
    help="Delay before and between output tokens in ms, for streams and plain runs alike, "
    "overriding each flow's pacing.",
)
@click.option(
    "--heartbeat",
    type=FiniteFloatRange(min=0.01),
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
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file that keeps runs and sessions across restarts (default: memory only).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=10_000,
    help="Number of runs kept before the oldest finished ones are evicted.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    help="Log level of the server.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    help="Log format: readable text, or one JSON object per line.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    help="Log one line per request with method, path, status, duration and request id.",
)
@click.option(
    "--journal-size",
    type=click.IntRange(0, 100_000),
    default=200,
    help="Number of latest requests GET /_mock/requests keeps (0 turns the journal off).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    callback=_check_origins,
    help="Origin allowed to call from a browser, '*' as wildcard (repeatable; default: "
    "localhost and 127.0.0.1 on any port).",
)
@click.option(
    "--latency",
    multiple=True,
    callback=_parse_chaos,
    metavar="[ROUTE=]MIN[-MAX]",
    help="Added latency in ms, for every route or one operationId (repeatable).",
)
@click.option(
    "--failure-rate",
    multiple=True,
    callback=_parse_chaos,
    metavar="[ROUTE=]RATE[:STATUS]",
    help="Share of requests that fail with STATUS (default 503), for every route or one "
    "operationId (repeatable).",
)
@click.option(
    "--webhook",
    "webhook_urls",
    multiple=True,
    metavar="URL",
    callback=_check_webhook_urls,
    help="Send every webhook event to this http(s) URL, besides the config file's endpoints "
    "(repeatable).",
)
@secret_option("--webhook-secret")
@click.option(
    "--webhook-max-attempts",
    type=click.IntRange(1, 100),
    default=6,
    help="Attempts per webhook delivery before it is kept as failed.",
)
@click.option(
    "--webhook-retry-window",
    type=FiniteFloatRange(min=0, min_open=True),
    default=300.0,
    help="Seconds after the first attempt in which a webhook delivery may be retried.",
)
@click.option(
    "--session-idle-timeout",
    type=FiniteFloatRange(min=0),
    default=1800.0,
    help="Seconds without a run after which an active session ends; 0 keeps sessions open.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file; options given on the command line win over it.",
)
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Start the mock server on the bundled spec and fixtures."""
    try:
        options = _merge_config_file(ctx, options)
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    # Files are checked before the port, except with --port 0: the system picks that port at
    # bind time, and the app's links must show the real one.
    sock = _listen(options["host"], options["port"]) if options["port"] == 0 else None
    try:
        if sock is not None:
            options["port"] = sock.getsockname()[1]
        app, config = _build_app(ctx, options)
        sock = sock or _listen(options["host"], options["port"])
        log_settings = logging_config(
            options["log_level"], options["log_format"], options["access_log"]
        )
        logging.config.dictConfig(log_settings)
        _announce(app, config, options)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    with sock:
        _run_server(app, sock, options["log_level"], log_settings)


def _listen(host: str, port: int) -> socket.socket:
    from broxi_mock.sockets import bind_socket, describe_bind_error

    try:
        return bind_socket(host, port)
    except (OSError, UnicodeError) as exc:
        if isinstance(exc, UnicodeError):
            exc = OSError(None, f"invalid host name ({exc})")
        raise click.ClickException(describe_bind_error(host, port, exc)) from exc


def _build_app(ctx: click.Context, options: dict[str, Any]) -> tuple[Any, Any]:
    from mock_server import create_app

    try:
        config = _mock_config(options)
        return create_app(config), config
    except OptionError as exc:
        raise click.UsageError(str(exc), ctx) from exc
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc


def _run_server(app: Any, sock: socket.socket, log_level: str, log_settings: Any) -> None:
    import uvicorn

    from mock_server.runtime import tune_for_serving

    tune_for_serving()
    settings = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=log_settings,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    uvicorn.Server(settings).run(sockets=[sock])


def _merge_config_file(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    from mock_server.configfile import load_serve_file, merge_options

    path = options["config_path"]
    rules = options["latency"] + options["failure_rate"]
    if path is None:
        return {**options, "chaos": rules, "webhook_file_settings": None}
    serve_file = load_serve_file(path)
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    explicit = {name for name in FILE_OPTIONS if ctx.get_parameter_source(name) in given}
    merged = merge_options(options, serve_file.option_values(), explicit)
    # Rules from the command line come last, so they win over the file's for the same route.
    merged["chaos"] = tuple(serve_file.chaos_rules(path)) + rules
    merged["webhook_file_settings"] = serve_file.webhooks
    return merged


def _mock_config(options: dict[str, Any]) -> Any:
    from mock_server import MockConfig

    host = options["host"]
    display_host = f"[{host}]" if ":" in host else host
    extra = {"cors_origins": options["cors_origins"]} if options["cors_origins"] else {}
    return MockConfig(
        spec_path=options["spec_path"] or bundled_spec_path(),
        fixtures_dir=options["fixtures_dir"] or bundled_fixtures_dir(),
        seed=options["seed"],
        stream_delay_ms=options["stream_delay_ms"],
        heartbeat_seconds=options["heartbeat"],
        rate_limit=options["rate_limit"],
        max_body_bytes=options["max_body_bytes"],
        public_url=f"http://{display_host}:{options['port']}",
        state_path=options["state_path"],
        max_runs=options["max_runs"],
        chaos=options["chaos"],
        journal_size=options["journal_size"],
        webhooks=_webhook_settings(options),
        session_idle_timeout=options["session_idle_timeout"] or None,
        **extra,
    )


def _webhook_settings(options: dict[str, Any]) -> Any:
    """Combine the config file's webhook section with the command line's endpoints and values."""
    from mock_server.webhook_settings import EndpointSettings, WebhookSettings

    base = options["webhook_file_settings"] or WebhookSettings()
    endpoints = [*base.endpoints, *(EndpointSettings(url=url) for url in options["webhook_urls"])]
    # Every value here passed its option's check or the file's model, so no validation is lost.
    return base.model_copy(
        update={
            "endpoints": endpoints,
            "secret": options["webhook_secret"],
            "max_attempts": options["webhook_max_attempts"],
            "retry_window_seconds": options["webhook_retry_window"],
        }
    )


def _announce(app: Any, config: Any, options: dict[str, Any]) -> None:
    spec = app.state.spec
    url = config.public_url + spec.base_path
    count = len(spec.operations())
    if options["log_format"] == "json":
        fields = {
            "url": url,
            "operations": count,
            "spec": str(config.spec_path),
            "fixtures": str(config.fixtures_dir),
            "version": __version__,
        }
        logger.info(
            "broxi-mock %s serving %d operations at %s.",
            __version__,
            count,
            url,
            extra={"fields": fields},
        )
        return
    # The fixtures hold at least one token; a pro one shows the most of the API.
    tokens = app.state.store.fixtures.tokens
    token = next((t for t in tokens if t.tier == "pro"), tokens[0])
    click.echo(f"broxi-mock {__version__} serving {count} operations")
    click.echo(f"  URL:      {url}")
    click.echo(f"  spec:     {config.spec_path}")
    click.echo(f"  fixtures: {config.fixtures_dir}")
    click.echo(f"  state:    {config.state_path or f'in memory (up to {config.max_runs} runs)'}")
    click.echo(f"  token:    {token.token} ({token.tier} tier)")
    endpoints = config.webhooks.endpoints
    if endpoints:
        secret = config.webhooks.secret
        kind = "the public development" if secret == DEFAULT_SECRET else "a custom"
        urls = ", ".join(endpoint.url for endpoint in endpoints)
        click.echo(f"  webhooks: {urls} (signed with {kind} secret {mask_secret(secret)})")
    click.echo(f"  try:      curl -H 'Authorization: Bearer {token.token}' {url}/flows")


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


main.add_command(webhooks)
main.add_command(test)


def configure_logging(level: str) -> None:
    """Send broxi_mock logs to stderr at `level`."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
