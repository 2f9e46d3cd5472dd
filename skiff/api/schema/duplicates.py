"""Finding keys that appear twice in one JSON object, reported by their path in the document."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Every JSON string, with the colon that follows it when it is an object key. Matching every string (not
# only keys) keeps the scan in step with the document, so a quote inside a string is never taken for one.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"\s*(:?)')


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
    if _keys_all_distinct(raw_json):
        return []
    try:
        document = json.loads(raw_json, object_pairs_hook=_collect)
    except (ValueError, RecursionError):
        return []
    found = list(dict.fromkeys(_nested(document)))
    return found


def _keys_all_distinct(raw_json: bytes) -> bool:
    """True when no object in the document repeats a key: the key tokens in the text, counted
    cheaply, equal the keys that survive decoding. Otherwise (or when in doubt) the caller looks closer."""
    try:
        document = orjson.loads(raw_json)
    except orjson.JSONDecodeError:
        return False
    return _STRING.findall(raw_json).count(b":") == _count_keys(document)


def _count_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count_keys(item) for item in value.values() if isinstance(item, dict | list))
    if isinstance(value, list):
        return sum(_count_keys(item) for item in value if isinstance(item, dict | list))
    return 0
