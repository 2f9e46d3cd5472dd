"""Reusable validators that produce field errors worded the way kube-apiserver words them.

Each check returns a list of `Cause`s whose `field` is a path such as `spec.containers[0].name` and whose
`message` is the error body (`Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must ...`).
Users paste these messages into search engines, so the wording follows Kubernetes exactly.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from skiff.api.errors import Cause
from skiff.api.kinds import ResourceType

Obj = dict[str, Any]
NameRule = Callable[[str, bool], list[str]]

# -- field paths ------------------------------------------------------------------------------------


def child(path: str, *names: str) -> str:
    """`child("spec", "template")` is `spec.template`."""
    parts = [path, *names] if path else list(names)
    return ".".join(p for p in parts if p)


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def key(path: str, name: str) -> str:
    return f"{path}[{name}]"


# -- causes -----------------------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """Print a bad value the way Go's field errors do: strings quoted, numbers bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _with_detail(head: str, detail: str) -> str:
    return f"{head}: {detail}" if detail else head


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", _with_detail(f"Invalid value: {render_value(value)}", detail), path)


def required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", _with_detail("Required value", detail), path)


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    options = ", ".join(json.dumps(s) for s in supported)
    message = f"Unsupported value: {render_value(value)}: supported values: {options}"
    return Cause("FieldValueNotSupported", message, path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {render_value(value)}", path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", _with_detail("Forbidden", detail), path)


def too_long(path: str, max_bytes: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: may not be more than {max_bytes} bytes", path)


def too_many(path: str, actual: int, max_items: int) -> Cause:
    message = f"Too many: {actual}: must have at most {max_items} items"
    return Cause("FieldValueTooMany", message, path)


def not_found(path: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {render_value(value)}", path)


def immutable(path: str, value: Any) -> Cause:
    return invalid(path, value, "field is immutable")


def invalid_each(path: str, value: Any, messages: Iterable[str]) -> list[Cause]:
    return [invalid(path, value, message) for message in messages]


# -- string formats ---------------------------------------------------------------------------------


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')" if examples else message


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


EMPTY_ERROR = "must be non-empty"

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX = 63
DNS1123_LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX = 253
DNS1123_SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_ERROR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
LABEL_VALUE_MAX = 63
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_ERROR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
ENV_VAR_NAME_ERROR = "a valid environment variable name must consist only of printable ASCII characters other than '='"

_DNS1123_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")
_WILDCARD_SUBDOMAIN = re.compile(r"^\*\." + DNS1123_SUBDOMAIN_FMT + "$")


def dns1123_label(value: str) -> list[str]:
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        errors.append(_regex_error(DNS1123_LABEL_ERROR, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain(value: str) -> list[str]:
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        errors.append(_regex_error(DNS1123_SUBDOMAIN_ERROR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def dns1035_label(value: str) -> list[str]:
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1035_LABEL.match(value):
        errors.append(_regex_error(DNS1035_LABEL_ERROR, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


def wildcard_dns1123_subdomain(value: str) -> list[str]:
    if _WILDCARD_SUBDOMAIN.match(value) and len(value) <= DNS1123_SUBDOMAIN_MAX:
        return []
    message = (
        "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character"
    )
    return [_regex_error(message, r"\*\." + DNS1123_SUBDOMAIN_FMT, "*.example.com")]


def qualified_name(value: str) -> list[str]:
    """A name with an optional DNS subdomain prefix: `app`, `example.com/tier`."""
    parts = value.split("/")
    if len(parts) > 2:
        message = "a qualified name " + _regex_error(
            QUALIFIED_NAME_ERROR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"
        )
        return [message + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errors: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part " + EMPTY_ERROR)
        else:
            errors.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    if not name:
        errors.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX:
        errors.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME.match(name):
        pattern_error = _regex_error(QUALIFIED_NAME_ERROR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        errors.append("name part " + pattern_error)
    return errors


def label_value(value: str) -> list[str]:
    errors = []
    if len(value) > LABEL_VALUE_MAX:
        errors.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE.match(value):
        errors.append(_regex_error(LABEL_VALUE_ERROR, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def config_key(value: str) -> list[str]:
    """Keys of ConfigMap and Secret data: usable as file names in a volume."""
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY.match(value):
        errors.append(_regex_error(CONFIG_KEY_ERROR, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def env_var_name(value: str) -> list[str]:
    """Environment variable names as Kubernetes 1.33 accepts them (any printable ASCII but '=')."""
    if all(" " <= ch <= "~" and ch != "=" for ch in value):
        return []
    return [ENV_VAR_NAME_ERROR]


def path_segment_name(value: str) -> list[str]:
    """Names that only have to be usable as one URL path segment (RBAC objects and a few others)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{ch}'" for ch in ("/", "%") if ch in value]


def port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: what a named container or service port must look like."""
    errors = []
    if len(value) > 15:
        errors.append(max_len_error(15))
    if not re.match(r"^[-a-z0-9]+$", value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number(value: object) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def ip_address(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def non_negative(path: str, value: object) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def positive(path: str, value: object) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def one_of(path: str, value: object, supported: Iterable[str], allow_empty: bool = True) -> list[Cause]:
    options = list(supported)
    if value in (None, "") and allow_empty:
        return []
    if value not in options:
        return [not_supported(path, value, options)]
    return []


# -- name rules per kind ----------------------------------------------------------------------------


def _mask_trailing_dash(name: str, prefix: bool) -> str:
    # A generateName prefix may end in '-' because random characters follow it.
    return name[:-1] + "a" if prefix and len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return dns1123_subdomain(_mask_trailing_dash(name, prefix))


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return dns1123_label(_mask_trailing_dash(name, prefix))


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return dns1035_label(_mask_trailing_dash(name, prefix))


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return path_segment_name(name)


def name_is_anything(name: str, prefix: bool) -> list[str]:
    return []


# -- label selectors --------------------------------------------------------------------------------

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_labels(labels: object, path: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of string keys to string values")]
    causes: list[Cause] = []
    for label_key, value in labels.items():
        causes += invalid_each(path, label_key, qualified_name(label_key))
        if not isinstance(value, str):
            causes.append(invalid(path, value, "must be a string"))
        else:
            causes += invalid_each(path, value, label_value(value))
    return causes


def validate_label_selector(selector: object, path: str) -> list[Cause]:
    """Shape of a `metav1.LabelSelector` (matchLabels and matchExpressions)."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [invalid(path, selector, "must be a label selector object")]
    causes = validate_labels(selector.get("matchLabels"), child(path, "matchLabels"))
    for position, expression in enumerate(selector.get("matchExpressions") or []):
        causes += _validate_selector_requirement(expression, index(child(path, "matchExpressions"), position))
    return causes


def _validate_selector_requirement(requirement: Obj, path: str) -> list[Cause]:
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    causes: list[Cause] = []
    if operator in ("In", "NotIn") and not values:
        causes.append(required(child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist") and values:
        detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        causes.append(forbidden(child(path, "values"), detail))
    elif operator not in SELECTOR_OPERATORS:
        causes.append(invalid(child(path, "operator"), operator, "not a valid selector operator"))
    label_key = requirement.get("key", "")
    causes += invalid_each(child(path, "key"), label_key, qualified_name(label_key))
    return causes


def selector_is_empty(selector: object) -> bool:
    if not isinstance(selector, dict):
        return True
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a `metav1.LabelSelector` selects a set of labels."""
    for label_key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(label_key) != value:
            return False
    return all(_requirement_matches(r, labels) for r in selector.get("matchExpressions") or [])


def _requirement_matches(requirement: Obj, labels: dict[str, str]) -> bool:
    label_key, operator = requirement.get("key", ""), requirement.get("operator")
    values = requirement.get("values") or []
    if operator == "In":
        return labels.get(label_key) in values
    if operator == "NotIn":
        return label_key not in labels or labels[label_key] not in values
    if operator == "Exists":
        return label_key in labels
    if operator == "DoesNotExist":
        return label_key not in labels
    return False


# -- object metadata --------------------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_metadata(obj: Obj, resource: ResourceType, name_rule: NameRule = name_is_dns_subdomain) -> list[Cause]:
    """Rules every object's metadata follows, whatever its kind."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [required("metadata")]
    causes = _validate_name(metadata, name_rule)
    causes += _validate_namespace(metadata, resource)
    causes += validate_labels(metadata.get("labels"), "metadata.labels")
    causes += validate_annotations(metadata.get("annotations"), "metadata.annotations")
    causes += _validate_owner_references(metadata.get("ownerReferences"), "metadata.ownerReferences")
    causes += _validate_finalizers(metadata.get("finalizers"), "metadata.finalizers")
    return causes


def _validate_name(metadata: Obj, name_rule: NameRule) -> list[Cause]:
    name = metadata.get("name") or ""
    generate_name = metadata.get("generateName") or ""
    causes: list[Cause] = []
    if generate_name:
        causes += invalid_each("metadata.generateName", generate_name, name_rule(generate_name, True))
    if not name:
        if not generate_name:
            causes.append(required("metadata.name", "name or generateName is required"))
        return causes
    return causes + invalid_each("metadata.name", name, name_rule(name, False))


def _validate_namespace(metadata: Obj, resource: ResourceType) -> list[Cause]:
    namespace = metadata.get("namespace") or ""
    if resource.namespaced:
        if not namespace:
            return [required("metadata.namespace")]
        return invalid_each("metadata.namespace", namespace, dns1123_label(namespace))
    if namespace:
        return [forbidden("metadata.namespace", "not allowed on this type")]
    return []


def validate_annotations(annotations: object, path: str) -> list[Cause]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid(path, annotations, "must be a map of string keys to string values")]
    causes: list[Cause] = []
    total = 0
    for annotation_key, value in annotations.items():
        # Annotation keys are compared case-insensitively, so they are checked in lower case.
        causes += invalid_each(path, annotation_key, qualified_name(annotation_key.lower()))
        total += len(annotation_key) + len(value if isinstance(value, str) else str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _validate_owner_references(references: object, path: str) -> list[Cause]:
    if not references:
        return []
    causes: list[Cause] = []
    controllers = []
    for reference in references if isinstance(references, list) else []:
        causes += _validate_owner_reference(reference, path)
        if reference.get("controller") is True:
            controllers.append(reference.get("name", ""))
    if len(controllers) > 1:
        listed = ", ".join(controllers)
        detail = f'Only one reference can have Controller set to true. Found "true" in references for {listed}'
        causes.append(invalid(path, references, detail))
    return causes


def _validate_owner_reference(reference: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    api_version = reference.get("apiVersion", "")
    version = api_version.rpartition("/")[2]
    if not version:
        causes.append(invalid(child(path, "apiVersion"), api_version, "version must not be empty"))
    for field_name in ("kind", "name", "uid"):
        if not reference.get(field_name):
            causes.append(invalid(child(path, field_name), "", f"{field_name} must not be empty"))
    return causes


def _validate_finalizers(finalizers: object, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for finalizer in finalizers or []:
        causes += invalid_each(path, finalizer, qualified_name(finalizer))
    return causes
