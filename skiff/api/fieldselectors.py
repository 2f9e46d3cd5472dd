"""Field selectors: the `?fieldSelector=` syntax of comma-separated `field=value`, `field==value` or
`field!=value` terms, where a backslash escapes `\\`, `,` and `=` inside values. Which fields a kind
allows is the registry's business (each strategy lists its selectable fields).

Parse errors are 400 BadRequest with the messages kube-apiserver gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from skiff.api.errors import bad_request
from skiff.api.selectors import DOUBLE_EQUALS, EQUALS, NOT_EQUALS

_FIELD_OPERATORS = (NOT_EQUALS, DOUBLE_EQUALS, EQUALS)  # longest first, so "==" is not "=" + "=x"


class FieldRequirement(NamedTuple):
    field: str
    operator: str
    value: str


@dataclass
class FieldSelector:
    """A conjunction of `field op value` terms over an object's selectable fields."""

    requirements: list[FieldRequirement] = field(default_factory=list)

    @property
    def fields(self) -> set[str]:
        return {r.field for r in self.requirements}

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, values: Mapping[str, str]) -> bool:
        """Whether an object whose selectable fields are `values` passes; absent fields read as ""."""
        for requirement in self.requirements:
            equal = values.get(requirement.field, "") == requirement.value
            if equal != (requirement.operator != NOT_EQUALS):
                return False
        return True

    def value_for(self, field_name: str) -> str | None:
        """The exact value an `=`/`==` term demands of `field_name` (serves `metadata.name=X` fast)."""
        for requirement in self.requirements:
            if requirement.field == field_name and requirement.operator != NOT_EQUALS:
                return requirement.value
        return None

    def __str__(self) -> str:
        return ",".join(f"{r.field}{r.operator}{escape_field_value(r.value)}" for r in self.requirements)


def escape_field_value(value: str) -> str:
    """Escape a literal so it can stand as a field selector value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped_commas(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> FieldRequirement | None:
    # The left side has no escaping, so the first operator occurrence splits the term.
    for index in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, index):
                return FieldRequirement(term[:index], operator, term[index + len(operator) :])
    return None


def _unescape_field_value(raw: str) -> str:
    out: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise bad_request(f"invalid field selector: unescaped character in value: {char}")
        else:
            out.append(char)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the `fieldSelector` query syntax; an empty string selects everything.

    Raises ApiError 400 with kube-apiserver's message for a term without an operator or a bad escape.
    """
    requirements = []
    # Terms are kept in sorted order, as kube does, so the printed form is canonical.
    for term in sorted(_split_unescaped_commas(text)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        requirements.append(split._replace(value=_unescape_field_value(split.value)))
    return FieldSelector(requirements)
