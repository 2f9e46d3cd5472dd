"""Development-time generator of definitions.json from the `kubernetes` Python client's models.

Run it by hand after upgrading the client: `python -m skiff.api.schema.generate`. The server never
imports this module (the client is a test-only dependency); it reads the committed definitions.json.

The client's models give field names, types and required fields. What they lose (quantities,
int-or-string, micro-time, merge keys, list types, which Go package a type lives in) comes from
facts.py, and descriptions come from descriptions.py.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import kubernetes.client as client_models

from skiff.api.kinds import BUILTIN_RESOURCES
from skiff.api.schema import descriptions, facts

OUTPUT = Path(__file__).with_name("definitions.json")

_CLASS_PREFIX = re.compile(
    r"^(Core|Events|Storage|Discovery|Rbac|Authentication|Apiextensions|Admissionregistration)?(V\d\w*?)(?=[A-Z])"
)
_LIST_TYPE = re.compile(r"^List\[(.+)\]$")
_DICT_TYPE = re.compile(r"^Dict\[str, (.+)\]$")
_GENERIC_TOP_FIELDS = {
    "apiVersion": "The versioned schema of this object, as group/version (just the version for the core group).",
    "kind": "The type of this object, in CamelCase.",
    "metadata": "Standard object metadata.",
}

SPECIAL_DEFINITIONS: dict[str, dict[str, Any]] = {
    facts.INT_OR_STRING: {
        "type": "string",
        "format": "int-or-string",
        "x-kubernetes-int-or-string": True,
        "description": 'A value that is either a whole number or a string, such as 3 or "25%".',
    },
    facts.QUANTITY: {
        "type": "string",
        "description": "A fixed-point amount with an optional unit suffix, such as 500m, 2Gi or 1.5.",
    },
    facts.TIME: {"type": "string", "format": "date-time", "description": "A timestamp in RFC 3339 form."},
    facts.MICRO_TIME: {
        "type": "string",
        "format": "date-time",
        "description": "A timestamp in RFC 3339 form with microsecond precision.",
    },
    facts.PATCH: {
        "type": "object",
        "description": "The body of a PATCH request, in the format its Content-Type names.",
    },
    facts.RAW_EXTENSION: {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "An embedded object of any kind, kept as given.",
    },
    facts.JSON_VALUE: {
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Any JSON value: an object, a list, a string, a number, a boolean or null.",
    },
    facts.FIELDS_V1: {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "A set of field paths, in the server-side apply field-set encoding.",
    },
}


def class_for(group: str, version: str, kind: str) -> type:
    """The client model class of a served kind."""
    if kind == "Event":
        return getattr(client_models, "CoreV1Event" if group == "" else "EventsV1Event")
    if kind == "SelfSubjectReview":
        # v1beta1 and v1alpha1 have v1's shape; the client models only v1.
        return client_models.V1SelfSubjectReview
    return getattr(client_models, version.capitalize() + kind)


def short_name(class_name: str) -> tuple[str, str]:
    """Split a client class name into (version, Go type name): CoreV1EventSeries -> (v1, EventSeries)."""
    match = _CLASS_PREFIX.match(class_name)
    if not match:
        raise ValueError(f"unexpected model class name {class_name}")
    return match.group(2).lower(), class_name[match.end() :]


class DefinitionNamer:
    """Assigns each client class the Kubernetes definition name of the Go type it models."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def claim(self, class_name: str, group: str) -> None:
        """Name every class reachable from class_name that no earlier group has named yet."""
        pending = [class_name]
        while pending:
            current = pending.pop()
            if current in self.names:
                continue
            self.names[current] = self._name(current, group)
            pending.extend(referenced_classes(getattr(client_models, current)))

    @staticmethod
    def _name(class_name: str, group: str) -> str:
        version, type_name = short_name(class_name)
        if type_name in facts.META_TYPES:
            return f"io.k8s.apimachinery.pkg.apis.meta.{version}.{type_name}"
        package = facts.GROUP_PACKAGES[group]
        return f"io.k8s.api.{package}.{version}.{type_name}"


def referenced_classes(model: type) -> list[str]:
    """Names of the model classes a model's fields refer to."""
    found = []
    for type_text in model.openapi_types.values():
        for token in re.findall(r"[A-Z]\w+", type_text):
            if token not in ("List", "Dict") and hasattr(client_models, token):
                found.append(token)
    return found


def all_roots() -> list[tuple[str, str, str, type]]:
    """Every (group, version, kind, model) to describe: served kinds, their lists, and helper kinds."""
    roots = []
    for resource in BUILTIN_RESOURCES:
        model = class_for(resource.group, resource.version, resource.kind)
        roots.append((resource.group, resource.version, resource.kind, model))
        list_model = getattr(client_models, model.__name__ + "List", None)
        if list_model is not None:
            roots.append((resource.group, resource.version, resource.list_kind, list_model))
    for group, version, kind, class_name in facts.EXTRA_KINDS:
        roots.append((group, version, kind, getattr(client_models, class_name)))
    return roots


def group_order(group: str) -> int:
    order = list(facts.GROUP_PACKAGES)
    return order.index(group) if group in order else len(order)


class SchemaWriter:
    """Turns client model classes into definition objects."""

    def __init__(self, namer: DefinitionNamer) -> None:
        self.namer = namer

    def definition(self, model: type) -> dict[str, Any]:
        name = self.namer.names[model.__name__]
        type_name = name.rsplit(".", 1)[1]
        texts = descriptions.descriptions_for(type_name)
        properties = {}
        required = []
        for attribute, type_text in model.openapi_types.items():
            json_name = model.attribute_map[attribute]
            # JSONSchemaProps' $ref and $schema are forbidden in structural schemas, and a "$ref" property
            # would read as a reference to every tool that walks the definitions.
            if json_name.startswith("$"):
                continue
            prop = self.property_schema(model, attribute, type_text)
            self._add_patch_facts(prop, type_name, json_name)
            if json_name in texts:
                prop["description"] = texts[json_name]
            properties[json_name] = prop
            if model_field(model, json_name).is_required():
                required.append(json_name)
        out: dict[str, Any] = {"type": "object"}
        if "" in texts:
            out["description"] = texts[""]
        out["properties"] = properties
        if required:
            out["required"] = required
        return out

    def property_schema(self, model: type, attribute: str, type_text: str) -> dict[str, Any]:
        if list_match := _LIST_TYPE.match(type_text):
            return {"type": "array", "items": self.property_schema(model, attribute, list_match.group(1))}
        if dict_match := _DICT_TYPE.match(type_text):
            inner = self.property_schema(model, attribute, dict_match.group(1))
            return {"type": "object", "additionalProperties": inner}
        return self.scalar_schema(model, attribute, type_text)

    def scalar_schema(self, model: type, attribute: str, type_text: str) -> dict[str, Any]:
        class_name = model.__name__
        if type_text == "object":
            return self.object_schema(class_name, attribute)
        if type_text == "datetime":
            micro = attribute in facts.MICRO_TIME_FIELDS.get(class_name, ())
            return {"$ref": facts.MICRO_TIME if micro else facts.TIME}
        if type_text == "bytes":
            return {"type": "string", "format": "byte"}
        if type_text == "str":
            if attribute in facts.QUANTITY_FIELDS.get(class_name, ()):
                return {"$ref": facts.QUANTITY}
            if _holds_bytes(model, attribute):
                return {"type": "string", "format": "byte"}
            return {"type": "string"}
        primitive = {"int": "integer", "float": "number", "bool": "boolean"}.get(type_text)
        if primitive:
            return {"type": primitive, "format": "double"} if primitive == "number" else {"type": primitive}
        if type_text in self.namer.names:
            return {"$ref": self.namer.names[type_text]}
        raise ValueError(f"{class_name}.{attribute}: unhandled type {type_text}")

    @staticmethod
    def object_schema(class_name: str, attribute: str) -> dict[str, Any]:
        if (class_name, attribute) in facts.OBJECT_FIELDS:
            return {"$ref": facts.OBJECT_FIELDS[(class_name, attribute)]}
        if "alpha" in class_name or "beta" in class_name:
            # Pre-release types newer than the API we serve: accept whatever they hold.
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        raise ValueError(f"{class_name}.{attribute}: untyped object needs an entry in facts.OBJECT_FIELDS")

    @staticmethod
    def _add_patch_facts(prop: dict[str, Any], type_name: str, json_name: str) -> None:
        key = (type_name, json_name)
        if key in facts.OBJECT_STRATEGIES:
            prop["x-kubernetes-patch-strategy"] = facts.OBJECT_STRATEGIES[key]
        list_facts = facts.LIST_FACTS.get(key)
        if list_facts is None or prop.get("type") != "array":
            return
        if list_facts.strategy:
            prop["x-kubernetes-patch-strategy"] = list_facts.strategy
        if list_facts.merge_key:
            prop["x-kubernetes-patch-merge-key"] = list_facts.merge_key
        if list_facts.list_type:
            prop["x-kubernetes-list-type"] = list_facts.list_type
        if list_facts.map_keys:
            prop["x-kubernetes-list-map-keys"] = list(list_facts.map_keys)


def model_field(model: type, json_name: str) -> Any:
    """The pydantic field behind a JSON field (python names differ, e.g. `var_continue`)."""
    for name, field in model.model_fields.items():
        if (field.serialization_alias or name) == json_name:
            return field
    raise KeyError(f"{model.__name__} has no field {json_name}")


def _holds_bytes(model: type, attribute: str) -> bool:
    annotation = model_field(model, model.attribute_map[attribute]).annotation
    return "bytes" in repr(annotation) or any(arg is bytes for arg in typing.get_args(annotation))


def build() -> dict[str, Any]:
    """All definitions, keyed by Kubernetes definition name."""
    roots = sorted(all_roots(), key=lambda root: group_order(root[0]))
    namer = DefinitionNamer()
    for group, _version, _kind, model in roots:
        namer.claim(model.__name__, group)
    writer = SchemaWriter(namer)
    definitions: dict[str, Any] = dict(SPECIAL_DEFINITIONS)
    for class_name, name in namer.names.items():
        definitions[name] = writer.definition(getattr(client_models, class_name))
    for group, version, kind, model in roots:
        schema = definitions[namer.names[model.__name__]]
        gvk = {"group": group, "kind": kind, "version": version}
        schema.setdefault("x-kubernetes-group-version-kind", [])
        if gvk not in schema["x-kubernetes-group-version-kind"]:
            schema["x-kubernetes-group-version-kind"].append(gvk)
        for field_name, text in _GENERIC_TOP_FIELDS.items():
            prop = schema["properties"].get(field_name)
            if prop is not None and "description" not in prop:
                prop["description"] = text
    return dict(sorted(definitions.items()))


def write(definitions: dict[str, Any]) -> None:
    # One definition per line keeps diffs readable when the client is upgraded.
    lines = [f"{json.dumps(name)}: {json.dumps(schema, sort_keys=True)}" for name, schema in definitions.items()]
    OUTPUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def main() -> None:
    definitions = build()
    write(definitions)
    print(f"wrote {len(definitions)} definitions to {OUTPUT}")


if __name__ == "__main__":
    main()
