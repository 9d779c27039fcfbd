"""The `broxi-mock webhooks` commands; they check webhooks without importing `mock_server`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from broxi_mock.errors import MockError
from broxi_mock.options import FiniteFloatRange
from broxi_mock.spec import bundled_spec_path, load_spec
from broxi_mock.webhook_contract import DEFAULT_SECRET, mask_secret, validate_secret

SECRET_ENV = "BROXI_MOCK_WEBHOOK_SECRET"
SECRET_HELP = f"Standard Webhooks signing secret ('whsec_' + base64), also read from ${SECRET_ENV}."
DEFAULT_SECRET_SHOWN = "the public development secret"
Command = TypeVar("Command", bound=Callable[..., Any])


def check_secret(ctx: click.Context, param: click.Parameter, secret: Any) -> str:
    """Validate a secret option; the error message never repeats the secret."""
    try:
        return validate_secret(str(secret))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def secret_option(name: str) -> Callable[[Command], Command]:
    """Return the click option of a signing secret, read from the environment too."""
    return click.option(
        name,
        envvar=SECRET_ENV,
        default=DEFAULT_SECRET,
        show_default=DEFAULT_SECRET_SHOWN,
        callback=check_secret,
        help=SECRET_HELP,
    )


@click.group()
def webhooks() -> None:
    """Receive and check the API's webhooks."""


@webhooks.command()
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=4011, help="Port to listen on.")
@secret_option("--secret")
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
    type=FiniteFloatRange(min=0, min_open=True),
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
    from broxi_mock.receiver import WebhookReceiver
    from broxi_mock.receiver import listen as listen_on
    from broxi_mock.sockets import bind_socket, describe_bind_error
    from broxi_mock.webhook_contract import PayloadChecker

    try:
        checker = PayloadChecker(load_spec(spec_path or bundled_spec_path()))
    except MockError as exc:
        raise click.ClickException(str(exc)) from exc
    receiver = WebhookReceiver(secret, checker, lambda verdict: click.echo(verdict.line()))
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(describe_bind_error(host, port, exc)) from exc
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
