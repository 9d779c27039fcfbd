"""The exception every expected broxi-mock failure derives from."""

from __future__ import annotations


class MockError(Exception):
    """An expected failure with a one-line message meant for the user."""


class SpecError(MockError):
    """The OpenAPI document cannot be read or is invalid."""


class FixtureError(MockError):
    """A fixture file cannot be read or is invalid."""


class ConfigError(MockError):
    """A configuration file or option is invalid."""


class OptionError(ConfigError):
    """A command-line option's value is invalid; the CLI reports it as a usage error (exit 2)."""
