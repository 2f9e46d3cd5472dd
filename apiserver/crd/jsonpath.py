"""The JSONPath subset that printer columns and scale paths use.

Supported: `.field`, `['field']`, `[N]` (negative too), `[*]`, and filters `[?(@.key=="value")]` (also
`!=`, and `[?(@.key)]` for presence), e.g. `.status.conditions[?(@.type=="Ready")].status`.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-$@]+)
      | \[\s*'(?P<quoted>[^']*)'\s*\]
      | \[\s*"(?P<dquoted>[^"]*)"\s*\]
      | \[(?P<index>-?\d+)\]
      | \[(?P<star>\*)\]
      | \.(?P<dotstar>\*)
      | \[\?\(@\.(?P<fkey>[A-Za-z0-9_.\-]+)\s*(?:(?P<op>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+))?\s*\)\]
    """,
    re.VERBOSE,
)


class JsonPathError(ValueError):
    pass


def parse(expression: str) -> list[tuple[str, Any]]:
    """Compile an expression into steps; raises JsonPathError for what the subset does not cover."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    if not text.startswith(".") and not text.startswith("["):
        raise JsonPathError(f"must be a simple json path starting with a dot: {expression!r}")
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise JsonPathError(f"unsupported json path at {text[position:]!r}")
        position = match.end()
        if match.group("field") is not None:
            steps.append(("field", match.group("field")))
        elif match.group("quoted") is not None:
            steps.append(("field", match.group("quoted")))
        elif match.group("dquoted") is not None:
            steps.append(("field", match.group("dquoted")))
        elif match.group("index") is not None:
            steps.append(("index", int(match.group("index"))))
        elif match.group("star") or match.group("dotstar"):
            steps.append(("all", None))
        else:
            raw = match.group("fval")
            value = raw[1:-1] if raw and raw[0] in "\"'" else raw
            steps.append(("filter", (match.group("fkey").split("."), match.group("op"), value)))
    return steps


def find(expression: str | list[tuple[str, Any]], obj: Any) -> list[Any]:
    """Every value the expression selects in obj (empty when nothing matches)."""
    steps = parse(expression) if isinstance(expression, str) else expression
    current = [obj]
    for kind, arg in steps:
        following: list[Any] = []
        for value in current:
            if kind == "field":
                if isinstance(value, dict) and arg in value:
                    following.append(value[arg])
            elif kind == "index":
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    following.append(value[arg])
            elif kind == "all":
                if isinstance(value, list):
                    following.extend(value)
                elif isinstance(value, dict):
                    following.extend(value.values())
            elif isinstance(value, list):
                following.extend(item for item in value if _filter_matches(item, arg))
        current = following
    return current


def _filter_matches(item: Any, condition: tuple[list[str], str | None, str | None]) -> bool:
    keys, op, expected = condition
    value = item
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    if op is None:
        return True
    text = value if isinstance(value, str) else ("true" if value is True else "false" if value is False else str(value))
    return (text == expected) if op == "==" else (text != expected)


def get(path: str, obj: Any) -> Any:
    """The single value at a plain `.a.b` path, or None."""
    found = find(path, obj)
    return found[0] if found else None
