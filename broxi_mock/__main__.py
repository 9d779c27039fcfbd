"""Allow `python -m broxi_mock`."""

from __future__ import annotations

from broxi_mock.cli import main

main()
