"""Generate schema-valid response bodies for `Prefer: dynamic=true`, using jsf and Faker."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema_rs

from broxi_mock.spec import Spec
from mock_server.errors import ApiError

MAX_ATTEMPTS = 20
SCHEMA_REF_PREFIX = "#/components/schemas/"


class BodyGenerator:
    """Makes bodies that validate against a response schema, the same ones for the same seed.

    jsf (JSON Schema Faker) draws realistic values through Faker. The n-th body generated for
    one key is the same in every run with the same seed.
    """

    def __init__(self, spec: Spec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._fakers: dict[str, Any] = {}
        self._validators: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        # jsf understands `$defs` references only, so the document's component schemas are
        # copied under `$defs` once, with their references rewritten to match.
        components = (spec.document.get("components") or {}).get("schemas") or {}
        self._defs = _rewrite_refs(components)

    def generate(self, key: str, schema: dict[str, Any]) -> Any:
        """Return a body valid against `schema`; `key` names the schema for caching and seeding.

        Raises a 500 `ApiError` when no valid body came out of `MAX_ATTEMPTS` draws.
        """
        count = self._counts.get(key, 0)
        self._counts[key] = count + 1
        faker = self._faker_for(key, schema)
        validator = self._validator_for(key, schema)
        for attempt in range(MAX_ATTEMPTS):
            with _seeded(f"{self.seed}:{key}:{count}:{attempt}"):
                body = faker.generate()
            if validator.is_valid(body):
                return body
        raise ApiError(
            500,
            f"Could not generate a body valid against the schema of {key} "
            f"in {MAX_ATTEMPTS} attempts; use an example instead.",
            {"reason": "generation failed", "schema": key},
        )

    def _faker_for(self, key: str, schema: dict[str, Any]) -> Any:
        faker = self._fakers.get(key)
        if faker is None:
            # jsf takes about 0.4 s to import, so it loads on the first dynamic request instead
            # of delaying every server start.
            from jsf import JSF

            _fix_date_formats()
            root = dict(_rewrite_refs(self.spec.resolve(schema)))
            root["$defs"] = self._defs
            faker = self._fakers[key] = JSF(root)
        return faker

    def _validator_for(self, key: str, schema: dict[str, Any]) -> Any:
        validator = self._validators.get(key)
        if validator is None:
            document = self.spec.schema_of(schema)
            validator = jsonschema_rs.validator_for(document, validate_formats=True)
            self._validators[key] = validator
        return validator


def _rewrite_refs(node: Any) -> Any:
    text = json.dumps(node).replace(f'"{SCHEMA_REF_PREFIX}', '"#/$defs/')
    return json.loads(text)


@contextmanager
def _seeded(label: str) -> Iterator[None]:
    # NOTE: jsf and the libraries under it (Faker's shared generator, rstr) draw from the
    # process-wide `random` module and offer no way to pass a generator in. Both states are
    # saved, seeded and restored around each body, so other code keeps its own sequence. This
    # is safe because generation runs on the event loop thread and never awaits.
    # Imported here like jsf: Faker adds 5 MB to a server that never generates a body.
    from faker import generator as faker_generator

    seed = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")
    shared_faker_random = faker_generator.random
    saved = random.getstate(), shared_faker_random.getstate()
    random.seed(seed)
    shared_faker_random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        shared_faker_random.setstate(saved[1])


# Generated dates fall in this fixed range, so the same seed gives the same body on any day.
DATE_RANGE = (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def _fix_date_formats() -> None:
    # jsf dates are `faker.date_time()`, which spreads values up to the current time, so the
    # same seed gave different dates from one second to the next.
    from jsf.schema_types import string

    def date_time() -> dt.datetime:
        value: dt.datetime = string.faker.date_time_between(*DATE_RANGE, tzinfo=dt.UTC)
        return value

    string.format_map["date-time"] = lambda: date_time().isoformat()
    string.format_map["date"] = lambda: date_time().date().isoformat()
    string.format_map["time"] = lambda: date_time().time().isoformat() + "Z"
