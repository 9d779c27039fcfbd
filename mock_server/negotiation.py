"""Content negotiation: the `Accept` and `Content-Type` headers."""

from __future__ import annotations

from collections.abc import Iterable


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a media type into its lower-case essence and its parameters."""
    essence, *raw_params = value.split(";")
    params = {}
    for raw in raw_params:
        name, _, param_value = raw.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"')
    return essence.strip().lower(), params


def choose_media_type(accept: str | None, offered: Iterable[str]) -> str | None:
    """Pick the offered media type the `Accept` header prefers, or None when none is acceptable."""
    offered = list(offered)
    if not accept or not accept.strip():
        return offered[0] if offered else None
    best: tuple[float, int, str] | None = None
    for position, media_type in enumerate(offered):
        quality = _quality(accept, media_type)
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, media_type)
    return best[2] if best else None


def _quality(accept: str, media_type: str) -> float:
    kind, _subtype = media_type.split("/", 1)
    found = 0.0
    specificity = -1
    for media_range in accept.split(","):
        essence, params = parse_media_type(media_range)
        range_kind, _, range_subtype = essence.partition("/")
        if essence == media_type:
            rank = 2
        elif range_kind == kind and range_subtype == "*":
            rank = 1
        elif essence in ("*/*", "*"):
            rank = 0
        else:
            continue
        if rank > specificity:
            specificity = rank
            try:
                found = float(params.get("q", "1"))
            except ValueError:
                found = 0.0
    return found
