"""The YAML file of `broxi-mock serve --config FILE`: one top-level section per concern.

Every key is optional. A value given on the command line wins over the file, and the file wins
over the option's default. To add a section, declare its model here and add one field to
`ServeFile`; unknown sections are rejected, so a typo never goes unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from broxi_mock.errors import ConfigError
from broxi_mock.spec import read_yaml
from mock_server.chaos import MAX_LATENCY_MS, ChaosRule
from mock_server.config import RATE_LIMIT_PATTERN
from mock_server.cors import origin_regex
from mock_server.webhook_settings import WebhookSettings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LatencySection(Section):
    """Added latency in milliseconds, drawn evenly from `min_ms` to `max_ms`."""

    min_ms: Annotated[int, Field(ge=0, le=MAX_LATENCY_MS)]
    max_ms: Annotated[int | None, Field(ge=0, le=MAX_LATENCY_MS)] = None

    @model_validator(mode="after")
    def _max_not_below_min(self) -> LatencySection:
        if self.max_ms is not None and self.max_ms < self.min_ms:
            raise ValueError(f"max_ms {self.max_ms} is below min_ms {self.min_ms}")
        return self

    def as_range(self) -> tuple[int, int]:
        return self.min_ms, self.max_ms if self.max_ms is not None else self.min_ms


class FailureSection(Section):
    """The share of requests that fail, and the documented error status they fail with."""

    rate: Annotated[float, Field(ge=0, le=1)]
    status: Annotated[int, Field(ge=400, le=599)] = 503


class RouteChaosSection(Section):
    latency: LatencySection | None = None
    failure: FailureSection | None = None

    def rule(self, origin: str, route: str | None) -> ChaosRule:
        return ChaosRule(
            origin,
            route,
            latency_ms=self.latency.as_range() if self.latency else None,
            failure_rate=self.failure.rate if self.failure else None,
            failure_status=self.failure.status if self.failure else None,
        )


class ChaosSection(RouteChaosSection):
    """Latency and failures for every route, and per route under `routes`.

    A route is named by its operationId (`runFlow`) or as `METHOD /path` with the spec's path
    (`POST /flows/{flow_id}/run`).
    """

    routes: dict[str, RouteChaosSection] = {}


class CorsSection(Section):
    allowed_origins: Annotated[list[str], Field(min_length=1)]

    @field_validator("allowed_origins")
    @classmethod
    def _valid_origins(cls, origins: list[str]) -> list[str]:
        try:
            origin_regex(origins)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return origins


class JournalSection(Section):
    size: Annotated[int, Field(ge=0, le=100_000)]


class LoggingSection(Section):
    format: Literal["text", "json"] | None = None
    level: Literal["debug", "info", "warning", "error"] | None = None
    access_log: bool | None = None


class ServeFile(Section):
    """The whole config file."""

    seed: int | None = None
    rate_limit: str | None = None
    journal: JournalSection | None = None
    logging: LoggingSection | None = None
    cors: CorsSection | None = None
    chaos: ChaosSection | None = None
    webhooks: WebhookSettings | None = None
    # Seconds without a run after which an active session ends; 0 keeps sessions open.
    session_idle_timeout: Annotated[float | None, Field(ge=0)] = None
    # Each further concern adds its section as one field here and, when it maps to `serve`
    # options, its values in `option_values`.

    @field_validator("rate_limit")
    @classmethod
    def _valid_rate_limit(cls, value: str | None) -> str | None:
        if value is not None and RATE_LIMIT_PATTERN.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not 'tier', 'off' or 'N/min'")
        if value is not None and value.endswith("/min") and int(value[:-4]) < 1:
            raise ValueError(f"{value!r} must allow at least 1/min")
        return value

    def option_values(self) -> dict[str, Any]:
        """Return the values the file sets, under the names of the `serve` options."""
        values: dict[str, Any] = {"seed": self.seed, "rate_limit": self.rate_limit}
        if self.journal is not None:
            values["journal_size"] = self.journal.size
        if self.logging is not None:
            values["log_format"] = self.logging.format
            values["log_level"] = self.logging.level
            values["access_log"] = self.logging.access_log
        if self.cors is not None:
            values["cors_origins"] = tuple(self.cors.allowed_origins)
        values["session_idle_timeout"] = self.session_idle_timeout
        values.update(self._webhook_option_values())
        return {name: value for name, value in values.items() if value is not None}

    def _webhook_option_values(self) -> dict[str, Any]:
        # Only the keys the file sets: the others keep the options' defaults.
        if self.webhooks is None:
            return {}
        settings = self.webhooks
        options = {
            "secret": "webhook_secret",
            "max_attempts": "webhook_max_attempts",
            "retry_window_seconds": "webhook_retry_window",
        }
        in_file = settings.model_fields_set
        return {key: getattr(settings, name) for name, key in options.items() if name in in_file}

    def chaos_rules(self, path: Path) -> list[ChaosRule]:
        """Return the chaos rules of the file, each naming its place in the file."""
        if self.chaos is None:
            return []
        rules = [self.chaos.rule(f"{path}: chaos", None)]
        for route, section in self.chaos.routes.items():
            rules.append(section.rule(f"{path}: chaos.routes.{route}", route))
        return rules


def load_serve_file(path: Path) -> ServeFile:
    """Read and validate a config file; raise `ConfigError` with one line naming the field."""
    data = read_yaml(path, ConfigError)
    if data is None:
        return ServeFile()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level is {type(data).__name__}, expected a mapping")
    try:
        return ServeFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc)}") from exc


def merge_options(
    defaults: dict[str, Any], from_file: dict[str, Any], explicit: set[str]
) -> dict[str, Any]:
    """Combine option values: an explicit command-line value, then the file, then the default."""
    merged = dict(defaults)
    for name, value in from_file.items():
        if name not in explicit:
            merged[name] = value
    return merged


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "top level"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if error["type"] == "extra_forbidden":
        known = _known_fields(error["loc"][:-1])
        expected = f" (expected one of {known})" if known else ""
        return f"{location}: unknown field{expected}{suffix}"
    # A signing secret is never echoed, not even a malformed one; our own checks name the value.
    hidden = error["type"] in ("missing", "value_error") or error["loc"][-1:] == ("secret",)
    got = "" if hidden else f" (got {error['input']!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}{got}{suffix}"


def _known_fields(parent: tuple[int | str, ...]) -> list[str]:
    # Walk the models along the error's location; a key under `chaos.routes` is a route name.
    model: type[BaseModel] | None = ServeFile
    inside_routes = False
    for part in parent:
        if model is None:
            return []
        if isinstance(part, int):
            continue  # An item of a list of sections has the list's section type.
        if inside_routes:
            model, inside_routes = RouteChaosSection, False
        elif model is ChaosSection and part == "routes":
            inside_routes = True
        else:
            field = model.model_fields.get(str(part))
            model = _section_type(field.annotation) if field is not None else None
    return sorted(model.model_fields) if model is not None and not inside_routes else []


def _section_type(annotation: Any) -> type[BaseModel] | None:
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
