"""Finding keys that appear twice in one JSON object, reported by their path in the document."""

from __future__ import annotations

import json
from typing import Any


class _Object(dict):
    """A decoded JSON object that remembers the duplicate paths found inside it (relative to itself)."""

    __slots__ = ("duplicates",)


def _join(prefix: str, relative: str) -> str:
    return prefix + relative if relative.startswith("[") else f"{prefix}.{relative}"


def _nested(value: Any) -> list[str]:
    """Duplicate paths inside value, relative to it ("a.b", "[0].name")."""
    if isinstance(value, _Object):
        return value.duplicates
    if isinstance(value, list):
        found = []
        for index, item in enumerate(value):
            found.extend(_join(f"[{index}]", path) for path in _nested(item))
        return found
    return []


def _collect(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    duplicates: list[str] = []
    for key, value in pairs:
        if key in obj:
            duplicates.append(key)
        duplicates.extend(_join(key, path) for path in _nested(value))
        obj[key] = value
    obj.duplicates = duplicates
    return obj


def duplicate_fields(raw_json: bytes) -> list[str]:
    """Paths of keys repeated within one object of a JSON document, such as "spec.replicas".

    Invalid JSON has no duplicates to report; the decoder that reads the body reports the syntax error.
    """
    try:
        document = json.loads(raw_json, object_pairs_hook=_collect)
    except (ValueError, RecursionError):
        return []
    found = list(dict.fromkeys(_nested(document)))
    return found
