"""The kit's event stream parser follows the WHATWG rules a browser's EventSource follows."""

from __future__ import annotations

import pytest

from contract_tests.sse import parse_event_stream


@pytest.mark.parametrize("line_end", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_every_line_end_splits_events(line_end: str) -> None:
    content = f"id: 1{line_end}data: one{line_end}{line_end}data: two{line_end}{line_end}"

    stream = parse_event_stream(content.encode())

    assert [event.data for event in stream.events] == ["one", "two"]
    assert stream.unterminated == []


def test_data_lines_join_with_line_feed() -> None:
    content = b"data: first\ndata:second\ndata\n\n"

    stream = parse_event_stream(content)

    assert stream.events[0].data == "first\nsecond\n"


def test_comments_are_skipped_and_counted() -> None:
    content = b": ping\n\n:another\ndata: x\n\n"

    stream = parse_event_stream(content)

    assert [event.data for event in stream.events] == ["x"]
    assert stream.comments == 2


def test_event_field_sets_event_type() -> None:
    stream = parse_event_stream(b"event: token\ndata: x\n\ndata: y\n\n")

    assert [event.event_type for event in stream.events] == ["token", "message"]


def test_last_event_id_carries_over() -> None:
    stream = parse_event_stream(b"id: 7\ndata: a\n\ndata: b\n\n")

    assert [event.last_event_id for event in stream.events] == ["7", "7"]
    assert [event.own_id for event in stream.events] == ["7", None]


def test_unterminated_event_is_discarded() -> None:
    stream = parse_event_stream(b"data: whole\n\ndata: cut")

    assert [event.data for event in stream.events] == ["whole"]
    assert stream.unterminated == ["data: cut"]


def test_leading_bom_is_dropped() -> None:
    stream = parse_event_stream("\ufeffdata: x\n\n".encode())

    assert stream.events[0].data == "x"


def test_block_without_data_dispatches_nothing() -> None:
    stream = parse_event_stream(b"id: 3\n\nretry: 1500\n\n")

    assert stream.events == []
    assert stream.retry == 1500
