"""broxi-mock: a local mock server and contract test kit for the BroxiAI workflow API."""

from __future__ import annotations

__version__ = "0.1.0"
