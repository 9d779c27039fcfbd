"""Write plausible replies for each kind of flow, the same for the same seed and input."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from mock_server.fixtures import FlowFixture

if TYPE_CHECKING:
    from faker import Faker

# A token is a run of whitespace followed by a run of non-whitespace, or trailing whitespace,
# so the tokens of a text always concatenate back to the text byte for byte.
TOKEN_PATTERN = re.compile(r"\s*\S+|\s+")
SUPPORT_REPLIES = (
    "Thanks for reaching out! Could you share a few more details so I can help?",
    "I understand. I've noted this on your account and a specialist will follow up today.",
)
TABLES = ("orders", "customers", "invoices", "products", "events", "subscriptions")
PHRASES = {
    "fr": {"hello": "bonjour", "thank you": "merci", "good morning": "bonjour", "yes": "oui"},
    "de": {"hello": "hallo", "thank you": "danke", "good morning": "guten Morgen", "yes": "ja"},
    "es": {"hello": "hola", "thank you": "gracias", "good morning": "buenos días", "yes": "sí"},
}


def split_tokens(text: str) -> list[str]:
    """Split text into stream tokens that concatenate back to it exactly."""
    return TOKEN_PATTERN.findall(text)


def estimate_tokens(text: str) -> int:
    """Estimate a text's model tokens at about four characters each."""
    return math.ceil(len(text) / 4) if text else 0


# Replies kept for repeated inputs; past this count the cache starts again. Inputs longer than
# MAX_CACHED_INPUT_CHARS are not kept, so the cache stays within a few MB.
MAX_CACHED_REPLIES = 1024
MAX_CACHED_INPUT_CHARS = 500


class ReplyWriter:
    """Writes a flow's reply to an input, given the earlier turns of its session."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._replies: dict[tuple[str, str, tuple[str, ...]], tuple[FlowFixture, str]] = {}
        self._writers: dict[str, Callable[[FlowFixture, str, list[str], random.Random], str]] = {
            "support": _support_reply,
            "summarizer": _summary_reply,
            "sql": _sql_reply,
            "classifier": _classifier_reply,
            "translator": _translation_reply,
            "writer": _story_reply,
        }

    def write(self, flow: FlowFixture, text: str, earlier_inputs: list[str]) -> str:
        """Return the reply of `flow` to `text`."""
        # A reply depends only on the flow, the input and the earlier inputs, so repeated
        # inputs (a client or a load test sending the same prompt) reuse it.
        cacheable = len(text) + sum(map(len, earlier_inputs)) <= MAX_CACHED_INPUT_CHARS
        cache_key = (flow.id, text, tuple(earlier_inputs))
        cached = self._replies.get(cache_key) if cacheable else None
        if cached is not None and cached[0] is flow:
            return cached[1]
        key = f"{self.seed}:{flow.id}:{len(earlier_inputs)}:{text}".encode()
        rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        reply = self._writers[flow.kind](flow, text, earlier_inputs, rng)
        if cacheable:
            if len(self._replies) >= MAX_CACHED_REPLIES:
                self._replies.clear()
            self._replies[cache_key] = (flow, reply)
        return reply


_FAKERS: list[Faker] = []


def _faker(rng: random.Random) -> Faker:
    # Building a Faker takes milliseconds, so one instance is reseeded for every reply.
    # Uniform picks instead of frequency-weighted ones cost 6 us instead of 35 us a name,
    # because the weighted pick sums thousands of weights each time.
    if not _FAKERS:
        # Imported on first use: Faker adds 5 MB and 50 ms to a server that never writes a reply.
        from faker import Faker

        _FAKERS.append(Faker("en_US", use_weighting=False))
    fake = _FAKERS[0]
    fake.seed_instance(rng.getrandbits(32))
    return fake


def _excerpt(text: str, words: int = 8) -> str:
    parts = text.split()
    short = " ".join(parts[:words])
    return short + ("..." if len(parts) > words else "")


def _support_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    reply = rng.choice(flow.replies or SUPPORT_REPLIES)
    if earlier:
        return f'Following up on your earlier message ("{_excerpt(earlier[-1])}"): {reply}'
    agent = _faker(rng).first_name()
    return f"Hi, I'm {agent} from support. {reply}"


def _summary_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    gist = " ".join(sentences[:2]) or text
    people = _faker(rng)
    items = [f'- {people.first_name()}: follow up on "{_excerpt(s, 6)}"' for s in sentences[2:4]]
    items = items or [f"- {people.first_name()}: share these notes with the team"]
    if earlier:
        heading = f"Updated summary (with the {len(earlier)} earlier notes of this session)"
        return f"{heading}: {gist}\n\nAction items:\n" + "\n".join(items)
    return f"Summary: {gist}\n\nAction items:\n" + "\n".join(items)


def _sql_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    words = {word.lower().strip("?,.") for word in text.split()}
    table = next((t for t in TABLES if t in words or t.rstrip("s") in words), rng.choice(TABLES))
    limit = rng.choice((10, 20, 50, 100))
    query = (
        f"SELECT id, created_at, status\nFROM {table}\n"
        f"WHERE created_at >= NOW() - INTERVAL '30 days'\nORDER BY created_at DESC\nLIMIT {limit};"
    )
    answer = f"```sql\n{query}\n```\n\nThis returns the {limit} most recent rows of `{table}`."
    if earlier:
        return f'Building on your earlier question ("{_excerpt(earlier[-1])}"):\n\n{answer}'
    return answer


def _classifier_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    lowered = text.lower()
    category = "other"
    for name, hints in {
        "billing": ("invoice", "charge", "refund", "price", "bill"),
        "technical": ("error", "bug", "crash", "slow", "api"),
        "account": ("password", "login", "email", "account"),
    }.items():
        if any(hint in lowered for hint in hints):
            category = name
            break
    priority = "urgent" if "urgent" in lowered or "!" in text else rng.choice(("low", "normal"))
    sentiment = "negative" if any(w in lowered for w in ("angry", "bad", "not ")) else "neutral"
    label = {"category": category, "priority": priority, "sentiment": sentiment}
    return json.dumps(label)


def _translation_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    language = rng.choice(sorted(PHRASES))
    if earlier:
        # A session keeps translating into the language its first turn was given.
        first = random.Random(hashlib.sha256(earlier[0].encode()).digest())
        language = first.choice(sorted(PHRASES))
    translated = text
    for source, target in PHRASES[language].items():
        translated = re.sub(re.escape(source), target, translated, flags=re.IGNORECASE)
    return f"[{language}] {translated}"


def _story_reply(flow: FlowFixture, text: str, earlier: list[str], rng: random.Random) -> str:
    # Later turns of a session continue the story of its first turn, with the same hero.
    first = earlier[0] if earlier else text
    cast = _faker(random.Random(hashlib.sha256(first.encode()).digest()))
    hero, place = cast.first_name(), cast.city()
    fake = _faker(rng)
    opening = f'Once upon a time in {place}, {hero} was asked: "{_excerpt(text, 12)}"'
    if earlier:
        opening = f"Chapter {len(earlier) + 1}. Back in {place}, {hero} now wondered: " + (
            f'"{_excerpt(text, 12)}"'
        )
    paragraphs = [
        opening,
        " ".join(fake.sentences(nb=3)),
        f"And so {hero} found the answer at last. The end. ✨",
    ]
    return "\n\n".join(paragraphs)
