"""Parse a `text/event-stream` body by the event stream rules of the WHATWG HTML standard.

The standard (section 9.2.6, "Interpreting an event stream") fixes how every client reads a stream:
lines end with CRLF, LF or CR; a line starting with a colon is a comment; `data:` lines of one
event are joined with LF; an empty line dispatches the event; and an event still open when the
stream ends is discarded. This parser follows those rules and also keeps what a contract check
needs to see: which fields each event carried and whether the stream ended inside an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LINE_END = re.compile(r"\r\n|\r|\n")
BOM = "\ufeff"


@dataclass(frozen=True)
class Event:
    """One dispatched event: its data, type, last event id and the fields its lines set."""

    data: str
    event_type: str
    last_event_id: str
    fields: frozenset[str]
    own_id: str | None


@dataclass
class EventStream:
    """Every event a client would dispatch, plus the lines the standard makes a client ignore."""

    events: list[Event] = field(default_factory=list)
    comments: int = 0
    retry: int | None = None
    # Lines after the last dispatched event that no empty line closed; a client discards them.
    unterminated: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    data: list[str] = field(default_factory=list)
    event_type: str = ""
    fields: set[str] = field(default_factory=set)
    own_id: str | None = None
    lines: list[str] = field(default_factory=list)


def parse_event_stream(content: bytes) -> EventStream:
    """Return the events a conforming client dispatches from `content`."""
    # The standard decodes the stream as UTF-8 with replacement and drops one leading BOM.
    text = content.decode("utf-8", errors="replace").removeprefix(BOM)
    *lines, remainder = LINE_END.split(text)
    stream = EventStream()
    pending = _Pending()
    last_event_id = ""
    for line in lines:
        if line == "":
            if pending.data:
                stream.events.append(_dispatch(pending, last_event_id))
            pending = _Pending()
            continue
        pending.lines.append(line)
        if line.startswith(":"):
            stream.comments += 1
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        last_event_id = _apply_field(stream, pending, name, value, last_event_id)
    leftover = [*pending.lines, remainder] if remainder else pending.lines
    stream.unterminated = [line for line in leftover if not line.startswith(":")]
    return stream


def _apply_field(
    stream: EventStream, pending: _Pending, name: str, value: str, last_event_id: str
) -> str:
    pending.fields.add(name)
    if name == "event":
        pending.event_type = value
    elif name == "data":
        pending.data.append(value)
    elif name == "id" and "\x00" not in value:
        pending.own_id = value
        return value
    elif name == "retry" and value.isascii() and value.isdigit():
        stream.retry = int(value)
    return last_event_id


def _dispatch(pending: _Pending, last_event_id: str) -> Event:
    return Event(
        data="\n".join(pending.data),
        event_type=pending.event_type or "message",
        last_event_id=last_event_id,
        fields=frozenset(pending.fields),
        own_id=pending.own_id,
    )
