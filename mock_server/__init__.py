"""The broxi-mock server: a Starlette app built from the OpenAPI document."""

from __future__ import annotations

from mock_server.app import create_app
from mock_server.config import MockConfig

__all__ = ["MockConfig", "create_app"]
