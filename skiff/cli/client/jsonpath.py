"""The part of kubectl's JSONPath that people use: `{.a.b}`, `[n]`, `[*]`, `['dotted.key']`, filters
`[?(@.type=="Ready")]` and quoted literals such as `{"\\n"}` between expressions."""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(
    r"""\.\.?(?P<field>[A-Za-z0-9_\-/]+(?:\\\.[A-Za-z0-9_\-/]+)*)?
      | \[\s*'(?P<quoted>[^']*)'\s*\]
      | \[\s*"(?P<dquoted>[^"]*)"\s*\]
      | \[\s*(?P<index>-?\d+)\s*\]
      | \[\s*(?P<star>\*)\s*\]
      | \[\?\(\s*@(?P<filter>[^)=!]*?)\s*(?:(?P<op>==|!=)\s*(?P<value>"[^"]*"|'[^']*'|[^)\s]+))?\s*\)\]
    """,
    re.VERBOSE,
)


class JsonPathError(ValueError):
    """The expression is not one this implementation understands."""


def _segments(expression: str) -> list[str | tuple[str, ...]]:
    """Split a template into literal text and parsed expressions."""
    parts: list[str | tuple[str, ...]] = []
    position = 0
    for match in re.finditer(r"\{([^{}]*)\}", expression):
        if match.start() > position:
            parts.append(expression[position : match.start()])
        inner = match.group(1).strip()
        if len(inner) >= 2 and inner[0] == inner[-1] == '"':
            parts.append(json.loads(inner, strict=False))
        else:
            parts.append(("expr", inner))
        position = match.end()
    if position < len(expression):
        parts.append(expression[position:])
    if not any(isinstance(part, tuple) for part in parts):
        # kubectl accepts a bare `.a.b` as well as `{.a.b}`.
        return [("expr", expression.strip())]
    return parts


def _step(values: list[Any], match: re.Match[str]) -> list[Any]:
    groups = match.groupdict()
    out: list[Any] = []
    for value in values:
        out.extend(_apply(value, groups))
    return out


def _apply(value: Any, groups: dict[str, str | None]) -> list[Any]:
    key = groups["field"] or groups["quoted"] or groups["dquoted"]
    if key is not None:
        key = key.replace("\\.", ".")
        return [value[key]] if isinstance(value, dict) and key in value else []
    if groups["index"] is not None:
        index = int(groups["index"])
        return [value[index]] if isinstance(value, list) and -len(value) <= index < len(value) else []
    if groups["star"]:
        return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []
    if groups["filter"] is not None:
        items = value if isinstance(value, list) else [value]
        return [item for item in items if _matches(item, groups)]
    return [value]  # a bare `.` is the current value


def _matches(item: Any, groups: dict[str, str | None]) -> bool:
    found = evaluate(item, "{" + (groups["filter"] or ".") + "}")
    if groups["op"] is None:
        return bool(found)
    expected = (groups["value"] or "").strip("'\"")
    equal = any(_text(v) == expected for v in found)
    return equal if groups["op"] == "==" else not equal


def evaluate(obj: Any, expression: str) -> list[Any]:
    """Every value the first expression of `expression` selects (literals are ignored)."""
    for part in _segments(expression):
        if isinstance(part, tuple):
            return _select(obj, part[1])
    return []


def _select(obj: Any, path: str) -> list[Any]:
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    values, position = [obj], 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise JsonPathError(f"cannot parse JSONPath {path!r} at {path[position:]!r}")
        values = _step(values, match)
        position = match.end()
    return values


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(obj: Any, expression: str) -> str:
    """The text `-o jsonpath=...` prints for one object."""
    out: list[str] = []
    for part in _segments(expression):
        if isinstance(part, tuple):
            out.append(" ".join(_text(v) for v in _select(obj, part[1])))
        else:
            out.append(part)
    return "".join(out)


def text(value: Any) -> str:
    return _text(value)
