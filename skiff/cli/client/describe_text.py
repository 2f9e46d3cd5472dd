"""The text layout of `describe`: `Key:  value` lines aligned per nesting level, and small tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.api.timefmt import age, try_parse_time
from skiff.cli.client.printing import aligned

INDENT = "  "
NONE = "<none>"


@dataclass
class Section:
    """Lines of one describe output: (level, key, value) pairs, free text and tables."""

    lines: list[tuple[int, str | None, str]] = field(default_factory=list)

    def kv(self, key: str, value: Any, level: int = 0) -> None:
        self.lines.append((level, key, _value_text(value)))

    def heading(self, key: str, level: int = 0) -> None:
        self.lines.append((level, key, ""))

    def text(self, line: str, level: int = 0) -> None:
        self.lines.append((level, None, line))

    def mapping(self, key: str, values: dict[str, Any] | None, level: int = 0, sep: str = "=") -> None:
        """Labels and annotations: first pair beside the key, the rest below it, sorted."""
        pairs = [f"{k}{sep}{v}" for k, v in sorted((values or {}).items())]
        self.kv(key, "\n".join(pairs) if pairs else NONE, level)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], level: int = 1) -> None:
        underline = ["-" * len(h) for h in header]
        for line in aligned([list(header), underline, *[list(r) for r in rows]]):
            self.text(line, level)

    def render(self) -> str:
        widths: dict[int, int] = {}
        for level, key, value in self.lines:
            if key is not None and value:
                widths[level] = max(widths.get(level, 0), len(key) + 1)
        out = []
        for level, key, value in self.lines:
            indent = INDENT * level
            if key is None:
                out.append(f"{indent}{value}".rstrip())
                continue
            label = f"{key}:"
            if not value:
                out.append(f"{indent}{label}")
                continue
            pad = widths[level] + 2
            first, *rest = value.split("\n")
            out.append(f"{indent}{label.ljust(pad)}{first}".rstrip())
            out.extend(f"{indent}{' ' * pad}{line}".rstrip() for line in rest)
        return "\n".join(out) + "\n"


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def timestamp(value: Any) -> str:
    """kubectl's describe time format: `Mon, 02 Jan 2006 15:04:05 +0000`."""
    moment = try_parse_time(value)
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000") if moment else NONE


def since(value: Any) -> str:
    return age(value) if value else NONE


def metadata_lines(section: Section, obj: dict[str, Any], namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    section.kv("Name", meta.get("name"))
    if namespaced:
        section.kv("Namespace", meta.get("namespace"))
    section.mapping("Labels", meta.get("labels"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not _hidden_annotation(k)}
    section.mapping("Annotations", annotations)


def _hidden_annotation(key: str) -> bool:
    # kubectl leaves out the copy of the applied manifest: it is long and says nothing new.
    return key == "kubectl.kubernetes.io/last-applied-configuration"


def controlled_by(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None


def selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector in kubectl's string form."""
    if not selector:
        return NONE
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {operator.lower()} ({','.join(values)})")
    return ",".join(parts) or NONE


def nested(section: Section, value: Any, level: int) -> None:
    """Any structure as indented `Key: value` lines (the generic describer's body)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                section.heading(_title(key), level)
                nested(section, item, level + 1)
            else:
                section.kv(_title(key), _scalar(item), level)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                nested(section, item, level)
                section.text("", level)
            else:
                section.text(_scalar(item), level)


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return NONE
    return _value_text(value)


def _title(key: str) -> str:
    return key[:1].upper() + key[1:]
