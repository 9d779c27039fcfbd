"""Settings of webhook delivery: the endpoints to call and the retry and timeout policy.

`WebhookSettings` is the `webhooks:` section of the YAML config file; the `serve` flags
`--webhook` and `--webhook-secret` fill the same model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broxi_mock.errors import ConfigError
from broxi_mock.webhook_contract import DEFAULT_SECRET, validate_secret
from mock_server.events import EventType

MAX_URL_LENGTH = 2048


def validate_webhook_url(url: str) -> str:
    """Return an absolute http(s) URL unchanged, or raise ValueError saying what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL is longer than {MAX_URL_LENGTH} characters")
    import httpx  # Only here, so that serving without webhooks never loads it.

    try:
        parsed = httpx.URL(url)
        port, host = parsed.port, parsed.host
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        # UnicodeError covers a host that is not valid IDNA, such as 'xn--'.
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    if parsed.userinfo:
        # The message leaves the URL out because it may contain a password.
        raise ValueError(
            f"URL for host {host!r} contains credentials (user:password@); remove them, "
            "because webhook URLs are listed and logged"
        )
    if not parsed.scheme:
        raise ValueError(f"{url!r} has no scheme (expected it to start with http:// or https://)")
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} must use http or https (got scheme {parsed.scheme!r})")
    if not host:
        raise ValueError(f"{url!r} has no host (expected e.g. 'http://127.0.0.1:4011/hooks')")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{url!r} has port {port} (expected 1 to 65535)")
    if parsed.fragment:
        raise ValueError(f"{url!r} has a fragment, which is never sent; remove the '#' part")
    return url


def validate_events(events: list[str] | None) -> list[str] | None:
    """Return an event filter unchanged, or raise ValueError when it is empty or repeats one."""
    if events is None:
        return None
    if not events:
        raise ValueError("events must list at least one event, or be left out for all events")
    repeated = sorted({event for event in events if events.count(event) > 1})
    if repeated:
        raise ValueError(f"events lists {', '.join(map(repr, repeated))} more than once")
    return events


class EndpointSettings(BaseModel):
    """One endpoint that receives webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str = Field(description="The http(s) URL each event is POSTed to.")
    events: list[EventType] | None = Field(
        default=None, description="The events this endpoint receives; left out for all events."
    )
    secret: str | None = Field(
        default=None, description="This endpoint's signing secret; left out for the shared one."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return validate_webhook_url(url)

    @field_validator("events")
    @classmethod
    def _check_events(cls, events: list[str] | None) -> list[str] | None:
        return validate_events(events)

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, secret: str | None) -> str | None:
        return None if secret is None else validate_secret(secret)


class WebhookSettings(BaseModel):
    """The endpoints that receive webhooks, and the retry and timeout policy, in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    endpoints: list[EndpointSettings] = Field(default_factory=list)
    secret: str = Field(
        default=DEFAULT_SECRET,
        description="Signing secret of endpoints without their own (Standard Webhooks format).",
    )
    max_attempts: int = Field(default=6, ge=1, le=100, description="Attempts per delivery.")
    retry_window_seconds: float = Field(
        default=300.0, gt=0, description="No attempt starts later than this after the first."
    )
    initial_retry_seconds: float = Field(
        default=1.0, gt=0, description="Backoff before the second attempt; doubles each time."
    )
    max_retry_seconds: float = Field(
        default=60.0, gt=0, description="Maximum backoff between attempts."
    )
    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    read_timeout_seconds: float = Field(default=10.0, gt=0)
    shutdown_grace_seconds: float = Field(
        default=3.0, ge=0, description="Time pending deliveries get to finish on shutdown."
    )
    max_pending: int = Field(
        default=10_000,
        ge=1,
        description="Maximum queued deliveries; a new one past it fails at once.",
    )
    max_deliveries: int = Field(
        default=1_000, ge=1, description="Finished delivery records kept for inspection."
    )
    max_connections: int = Field(
        default=10, ge=1, description="Maximum concurrent requests to all endpoints."
    )

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, secret: str) -> str:
        return validate_secret(secret)


def load_webhook_settings(data: Any, source: str) -> WebhookSettings:
    """Validate the `webhooks:` section of a config file, raising ConfigError line by line."""
    try:
        return WebhookSettings.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, source, "webhooks")) from None


def describe_settings_error(exc: ValidationError, source: str, section: str) -> str:
    """Format pydantic errors as `<file>: <field path>: <problem>`, one line per problem."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in (section, *error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        got = error.get("input")
        suffix = f" (got {got!r})" if error["type"] != "value_error" and _is_short(got) else ""
        lines.append(f"{source}: {path}: {message}{suffix}")
    if len(lines) == 1:
        return lines[0]
    return "\n".join([f"{source}: {len(lines)} problems in {section}", *lines])


def _is_short(value: Any) -> bool:
    return isinstance(value, str | int | float) and len(repr(value)) <= 80
