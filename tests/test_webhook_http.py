"""Parsing the Retry-After header of a receiver's response."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from mock_server.webhook_http import parse_retry_after


def test_retry_after_seconds_are_read() -> None:
    assert parse_retry_after("120") == 120.0


def test_retry_after_date_is_seconds_from_now() -> None:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)

    seconds = parse_retry_after(email.utils.format_datetime(moment, usegmt=True))

    assert seconds is not None
    assert 80 <= seconds <= 90


@pytest.mark.parametrize(
    "value", [None, "soon", "-5", ""], ids=["missing", "word", "negative", "empty"]
)
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_past_retry_after_date_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
