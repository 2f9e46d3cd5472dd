"""Label selectors, as the API server and controllers use them (field selectors are in `fieldselectors`).

Label selectors come in two shapes: the query-string syntax of `?labelSelector=` and `kubectl get -l`
(`app=web,tier in (a,b),!canary`), and the structured `metav1.LabelSelector` object found in
Deployments, Services' peers, NetworkPolicies and the like (`matchLabels` + `matchExpressions`).
Both parse into one `LabelSelector`, so matching, printing and exact-match lookups behave the same.

Parse errors are 400 BadRequest with the messages kube-apiserver gives, because scripts and users
recognise them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from skiff.api.errors import Cause, bad_request
from skiff.api.validation import label_value, qualified_name

# Operator spellings as the Kubernetes `selection` package names them.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_EXACT_OPERATORS = (EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)

# Label keys and values follow the same rules (and messages) as every other name check in skiff.api.
qualified_name_errors = qualified_name
label_value_errors = label_value
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _invalid_text(path: str, value: Any, detail: str) -> str:
    """A field error as kube prints it: `<path>: Invalid value: "<value>": <detail>`."""
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


# ---------------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: a key, an operator and (for most operators) values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            # A missing key is "not equal" to anything, so these select unlabeled objects too.
            return not present or labels[self.key] not in self.values
        if op == EXISTS:
            return present
        if op == DOES_NOT_EXIST:
            return not present
        return present and self._compares_numerically(labels[self.key])

    def _compares_numerically(self, label_value: str) -> bool:
        if len(self.values) != 1 or not _INTEGER_RE.fullmatch(label_value):
            return False
        have, want = int(label_value), int(self.values[0])
        return have > want if self.operator == GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements. `selects_nothing` is the nil-selector case (matches no object)."""

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(selects_nothing=True)

    @classmethod
    def from_requirements(cls, requirements: Iterable[Requirement]) -> LabelSelector:
        # Sorting (stably) by key makes the printed form canonical, as in Kubernetes.
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (it selects every object)."""
        return not self.requirements and not self.selects_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.selects_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value `key` must have for a match (from `=`, `==` or a one-value `in`), if any."""
        for requirement in self.requirements:
            if requirement.key != key:
                continue
            if requirement.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(requirement.values) == 1:
                return requirement.values[0]
            return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


class _Tok(Enum):
    END = "end of string"
    IDENT = "identifier"
    COMMA = ","
    OPEN = "("
    CLOSE = ")"
    NOT = "!"
    EQ = "="
    DEQ = "=="
    NEQ = "!="
    GT = ">"
    LT = "<"
    IN = "in"
    NOTIN = "notin"


_SYMBOLS = {
    "==": _Tok.DEQ,
    "!=": _Tok.NEQ,
    "=": _Tok.EQ,
    "!": _Tok.NOT,
    "(": _Tok.OPEN,
    ")": _Tok.CLOSE,
    ",": _Tok.COMMA,
    ">": _Tok.GT,
    "<": _Tok.LT,
}
_SPECIAL_CHARS = frozenset("=!(),<>")
_WHITESPACE = frozenset(" \t\r\n")
_OPERATOR_TOKENS = {
    _Tok.IN: IN,
    _Tok.NOTIN: NOT_IN,
    _Tok.EQ: EQUALS,
    _Tok.DEQ: DOUBLE_EQUALS,
    _Tok.NEQ: NOT_EQUALS,
    _Tok.GT: GREATER_THAN,
    _Tok.LT: LESS_THAN,
}


class _Token(NamedTuple):
    kind: _Tok
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= size:
            tokens.append(_Token(_Tok.END, ""))
            return tokens
        if text[pos] in _SPECIAL_CHARS:
            # Two-character operators win over their one-character prefixes ("!=" is not "!" "=").
            symbol = text[pos : pos + 2] if text[pos : pos + 2] in _SYMBOLS else text[pos]
            tokens.append(_Token(_SYMBOLS[symbol], symbol))
            pos += len(symbol)
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL_CHARS and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        kind = {"in": _Tok.IN, "notin": _Tok.NOTIN}.get(word, _Tok.IDENT)
        tokens.append(_Token(kind, word))


class _SyntaxError(Exception):
    """A parse failure; its text becomes the 400 message."""


class _LabelParser:
    """Recursive descent over the token list; `in`/`notin` are plain words where a value is expected."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, as_value: bool = True) -> _Token:
        return self._as_value(self.tokens[self.pos]) if as_value else self.tokens[self.pos]

    def take(self, as_value: bool = True) -> _Token:
        token = self.peek(as_value)
        self.pos += 1
        return token

    @staticmethod
    def _as_value(token: _Token) -> _Token:
        if token.kind in (_Tok.IN, _Tok.NOTIN):
            return _Token(_Tok.IDENT, token.text)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token = self.peek()
            if token.kind == _Tok.END:
                return requirements
            if token.kind not in (_Tok.IDENT, _Tok.NOT):
                raise _SyntaxError(f"found '{token.text}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except _SyntaxError as exc:
                raise _SyntaxError(f"unable to parse requirement: {exc}") from None
            self.after_requirement()

    def after_requirement(self) -> None:
        token = self.peek()
        if token.kind == _Tok.END:
            return  # the loop sees END and finishes
        self.pos += 1
        if token.kind != _Tok.COMMA:
            raise _SyntaxError(f"found '{token.text}', expected: ',' or 'end of string'")
        following = self.peek()
        if following.kind not in (_Tok.IDENT, _Tok.NOT):
            raise _SyntaxError(f"found '{following.text}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        token = self.take()
        negated = token.kind == _Tok.NOT
        if negated:
            token = self.take()
        if token.kind != _Tok.IDENT:
            raise _SyntaxError(f"found '{token.text}', expected: identifier")
        key = token.text
        key_errors = qualified_name_errors(key)
        if key_errors:
            # kube-apiserver reports the key error against an unset field path, printed "<nil>".
            raise _SyntaxError(_invalid_text("<nil>", key, "; ".join(key_errors)))
        if negated:
            return _new_requirement(key, DOES_NOT_EXIST, [])
        if self.peek().kind in (_Tok.END, _Tok.COMMA):
            return _new_requirement(key, EXISTS, [])
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return _new_requirement(key, operator, sorted(values))

    def operator(self) -> str:
        token = self.take(as_value=False)
        if token.kind not in _OPERATOR_TOKENS:
            raise _SyntaxError(f"found '{token.text}', expected: {', '.join(_BINARY_OPERATORS)}")
        return _OPERATOR_TOKENS[token.kind]

    def exact_value(self) -> set[str]:
        if self.peek().kind in (_Tok.END, _Tok.COMMA):
            return {""}
        token = self.take()
        if token.kind != _Tok.IDENT:
            raise _SyntaxError(f"found '{token.text}', expected: identifier")
        return {token.text}

    def value_set(self) -> set[str]:
        token = self.take()
        if token.kind != _Tok.OPEN:
            raise _SyntaxError(f"found '{token.text}' expected: '('")
        values: set[str] = set()
        expecting, after_comma = True, False
        while True:
            token = self.take()
            if token.kind == _Tok.IDENT and expecting:
                values.add(token.text)
                expecting = False
            elif token.kind == _Tok.COMMA:
                if expecting:
                    values.add("")  # "(,a)" and "(a,,b)" hold the empty value
                expecting, after_comma = True, True
            elif token.kind == _Tok.CLOSE:
                if expecting:
                    values.add("")  # "()" and "(a,)" hold the empty value too
                return values
            else:
                raise _SyntaxError(self._value_set_complaint(token, expecting, after_comma))

    @staticmethod
    def _value_set_complaint(token: _Token, expecting: bool, after_comma: bool) -> str:
        if not expecting:
            return f"found '{token.text}', expected: ',' or ')'"
        if after_comma:
            return f"found '{token.text}', expected: ',', or identifier"
        return f"found '{token.text}', expected: ',', ')' or identifier"


def _requirement_errors(key: str, operator: str, values: list[str], path: str = "") -> list[str]:
    """Field errors for one requirement, with paths relative to `path` (kube's NewRequirement rules)."""
    errors: list[str] = []
    values_path = f"{path}.values" if path else "values"
    key_problems = qualified_name_errors(key)
    if key_problems:
        errors.append(_invalid_text(f"{path}.key" if path else "key", key, "; ".join(key_problems)))
    if operator in (IN, NOT_IN) and not values:
        errors.append(_invalid_text(values_path, values, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        errors.append(_invalid_text(values_path, values, "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST) and values:
        errors.append(_invalid_text(values_path, values, "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        errors.extend(_numeric_value_errors(values, values_path))
    for index, value in enumerate(values):
        problems = label_value_errors(value)
        if problems:
            errors.append(_invalid_text(f"{values_path}[{index}][{key}]", value, "; ".join(problems)))
    return errors


def _numeric_value_errors(values: list[str], values_path: str) -> list[str]:
    if len(values) != 1:
        return [_invalid_text(values_path, values, "for 'Gt', 'Lt' operators, exactly one value is required")]
    errors = []
    for index, value in enumerate(values):
        if not _INTEGER_RE.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
            detail = "for 'Gt', 'Lt' operators, the value must be an integer"
            errors.append(_invalid_text(f"{values_path}[{index}]", value, detail))
    return errors


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    errors = _requirement_errors(key, operator, values)
    if errors:
        raise _SyntaxError(_aggregate(errors))
    return Requirement(key, operator, tuple(values))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the `labelSelector` query syntax; an empty string selects everything.

    Raises ApiError 400 with kube-apiserver's message when the text is not a valid selector.
    """
    try:
        requirements = _LabelParser(text).parse()
    except _SyntaxError as exc:
        raise bad_request(str(exc)) from None
    return LabelSelector.from_requirements(requirements)


# ---------------------------------------------------------------------------------------------------
# metav1.LabelSelector objects
# ---------------------------------------------------------------------------------------------------

_OBJECT_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """Turn a `metav1.LabelSelector` into a LabelSelector.

    `None` (the field is absent) selects nothing, while `{}` selects everything — the reading most
    controllers use (a ReplicaSet without a selector owns no pods; an empty selector matches all).
    Raises ApiError 400 for an operator outside In/NotIn/Exists/DoesNotExist or invalid keys/values.
    """
    if sel is None:
        return LabelSelector.nothing()
    requirements = [_checked(k, EQUALS, [v]) for k, v in (sel.get("matchLabels") or {}).items()]
    for expression in sel.get("matchExpressions") or []:
        requirements.append(_requirement_from_expression(expression))
    return LabelSelector.from_requirements(requirements)


def _requirement_from_expression(expression: Mapping[str, Any]) -> Requirement:
    raw_operator = expression.get("operator")
    operator = _OBJECT_OPERATORS.get(raw_operator) if isinstance(raw_operator, str) else None
    if operator is None:
        raise bad_request(f'"{raw_operator}" is not a valid label selector operator')
    return _checked(expression.get("key", ""), operator, list(expression.get("values") or []))


def _checked(key: Any, operator: str, values: list[Any]) -> Requirement:
    key, values = str(key), [str(v) for v in values]
    errors = _requirement_errors(key, operator, values)
    if errors:
        raise bad_request(_aggregate(errors))
    return Requirement(key, operator, tuple(values))


def selector_everything_if_none(sel: Mapping[str, Any] | None) -> LabelSelector:
    """Like `selector_from_object`, but an absent selector selects everything (e.g. a Service's peers)."""
    return LabelSelector.everything() if sel is None else selector_from_object(sel)


def selector_to_string(sel: Mapping[str, Any] | None) -> str:
    """The canonical query form of a `metav1.LabelSelector`, e.g. `app=web,tier in (a,b)`.

    This is what a Scale's `status.selector` carries and what `kubectl get -l` accepts.
    """
    return str(selector_from_object(sel))


def validate_label_selector_object(sel: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """Validation causes for a `metav1.LabelSelector` at field path `path` (e.g. `spec.selector`)."""
    if sel is None:
        return []
    causes = _match_labels_causes(sel.get("matchLabels") or {}, f"{path}.matchLabels")
    for index, expression in enumerate(sel.get("matchExpressions") or []):
        causes.extend(_expression_causes(expression, f"{path}.matchExpressions[{index}]"))
    return causes


def _invalid_cause(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}", path)


def _match_labels_causes(match_labels: Mapping[str, Any], path: str) -> list[Cause]:
    causes = []
    for key, value in match_labels.items():
        for problem in qualified_name_errors(key):
            causes.append(_invalid_cause(path, key, problem))
        for problem in label_value_errors(value if isinstance(value, str) else str(value)):
            causes.append(_invalid_cause(path, value, problem))
    return causes


def _expression_causes(expression: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator in ("In", "NotIn"):
        if not values:
            message = "Required value: must be specified when `operator` is 'In' or 'NotIn'"
            causes.append(Cause("FieldValueRequired", message, f"{path}.values"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            message = "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            causes.append(Cause("FieldValueForbidden", message, f"{path}.values"))
    else:
        causes.append(_invalid_cause(f"{path}.operator", operator, "not a valid selector operator"))
    key = expression.get("key", "")
    for problem in qualified_name_errors(key if isinstance(key, str) else str(key)):
        causes.append(_invalid_cause(f"{path}.key", key, problem))
    for index, value in enumerate(values):
        for problem in label_value_errors(value if isinstance(value, str) else str(value)):
            causes.append(_invalid_cause(f"{path}.values[{index}]", value, problem))
    return causes


__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "LabelSelector",
    "Requirement",
    "label_value_errors",
    "parse_label_selector",
    "qualified_name_errors",
    "selector_everything_if_none",
    "selector_from_object",
    "selector_to_string",
    "validate_label_selector_object",
]
