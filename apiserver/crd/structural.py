"""Structural OpenAPI v3 schemas of custom resources: value validation, pruning and defaulting.

A CustomResourceDefinition's `openAPIV3Schema` describes every field with a type (or says where unknown
fields are kept with `x-kubernetes-preserve-unknown-fields`). The API server uses it three ways, as
kube-apiextensions-apiserver does:

- `prune` drops the fields the schema does not describe (strict field validation reports them);
- `apply_defaults` fills in `default` values of absent fields (on writes and on reads);
- `validate` checks the value against the schema and words each problem as kube does, e.g.
  `spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10`.

`structural_problems` checks a schema itself when a CustomResourceDefinition is written.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from skiff.api import validation as v
from skiff.api.errors import Cause

Schema = dict[str, Any]
Obj = dict[str, Any]

# The metadata fields a custom resource keeps: ObjectMeta's, whatever the schema says.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
ROOT_FIELDS = ("apiVersion", "kind", "metadata")

_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: (
        (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    ),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
}


def json_type(value: Any) -> str:
    """The JSON type of a value in the words of kube's schema validator."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- formats -------------------------------------------------------------------------------------------
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_DURATION = re.compile(r"^([-+]?\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda text: bool(_DATE_TIME.match(text)),
    "datetime": lambda text: bool(_DATE_TIME.match(text)),
    "date": _is_date,
    "email": lambda text: bool(_EMAIL.match(text)),
    "hostname": lambda text: bool(_HOSTNAME.match(text)),
    "ipv4": lambda text: _is_ip(text, 4),
    "ipv6": lambda text: _is_ip(text, 6),
    "cidr": _is_cidr,
    "mac": lambda text: bool(_MAC.match(text)),
    "uuid": _is_uuid,
    "uri": lambda text: bool(_URI.match(text)),
    "byte": _is_byte,
    "duration": lambda text: bool(_DURATION.match(text)),
    "hexcolor": lambda text: bool(_HEXCOLOR.match(text)),
    "password": lambda _text: True,
}


# -- validation ----------------------------------------------------------------------------------------
def validate(schema: Schema, obj: Obj) -> list[Cause]:
    """Check a whole custom object against its version's schema (apiVersion, kind and metadata aside,
    except for what the schema may say about metadata.name)."""
    causes: list[Cause] = []
    properties = schema.get("properties") or {}
    meta_schema = (properties.get("metadata") or {}).get("properties") or {}
    metadata = obj.get("metadata") or {}
    for key in ("name", "generateName"):
        if key in meta_schema and key in metadata:
            _validate(meta_schema[key], metadata[key], f"metadata.{key}", causes)
    body = {k: value for k, value in obj.items() if k not in ROOT_FIELDS}
    root = {k: s for k, s in schema.items() if k != "properties"}
    root["properties"] = {k: s for k, s in properties.items() if k not in ROOT_FIELDS}
    root["required"] = [k for k in schema.get("required") or [] if k not in ROOT_FIELDS]
    _validate(root, body, "", causes)
    return causes


def validate_value(schema: Schema, value: Any, path: str = "") -> list[Cause]:
    causes: list[Cause] = []
    _validate(schema, value, path, causes)
    return causes


def _type_error(path: str, value: Any, expected: str) -> Cause:
    given = json_type(value)
    where = path or "body"
    return v.invalid(path, given, f"{where} in body must be of type {expected}: {orjson.dumps(given).decode()}")


def _validate(schema: Schema, value: Any, path: str, causes: list[Cause]) -> None:
    where = path or "body"
    if value is None:
        if schema.get("nullable") or (schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("type")):
            return
        if schema.get("type"):
            causes.append(_type_error(path, value, schema["type"]))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _TYPE_CHECKS["integer"](value)):
            causes.append(_type_error(path, value, "integer or string"))
            return
    else:
        expected = schema.get("type")
        if expected and expected in _TYPE_CHECKS and not _TYPE_CHECKS[expected](value):
            causes.append(_type_error(path, value, expected))
            return
    before = len(causes)
    if "enum" in schema and value not in schema["enum"]:
        causes.append(v.not_supported(path, value, [_enum_text(e) for e in schema["enum"]]))
    if isinstance(value, str):
        _validate_string(schema, value, path, where, causes)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(schema, value, path, where, causes)
    elif isinstance(value, list):
        _validate_array(schema, value, path, where, causes)
    elif isinstance(value, dict):
        _validate_object(schema, value, path, where, causes)
    if len(causes) == before:
        _validate_combinators(schema, value, path, where, causes)


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _validate_string(schema: Schema, value: str, path: str, where: str, causes: list[Cause]) -> None:
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        causes.append(v.too_long(path, max_length))
    min_length = schema.get("minLength")
    if min_length is not None and len(value) < min_length:
        causes.append(v.invalid(path, value, f"{where} in body should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if pattern is not None and not _regex(pattern).search(value):
        causes.append(v.invalid(path, value, f"{where} in body should match '{pattern}'"))
    fmt = schema.get("format")
    check = FORMATS.get(fmt) if fmt else None
    if check is not None and not check(value):
        causes.append(v.invalid(path, value, f"{where} in body must be of type {fmt}: {orjson.dumps(value).decode()}"))


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regex(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return compiled


def _number_text(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _validate_number(schema: Schema, value: float, path: str, where: str, causes: list[Cause]) -> None:
    maximum = schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            causes.append(v.invalid(path, value, f"{where} in body should be less than {_number_text(maximum)}"))
        elif value > maximum:
            detail = f"{where} in body should be less than or equal to {_number_text(maximum)}"
            causes.append(v.invalid(path, value, detail))
    minimum = schema.get("minimum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            causes.append(v.invalid(path, value, f"{where} in body should be greater than {_number_text(minimum)}"))
        elif value < minimum:
            detail = f"{where} in body should be greater than or equal to {_number_text(minimum)}"
            causes.append(v.invalid(path, value, detail))
    multiple = schema.get("multipleOf")
    if multiple and not math.isclose(value / multiple, round(value / multiple)):
        causes.append(v.invalid(path, value, f"{where} in body should be a multiple of {_number_text(multiple)}"))


def _validate_array(schema: Schema, value: list[Any], path: str, where: str, causes: list[Cause]) -> None:
    max_items = schema.get("maxItems")
    if max_items is not None and len(value) > max_items:
        causes.append(v.too_many(path, len(value), max_items))
    min_items = schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        causes.append(v.invalid(path, value, f"{where} in body should have at least {min_items} items"))
    unique = schema.get("uniqueItems") or schema.get("x-kubernetes-list-type") == "set"
    if unique:
        seen: list[bytes] = []
        for position, item in enumerate(value):
            encoded = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            if encoded in seen:
                causes.append(v.duplicate(f"{path}[{position}]", item))
            seen.append(encoded)
    map_keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and map_keys:
        seen_keys: list[tuple[Any, ...]] = []
        for position, item in enumerate(value):
            if isinstance(item, dict):
                identity = tuple(item.get(k) for k in map_keys)
                if identity in seen_keys:
                    causes.append(v.duplicate(f"{path}[{position}]", dict(zip(map_keys, identity, strict=True))))
                seen_keys.append(identity)
    items = schema.get("items")
    if isinstance(items, dict):
        for position, item in enumerate(value):
            _validate(items, item, f"{path}[{position}]", causes)


def _validate_object(schema: Schema, value: Obj, path: str, where: str, causes: list[Cause]) -> None:
    if schema.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                causes.append(v.required(_join(path, key), "must not be empty"))
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(v.required(_join(path, key)))
    max_props = schema.get("maxProperties")
    if max_props is not None and len(value) > max_props:
        causes.append(v.too_many(path, len(value), max_props))
    min_props = schema.get("minProperties")
    if min_props is not None and len(value) < min_props:
        causes.append(v.invalid(path, value, f"{where} in body should have at least {min_props} properties"))
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, child in value.items():
        if schema.get("x-kubernetes-embedded-resource") and key == "metadata":
            continue
        child_path = _join(path, key)
        if key in properties:
            _validate(properties[key], child, child_path, causes)
        elif isinstance(additional, dict):
            _validate(additional, child, child_path, causes)


def _validate_combinators(schema: Schema, value: Any, path: str, where: str, causes: list[Cause]) -> None:
    for sub in schema.get("allOf") or []:
        _validate(sub, value, path, causes)
    any_of = schema.get("anyOf")
    if any_of and not any(not validate_value(sub, value, path) for sub in any_of):
        causes.append(v.invalid(path, value, f'"{where}" must validate at least one schema (anyOf)'))
    one_of = schema.get("oneOf")
    if one_of:
        matching = sum(1 for sub in one_of if not validate_value(sub, value, path))
        if matching != 1:
            causes.append(v.invalid(path, value, f'"{where}" must validate one and only one schema (oneOf)'))
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate_value(negated, value, path):
        causes.append(v.invalid(path, value, f'"{where}" must not validate the schema (not)'))


# -- pruning -------------------------------------------------------------------------------------------
def prune(schema: Schema, obj: Obj) -> list[str]:
    """Drop the fields of a custom object that its schema does not describe; returns their paths.
    apiVersion, kind and ObjectMeta's fields of metadata are always kept."""
    found: list[str] = []
    properties = schema.get("properties") or {}
    for key in list(obj):
        if key in ROOT_FIELDS:
            continue
        if key in properties:
            _prune(properties[key], obj[key], key, found)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            found.append(key)
            del obj[key]
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        _prune_metadata(metadata, "metadata", found)
    return found


def _prune_metadata(metadata: Obj, path: str, found: list[str]) -> None:
    for key in list(metadata):
        if key not in OBJECT_META_FIELDS:
            found.append(_join(path, key))
            del metadata[key]


def _prune(schema: Schema, value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource")
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for key in list(value):
            child_path = _join(path, key)
            if embedded and key in ("apiVersion", "kind"):
                continue
            if embedded and key == "metadata":
                if isinstance(value[key], dict):
                    _prune_metadata(value[key], child_path, found)
                continue
            if properties is not None and key in properties:
                _prune(properties[key], value[key], child_path, found)
            elif isinstance(additional, dict):
                _prune(additional, value[key], child_path, found)
            elif not preserve and additional is not True:
                found.append(child_path)
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for position, item in enumerate(value):
                _prune(items, item, f"{path}[{position}]", found)


# -- defaulting ----------------------------------------------------------------------------------------
def apply_defaults(schema: Schema, value: Any) -> None:
    """Set the schema's `default` for every absent (or null, when not nullable) property, recursively."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child in properties.items():
            if "default" in child and (key not in value or (value[key] is None and not child.get("nullable"))):
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                apply_defaults(child, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in properties:
                    apply_defaults(additional, value[key])
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(items, item)


def has_defaults(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "default" in schema or any(has_defaults(child) for child in schema.values())
    if isinstance(schema, list):
        return any(has_defaults(child) for child in schema)
    return False


# -- the schema itself ---------------------------------------------------------------------------------
_VALUE_KEYWORDS = ("default", "enum", "example")
_FORBIDDEN_KEYWORDS = ("$ref", "definitions", "dependencies", "additionalItems", "patternProperties", "id", "$schema")
_KNOWN_TYPES = ("object", "array", "string", "integer", "number", "boolean")


def structural_problems(schema: Any, path: str) -> list[Cause]:
    """Why a CRD version's schema is not structural, worded as kube words it."""
    if not isinstance(schema, dict):
        return [v.required(path, "schemas are required")]
    causes: list[Cause] = []
    if schema.get("type") != "object":
        if not schema.get("type"):
            causes.append(v.required(f"{path}.type", "must not be empty at the root"))
        else:
            causes.append(v.invalid(f"{path}.type", schema.get("type"), "must be object at the root"))
    _check_node(schema, path, causes, root=True, in_preserve=False)
    return causes


def _check_node(schema: Schema, path: str, causes: list[Cause], root: bool, in_preserve: bool) -> None:
    for keyword in _FORBIDDEN_KEYWORDS:
        if keyword in schema:
            causes.append(v.forbidden(f"{path}.{keyword}", f"{keyword} is forbidden"))
    schema_type = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if schema_type and schema_type not in _KNOWN_TYPES:
        causes.append(v.not_supported(f"{path}.type", schema_type, _KNOWN_TYPES))
    if not schema_type and not int_or_string and not preserve:
        causes.append(v.required(f"{path}.type", "must not be empty for specified object fields"))
    if int_or_string and schema_type:
        causes.append(v.invalid(f"{path}.type", schema_type, "must be empty if x-kubernetes-int-or-string is true"))
    if schema.get("x-kubernetes-embedded-resource") and schema_type != "object":
        causes.append(
            v.invalid(f"{path}.type", schema_type, "must be object if x-kubernetes-embedded-resource is true")
        )
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        causes.append(
            v.forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive")
        )
    for key, child in (schema.get("properties") or {}).items():
        if isinstance(child, dict):
            _check_node(child, f"{path}.properties[{key}]", causes, False, in_preserve or preserve)
    items = schema.get("items")
    if isinstance(items, dict):
        _check_node(items, f"{path}.items", causes, False, in_preserve or preserve)
    elif items is not None:
        causes.append(v.forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if schema_type == "array" and items is None:
        causes.append(v.required(f"{path}.items", "must be specified"))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        _check_node(additional, f"{path}.additionalProperties", causes, False, in_preserve or preserve)
    if "default" in schema:
        default_causes = validate_value(schema, schema["default"], "")
        for cause in default_causes:
            field_name = f"{path}.default" + (f".{cause.field}" if cause.field else "")
            causes.append(Cause(cause.reason, cause.message, field_name))
    if root:
        metadata = (schema.get("properties") or {}).get("metadata")
        if isinstance(metadata, dict):
            extra = set(metadata) - {"type", "properties", "description"}
            extra |= set(metadata.get("properties") or {}) - {"name", "generateName"}
            if extra:
                causes.append(
                    v.forbidden(
                        f"{path}.properties[metadata]",
                        "must not specify anything other than name and generateName, "
                        "but metadata is implicitly specified",
                    )
                )
