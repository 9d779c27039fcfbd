"""Settings of one mock server instance."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broxi_mock.errors import ConfigError
from broxi_mock.spec import bundled_admin_spec_path, bundled_fixtures_dir, bundled_spec_path
from mock_server.chaos import ChaosRule
from mock_server.cors import DEFAULT_ORIGINS, origin_regex
from mock_server.journal import DEFAULT_JOURNAL_SIZE
from mock_server.store import DEFAULT_MAX_RUNS
from mock_server.webhook_settings import WebhookSettings

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Matched with fullmatch: `$` would also match before a trailing newline.
RATE_LIMIT_PATTERN = re.compile(r"(tier|off|([0-9]+)/min)")
DEFAULT_SESSION_IDLE_TIMEOUT = 30 * 60.0


# A minute between tokens is slower than any real flow; more only makes runs that never end.
MAX_STREAM_DELAY_MS = 60_000


@dataclass(frozen=True)
class MockConfig:
    """Everything `create_app` needs; the defaults serve the bundled spec and fixtures."""

    spec_path: Path = field(default_factory=bundled_spec_path)
    admin_spec_path: Path = field(default_factory=bundled_admin_spec_path)
    fixtures_dir: Path = field(default_factory=bundled_fixtures_dir)
    seed: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    stream_delay_ms: int | None = None
    heartbeat_seconds: float = 15.0
    rate_limit: str = "tier"
    max_runs: int = DEFAULT_MAX_RUNS
    public_url: str = "http://127.0.0.1:4010"
    chaos: tuple[ChaosRule, ...] = ()
    cors_origins: tuple[str, ...] = DEFAULT_ORIGINS
    journal_size: int = DEFAULT_JOURNAL_SIZE
    # Seconds since the epoch; tests pass a fake clock to move rate-limit windows without waiting.
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    state_path: Path | None = None
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # Seconds without activity after which an active session ends; None keeps sessions open.
    session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_TIMEOUT

    def __post_init__(self) -> None:
        if not RATE_LIMIT_PATTERN.fullmatch(self.rate_limit):
            raise ConfigError(
                f"rate_limit: invalid value {self.rate_limit!r} (expected 'tier', 'off' or 'N/min')"
            )
        if self.rate_limit.endswith("/min") and int(self.rate_limit[:-4]) < 1:
            raise ConfigError(f"rate_limit: {self.rate_limit!r} must allow at least 1/min")
        if self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes: {self.max_body_bytes} must be at least 1")
        delay = self.stream_delay_ms
        if delay is not None and not 0 <= delay <= MAX_STREAM_DELAY_MS:
            raise ConfigError(
                f"stream_delay_ms: {delay} is out of range (expected 0 to {MAX_STREAM_DELAY_MS})"
            )
        if not math.isfinite(self.heartbeat_seconds) or self.heartbeat_seconds <= 0:
            raise ConfigError(
                f"heartbeat_seconds: {self.heartbeat_seconds} must be a positive number"
            )
        if self.max_runs < 1:
            raise ConfigError(f"max_runs: {self.max_runs} must be at least 1")
        if self.journal_size < 0:
            raise ConfigError(f"journal_size: {self.journal_size} must not be negative")
        origin_regex(self.cors_origins)
        timeout = self.session_idle_timeout
        if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
            raise ConfigError(
                f"session_idle_timeout: {self.session_idle_timeout} must be positive "
                "(or None to keep sessions open)"
            )
