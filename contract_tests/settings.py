"""Settings of one kit run that the checks read: set by `broxi-mock test` or the pytest plugin."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REQUEST_TIMEOUT = 30.0


@dataclass
class KitSettings:
    """How the checks behave in this process."""

    # With one worker the kit is the only client of the token, so each request uses up one.
    workers: int = 1
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    # Where the webhooks check listens ("host:port") and the secret deliveries are signed with.
    webhook_listen: str | None = None
    webhook_secret: str | None = None
    webhook_wait: float = 10.0


CURRENT = KitSettings()


def configure(settings: KitSettings) -> None:
    """Make `settings` the ones every check of this process reads."""
    global CURRENT
    CURRENT = settings


def current() -> KitSettings:
    """Return the settings in force."""
    return CURRENT
